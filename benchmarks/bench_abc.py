"""Approximate Bayesian computation: accuracy per simulation, parallel speed-up, Morse from EMT, ABCpy.

Part ``accuracy``: the conjugate Gaussian-mean problem (mean of 4 draws of N(mu, 2²), prior
N(0, 3²), observed 2.0; posterior N(1.8, 0.949²)); error of the posterior mean and standard
deviation against the analytic answer, root-mean-square over seeds, for rejection ABC
(keeping the closest 2 %), rejection + regression adjustment and SMC-ABC, against the
number of simulations -- and the same through ABCpy (rejection with a fixed tolerance,
PMCABC), run in /work/venvs/abcpy.
Part ``parallel``: wall time of rejection (3 000 simulations) and SMC (N=200, 4 generations)
with a simulator costing ~10 ms of CPU, with 1 (in-process) and 2 local Dask worker
processes, cluster start included; the results must be identical.
Part ``morse``: Morse (D, a, r0) of copper from EMT's lattice constant, cohesive energy and
bulk modulus (examples/abc/morse-cu.yaml), and a variant observing the thermal first-shell
width instead of the bulk modulus; figures go to docs/figures/.

    python benchmarks/bench_abc.py                   # everything (about 6 minutes on 2 cores)
    python benchmarks/bench_abc.py --parts accuracy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent
STORE = HERE / "abc.json"
FIGURES = ROOT / "docs" / "figures"
ABCPY_PYTHON = Path("/work/venvs/abcpy/bin/python")
sys.path.insert(0, str(HERE))

N_DRAWS, SIGMA, PRIOR_MU, PRIOR_SD, OBSERVED = 4, 2.0, 0.0, 3.0, 2.0

ABCPY_SCRIPT = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from abcpy.backends import BackendDummy
from abcpy.continuousmodels import Normal
from abcpy.distances import Euclidean
from abcpy.inferences import PMCABC, RejectionABC
from abcpy.statistics import Identity
import abcpy
spec = json.loads(sys.argv[1])
out = []
for job in spec["jobs"]:
    mu = Normal([[spec["prior_mu"]], [spec["prior_sd"]]], name="mu")
    # the mean of 4 draws of N(mu, 2^2) is one draw of N(mu, 1)
    model = Normal([mu, [spec["sigma"] / np.sqrt(spec["n_draws"])]], name="y")
    distance = Euclidean(Identity(degree=1, cross=False))
    t0 = time.perf_counter()
    if job["method"] == "rejection":
        sampler = RejectionABC([model], [distance], BackendDummy(), seed=job["seed"])
        journal = sampler.sample([[np.array([spec["observed"]])]], n_samples=job["n_samples"],
                                 n_samples_per_param=1, epsilon=job["epsilon"])
    else:
        sampler = PMCABC([model], [distance], BackendDummy(), seed=job["seed"])
        journal = sampler.sample([[np.array([spec["observed"]])]], steps=job["steps"], epsilon_init=[job["epsilon_init"]],
                                 n_samples=job["n_samples"], n_samples_per_param=1, epsilon_percentile=job["percentile"])
    wall = time.perf_counter() - t0
    x = np.array(journal.get_accepted_parameters()).reshape(-1)
    w = np.array(journal.get_weights()).reshape(-1)
    w = w / w.sum()
    mean = float(np.sum(w * x)); sd = float(np.sqrt(np.sum(w * (x - mean) ** 2)))
    out.append({**job, "mean": mean, "std": sd, "n_simulations": int(journal.number_of_simulations[-1]),
                "wall_s": wall})
from importlib.metadata import version
print(json.dumps({"version": version("abcpy"), "results": out}))
"""


def analytic() -> tuple[float, float]:
    from ml4ms.bayes.examples import GaussianMean

    return GaussianMean(N_DRAWS, SIGMA).posterior(OBSERVED, PRIOR_MU, PRIOR_SD)


