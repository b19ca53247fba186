"""Bayesian optimisation: evaluations to reach a known minimum, ml4ms vs random search vs BOSS.

For each test function (the 1-D function of the BOSS tutorial, Branin, Hartmann-3) and
each seed, count the evaluations until the best value found is within ``tol`` of the
known global minimum (a run that never gets there counts as not reached), and time the
run (objective included; the objectives are analytic, so the time is the optimiser's).

- ml4ms: :func:`ml4ms.bayes.bo.minimize`, expected improvement, Matérn 5/2, defaults;
- random search: uniform points from the same seeds;
- BOSS (aalto-boss, its own virtual environment, ``--boss-python``): ``BOMain`` with its
  defaults (RBF kernel, ELCB acquisition), the same number of initial points. Run for the
  whole budget (it has no early stop here), so its time covers the whole budget.

Every program runs with one BLAS thread.

    python benchmarks/bench_bo.py                          # 10 seeds, BOSS on 5 seeds
    python benchmarks/bench_bo.py --seeds 3 --boss-seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
STORE = HERE / "bo.json"
sys.path.insert(0, str(HERE))

BOSS_SOURCE = """
def boss(x):
    return float(np.sin(x[0]) + 1.5 * np.exp(-(x[0] - 4.3) ** 2))


def branin(x):
    b, c, t = 5.1 / (4 * np.pi ** 2), 5 / np.pi, 1 / (8 * np.pi)
    return float((x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * np.cos(x[0]) + 10)


_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_C = np.array([1.0, 1.2, 3.0, 3.2])
_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])


def hartmann3(x):
    return float(-np.sum(_C * np.exp(-np.sum(_A * (np.asarray(x) - _P) ** 2, axis=1))))
"""
exec("import numpy as np\n" + BOSS_SOURCE)  # the same definitions, here and in BOSS's environment

#: name: (function name, bounds, known minimum, tolerance, budget, initial points)
PROBLEMS = {
    "boss_1d": ("boss", [[0.0, 7.0]], -0.3552853, 1e-3, 20, 5),
    "branin": ("branin", [[-5.0, 10.0], [0.0, 15.0]], 0.3978874, 0.05, 50, 5),
    "hartmann3": ("hartmann3", [[0.0, 1.0]] * 3, -3.862782, 0.05, 60, 6),
}

BOSS_RUNNER = """
import json, sys, time
import numpy as np
from boss.bo.bo_main import BOMain
{source}
name, bounds, n_init, budget, seed = json.loads(sys.argv[1])
f = globals()[name]
t0 = time.perf_counter()
bo = BOMain(lambda X: f(X[0]), np.array(bounds), initpts=n_init, iterpts=budget - n_init, seed=seed,
            )
res = bo.run()
y = np.asarray(res.select("Y")).ravel().tolist()
print(json.dumps({{"y": y, "time": time.perf_counter() - t0}}))
"""


def evaluations_to(y: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(np.minimum.accumulate(y) <= target)
    return int(hit[0]) + 1 if len(hit) else None


def run_ml4ms(problem: str, seed: int) -> dict:
    from ml4ms.bayes.bo import minimize

    name, bounds, fmin, tol, budget, n_init = PROBLEMS[problem]
    f = globals()[name]
    t0 = time.perf_counter()
    res = minimize(f, bounds, budget - n_init, n_initial=n_init, seed=seed, progress=False,
                   callback=lambda r: r.f_best <= fmin + tol)
    return {"n": evaluations_to(res.y, fmin + tol), "time": time.perf_counter() - t0, "f_best": res.f_best}


def run_random(problem: str, seed: int) -> dict:
    name, bounds, fmin, tol, budget, _ = PROBLEMS[problem]
    f = globals()[name]
    b = np.array(bounds)
    rng = np.random.default_rng(seed)
    big = 50 * budget  # random search gets a larger budget, to say how many it would need
    t0 = time.perf_counter()
    y = np.array([f(x) for x in b[:, 0] + rng.random((big, len(b))) * (b[:, 1] - b[:, 0])])
    return {"n": evaluations_to(y, fmin + tol), "time": time.perf_counter() - t0, "f_best": float(y[:budget].min())}


def run_boss(problem: str, seed: int, python: str) -> dict:
    name, bounds, fmin, tol, budget, n_init = PROBLEMS[problem]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([python, "-c", BOSS_RUNNER.format(source=BOSS_SOURCE),
                          json.dumps([name, bounds, n_init, budget, seed])],
                         capture_output=True, text=True, env=env, cwd="/tmp", check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    y = np.array(data["y"])
    return {"n": evaluations_to(y, fmin + tol), "time": data["time"], "f_best": float(y.min())}


def summarise(runs: list[dict], budget: int) -> dict:
    ns = [r["n"] for r in runs]
    reached = [n for n in ns if n is not None and n <= budget]
    return {"runs": len(runs), "reached_within_budget": len(reached),
            "mean_evaluations_reached": float(np.mean(reached)) if reached else None,
            "median_evaluations_all": float(np.median([n if n is not None else np.inf for n in ns])),
            "mean_time_s": float(np.mean([r["time"] for r in runs])), "per_seed": ns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--boss-seeds", type=int, default=5, help="seeds for BOSS (0 to skip it)")
    parser.add_argument("--boss-python", default="/work/venvs/boss/bin/python")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    from _common import machine

    # merge into the stored results, so that one problem (or ml4ms alone) can be rerun
    results: dict = json.loads(STORE.read_text()) if STORE.exists() else {"problems": {}}
    results["machine"] = machine()
    for problem in args.problems.split(","):
        name, bounds, fmin, tol, budget, n_init = PROBLEMS[problem]
        entry = {"dimensions": len(bounds), "f_min": fmin, "tolerance": tol, "budget": budget, "n_initial": n_init}
        seeds = range(args.seeds)
        entry["ml4ms"] = summarise([run_ml4ms(problem, s) for s in seeds], budget)
        entry["random"] = summarise([run_random(problem, s) for s in seeds], budget)
        if args.boss_seeds and problem in ("boss_1d", "branin") and Path(args.boss_python).exists():
            entry["boss"] = summarise([run_boss(problem, s, args.boss_python) for s in range(args.boss_seeds)],
                                      budget)
        elif "boss" in results["problems"].get(problem, {}):
            entry["boss"] = results["problems"][problem]["boss"]  # not rerun: keep the stored figures
        results["problems"][problem] = entry
        for method in ("ml4ms", "random", "boss"):
            if method in entry:
                s = entry[method]
                mean = "-" if s["mean_evaluations_reached"] is None else f"{s['mean_evaluations_reached']:.1f}"
                print(f"{problem:10s} {method:7s} reached {s['reached_within_budget']}/{s['runs']} within {budget}; "
                      f"mean evaluations {mean}; median (all) {s['median_evaluations_all']}; "
                      f"{s['mean_time_s']:.2f} s/run", flush=True)
    STORE.write_text(json.dumps(results, indent=1))
    print(f"wrote {STORE}")


if __name__ == "__main__":
    main()