def _errors(rows: list[dict], mean: float, sd: float) -> dict:
    em = [r["mean"] - mean for r in rows]
    es = [r["std"] - sd for r in rows]
    return {"n_simulations": float(np.mean([r["n_simulations"] for r in rows])),
            "rms_error_mean": float(np.sqrt(np.mean(np.square(em)))),
            "rms_error_std": float(np.sqrt(np.mean(np.square(es)))),
            "wall_s": float(np.mean([r["wall_s"] for r in rows]))}


def run_accuracy(seeds: list[int]) -> dict:
    from ml4ms.bayes.abc import regression_adjust, rejection, smc
    from ml4ms.bayes.examples import GaussianMean
    from ml4ms.bayes.priors import Normal

    sim = GaussianMean(N_DRAWS, SIGMA)
    prior = {"mu": Normal(PRIOR_MU, PRIOR_SD)}
    mean, sd = analytic()
    out: dict = {"analytic": {"mean": mean, "std": sd}, "ml4ms": {}, "abcpy": {}}
    rows: dict[str, list] = {}
    tolerances = {}
    for n_sim in (2_000, 10_000, 50_000):
        for seed in seeds:
            t0 = time.perf_counter()
            r = rejection(sim, prior, [OBSERVED], "euclidean", n_sim // 50, n_simulations=n_sim, seed=seed,
                          progress=False)
            wall = time.perf_counter() - t0
            rows.setdefault(f"rejection {n_sim}", []).append(
                {"mean": r.mean()[0], "std": r.std()[0], "n_simulations": r.n_simulations, "wall_s": wall})
            tolerances.setdefault(n_sim, []).append(r.tolerance)
            t0 = time.perf_counter()
            loose = rejection(sim, prior, [OBSERVED], "euclidean", n_sim // 5, n_simulations=n_sim, seed=seed,
                              progress=False)
            a = regression_adjust(loose)
            wall = time.perf_counter() - t0
            rows.setdefault(f"rejection 20% + regression {n_sim}", []).append(
                {"mean": a.mean()[0], "std": a.std()[0], "n_simulations": a.n_simulations, "wall_s": wall})
    for n_samples, generations in ((200, 6), (500, 7), (1000, 8)):
        for seed in seeds:
            t0 = time.perf_counter()
            r = smc(sim, prior, [OBSERVED], "euclidean", n_samples, generations=generations, quantile=0.5,
                    seed=seed, progress=False)
            wall = time.perf_counter() - t0
            rows.setdefault(f"smc N={n_samples} T={generations}", []).append(
                {"mean": r.mean()[0], "std": r.std()[0], "n_simulations": r.n_simulations, "wall_s": wall,
                 "tolerance": r.tolerance})
    for name, group in rows.items():
        out["ml4ms"][name] = _errors(group, mean, sd)
        if name.startswith("smc"):
            out["ml4ms"][name]["final_tolerance"] = float(np.mean([g["tolerance"] for g in group]))
    out["ml4ms_rejection_tolerances"] = {str(k): float(np.mean(v)) for k, v in tolerances.items()}

    # ABCpy: rejection with the tolerance our rejection reached, PMCABC with the same population sizes
    if not ABCPY_PYTHON.exists():
        out["abcpy"] = {"error": f"{ABCPY_PYTHON} missing: create /work/venvs/abcpy (see the docstring)"}
        return out
    jobs = []
    for n_sim in (2_000, 10_000, 50_000):
        for seed in seeds:
            jobs.append({"name": f"rejection eps={np.mean(tolerances[n_sim]):.3g} N={n_sim // 50}",
                         "method": "rejection", "seed": seed, "n_samples": n_sim // 50,
                         "epsilon": float(np.mean(tolerances[n_sim]))})
    # ABCpy's PMCABC weighs particles in Python loops (quadratic in N): N=1000 takes many minutes
    for n_samples, steps in ((200, 6), (500, 7)):
        for seed in seeds:
            jobs.append({"name": f"pmcabc N={n_samples} T={steps}", "method": "pmc", "seed": seed,
                         "n_samples": n_samples, "steps": steps, "epsilon_init": 1e9, "percentile": 50})
    spec = {"jobs": jobs, "prior_mu": PRIOR_MU, "prior_sd": PRIOR_SD, "sigma": SIGMA, "n_draws": N_DRAWS,
            "observed": OBSERVED}
    proc = subprocess.run([str(ABCPY_PYTHON), "-c", ABCPY_SCRIPT, json.dumps(spec)], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        out["abcpy"] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        return out
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    out["abcpy_version"] = report["version"]
    groups: dict[str, list] = {}
    for r in report["results"]:
        groups.setdefault(r["name"], []).append(r)
    out["abcpy"] = {name: _errors(group, mean, sd) for name, group in groups.items()}
    out["abcpy_note"] = ("ABCpy 0.6.3 installed with --no-deps in /work/venvs/abcpy with numpy 1.23.5 (ABCpy uses "
                         "np.float, removed in numpy 1.24), scipy 1.11.4, scikit-learn 1.3.2, matplotlib<3.8, pot 0.9.1, "
                         "cloudpickle, tqdm; its dependency glmnet cannot be built here (no Fortran "
                         "compiler: 'Could not locate executable gfortran'), so a stand-in glmnet module whose LogitNet "
                         "raises is placed in that venv: only ABCpy's classifier distances (LogReg, PenLogReg) need it")
    return out


def run_parallel(cost_ms: float) -> dict:
    from ml4ms.bayes.abc import rejection, smc
    from ml4ms.bayes.examples import GaussianMean
    from ml4ms.bayes.priors import Normal

    sim = GaussianMean(N_DRAWS, SIGMA, cost_ms=cost_ms)
    prior = {"mu": Normal(PRIOR_MU, PRIOR_SD)}
    out: dict = {"cost_ms": cost_ms}
    results = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        r = rejection(sim, prior, [OBSERVED], "euclidean", 60, n_simulations=3000, seed=0, workers=workers,
                      progress=False)
        out[f"rejection_3000_workers{workers}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = smc(sim, prior, [OBSERVED], "euclidean", 200, generations=4, seed=0, workers=workers, progress=False)
        out[f"smc_workers{workers}_s"] = time.perf_counter() - t0
        out["smc_n_simulations"] = s.n_simulations
        results[workers] = (r, s)
    out["identical_results"] = bool(np.array_equal(results[1][0].samples, results[2][0].samples)
                                    and np.array_equal(results[1][1].samples, results[2][1].samples))
    # the cost of starting a local cluster of two processes, included in the times above
    from ml4ms.bayes._parallel import Runner

    t0 = time.perf_counter()
    with Runner(workers=2):
        pass
    out["cluster_start_s"] = time.perf_counter() - t0
    return out


def run_morse(workers: int) -> dict:
    from ml4ms.bayes.abc import corner_plot, regression_adjust, smc
    from ml4ms.bayes.examples import MorseFCC, emt_observed, emt_properties
    from ml4ms.bayes.priors import JointPrior, Uniform
    from ml4ms.report import _pyplot

    prior = JointPrior({"D": Uniform(0.1, 1.0), "a": Uniform(0.8, 2.5), "r0": Uniform(2.4, 3.4)})
    out: dict = {"emt": emt_properties("Cu")}
    variants = {
        "a0+Ecoh+B": (("lattice_constant", "cohesive_energy", "bulk_modulus"), [0.01, 0.05, 5.0]),
        "a0+Ecoh+rdf_width": (("lattice_constant", "cohesive_energy", "rdf_width"), [0.01, 0.05, 0.003]),
    }
    FIGURES.mkdir(parents=True, exist_ok=True)
    posterior_means = {}
    for name, (statistics, scale) in variants.items():
        noise = {k: v for k, v in zip(statistics, scale) if k != "rdf_width"}
        sim = MorseFCC(statistics=statistics, noise=noise)
        t0 = time.perf_counter()
        observed = emt_observed("Cu", statistics=statistics)
        t_obs = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = smc(sim, prior, observed, {"type": "euclidean", "scale": scale}, 300, generations=16, quantile=0.4,
                    min_tolerance=1.5, max_simulations=60_000, seed=0, workers=workers, progress=False)
        adjusted = regression_adjust(r)
        mean = dict(zip(r.parameter_names, r.mean()))
        posterior_means[name] = mean
        props = sim.properties(**mean)
        out[name] = {"statistics": list(statistics), "observed": observed.tolist(), "distance_scale": scale,
                     "posterior": r.summary(), "regression_adjusted": adjusted.summary(),
                     "n_simulations": r.n_simulations, "n_failed": r.n_failed, "generations": len(r.history),
                     "final_tolerance": r.tolerance, "stopped": r.stopped, "wall_s": r.wall_time,
                     "observed_from_emt_s": t_obs, "workers": workers,
                     "properties_at_posterior_mean": props}
        corner_plot(r, FIGURES / f"abc-morse-cu-{name.replace('+', '-').lower()}.png")
    # g(r) of EMT and of the two posterior-mean Morse potentials, thermalised at 300 K
    from ml4ms.bayes.examples import _rdf, _supercell

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sim = MorseFCC()
    r_e, g_e = _rdf(out["emt"], 300.0, _supercell(4), np.random.default_rng(0), 6.5, 160)
    ax.plot(r_e, g_e, "k-", lw=1.5, label="EMT (reference)")
    for k, (name, mean) in enumerate(posterior_means.items()):
        r_m, g_m = _rdf(sim.properties(**mean), 300.0, _supercell(4), np.random.default_rng(0), 6.5, 160)
        ax.plot(r_m, g_m, lw=1, color=f"C{k}", label=f"Morse, posterior mean from {name}")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title="Cu at 300 K (Einstein-thermalised 256-atom cell)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(FIGURES / "abc-morse-cu-rdf.png", dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    from _common import machine, pin_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="accuracy,parallel,morse")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cost-ms", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="workers of the Morse example")
    args = parser.parse_args(argv)
    pin_threads(1)
    parts = args.parts.split(",")
    store = json.loads(STORE.read_text()) if STORE.exists() else {}
    store["machine"] = machine()
    if "accuracy" in parts:
        store["accuracy"] = run_accuracy(list(range(args.seeds)))
        acc = store["accuracy"]
        print(f"analytic posterior: mean {acc['analytic']['mean']:.4f}, std {acc['analytic']['std']:.4f}")
        print(f"{'program':8s} {'method':42s} {'sims':>8s} {'rms err mean':>13s} {'rms err std':>12s} {'time s':>8s}")
        for program in ("ml4ms", "abcpy"):
            if "error" in acc[program]:
                print(f"{program}: {acc[program]['error']}")
                continue
            for name, row in acc[program].items():
                print(f"{program:8s} {name:42s} {row['n_simulations']:8.0f} {row['rms_error_mean']:13.4f} "
                      f"{row['rms_error_std']:12.4f} {row['wall_s']:8.2f}")
    if "parallel" in parts:
        store["parallel"] = run_parallel(args.cost_ms)
        print(json.dumps(store["parallel"], indent=1))
    if "morse" in parts:
        store["morse"] = run_morse(args.workers)
        for name in ("a0+Ecoh+B", "a0+Ecoh+rdf_width"):
            row = store["morse"][name]
            print(f"Morse from EMT, observing {name}: {row['n_simulations']} simulations, {row['wall_s']:.1f} s, "
                  f"tolerance {row['final_tolerance']:.3g}")
            for p, s in row["posterior"].items():
                print(f"  {p:3s} {s['mean']:.4f} ± {s['std']:.4f}  95% [{s['low']:.4f}, {s['high']:.4f}]")
            props = row["properties_at_posterior_mean"]
            print("  at the posterior mean: " + ", ".join(f"{k} {v:.4g}" for k, v in props.items()))
        print("  EMT: " + ", ".join(f"{k} {v:.4g}" for k, v in store["morse"]["emt"].items()))
    tmp = STORE.with_suffix(".tmp")
    tmp.write_text(json.dumps(store, indent=1, default=float) + "\n")
    tmp.replace(STORE)
    print(f"wrote {STORE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
