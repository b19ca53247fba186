"""The Zuo et al. (2020) mlearn benchmark: linear, quadratic and sparse-GP potentials for six elements.

For each element, ``examples/mlearn/<El>-linear.yaml``, ``<El>-quadratic.yaml`` (qSNAP-like)
and ``<El>-gap.yaml`` are fitted
on ``training.json`` (hyper-parameters chosen on a validation split carved out of it,
never on the test set) and evaluated on ``test.json``; the table puts the test MAE next
to the published GAP and MTP numbers, with fit time, peak memory and the cost of a force
call. Each fit runs in its own process (so that its peak memory is its own) on ``--threads``
threads (2 by default).

    python benchmarks/bench_mlearn.py                       # all six elements, both models
    python benchmarks/bench_mlearn.py --elements Cu,Si --models gap

Results accumulate in ``benchmarks/mlearn.json`` (one entry per element and model) and the
table in RESULTS.md is rebuilt from it, so a partial run keeps the other rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
STORE = HERE / "mlearn.json"
ELEMENTS = ["Ni", "Cu", "Li", "Mo", "Si", "Ge"]
MODELS = ["linear", "quadratic", "gap"]
# Test MAE published by Zuo et al. (2020), as re-tabulated in ../shared/reference/anchors.md §1.2:
# energy meV/atom, forces eV/Å.
PUBLISHED = {
    "GAP": {"Ni": (0.42, 0.02), "Cu": (0.46, 0.01), "Li": (0.49, 0.01), "Mo": (2.24, 0.09),
            "Si": (2.91, 0.07), "Ge": (2.06, 0.05)},
    "MTP": {"Ni": (0.48, 0.01), "Cu": (0.41, 0.01), "Li": (0.49, 0.01), "Mo": (2.83, 0.09),
            "Si": (2.21, 0.06), "Ge": (1.79, 0.05)},
}


def worker(element: str, kind: str, out: str, threads: str = "2") -> None:
    """Fit one configuration through the CLI, in this process, and record what it cost."""
    sys.path.insert(0, str(HERE))
    from _common import pin_threads

    pin_threads(int(threads))
    import numpy as np
    from ase.build import bulk

    from ml4ms.cli import main
    from ml4ms.serialization import load
    from ml4ms.simulate import Calculator

    config = ROOT / "examples" / "mlearn" / f"{element}-{kind}.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.ml4ms"
        start = time.perf_counter()
        code = main(["fit", str(config), "--output", str(model_path)])
        seconds = time.perf_counter() - start
        if code:
            raise SystemExit(f"fit of {config} failed")
        metrics = json.loads(model_path.with_suffix(".metrics.json").read_text())
        model = load(model_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    # cost of a force call on a 4x4x4 cubic cell, neighbour list included
    lattice = {"Ni": ("fcc", 3.52), "Cu": ("fcc", 3.62), "Li": ("bcc", 3.44), "Mo": ("bcc", 3.16),
               "Si": ("diamond", 5.47), "Ge": ("diamond", 5.76)}[element]
    atoms = bulk(element, lattice[0], a=lattice[1], cubic=True).repeat(4 if lattice[0] != "diamond" else 3)
    atoms.calc = Calculator(model)
    rng = np.random.default_rng(0)
    calls = []
    for _ in range(6):
        atoms.positions += 0.01 * rng.normal(size=atoms.positions.shape)
        t0 = time.perf_counter()
        atoms.get_forces()
        calls.append(time.perf_counter() - t0)
    cost = float(np.median(calls[1:])) / len(atoms) * 1e6
    record = {"element": element, "model": kind, "fit_seconds": seconds, "peak_mib": peak,
              "us_per_atom_force_call": cost, "cost_atoms": len(atoms),
              "test": {k: metrics["test"][k] for k in ("energy", "forces", "stress")},
              "uncertainty": metrics["test"].get("uncertainty"),
              "chosen": metrics.get("fit", {}).get("chosen"),
              "validation": metrics.get("fit", {}).get("validation"),
              "n_parameters": metrics.get("fit", {}).get("n_parameters"), "threads": int(threads)}
    Path(out).write_text(json.dumps(record))


def table(results: dict) -> str:
    lines = [
        "Test-set MAE on the mlearn data (Zuo et al., J. Phys. Chem. A 124, 731 (2020)); energies in "
        "meV/atom, forces in eV/Å per component. Published GAP and MTP numbers from "
        "`../shared/reference/anchors.md` §1.2. Hyper-parameters chosen on a 10 % validation split "
        "of `training.json`, 10 % of each group (the `search:` of each example configuration); fit time and peak memory "
        "of the whole `ml4ms fit` process on the threads given; force-call cost on a bulk cell of "
        "`cost atoms`, neighbour list included.",
        "",
        "| El | model | E MAE | F MAE | GAP E / F | MTP E / F | E vs GAP | F vs GAP | fit (s) "
        "| threads | peak (MiB) | µs/atom/force call | cost atoms | within 1σ / 2σ | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for element in ELEMENTS:
        for kind in MODELS:
            r = results.get(f"{element}-{kind}")
            if r is None:
                continue
            e, f = r["test"]["energy"]["mae"], r["test"]["forces"]["mae"]
            ge, gf = PUBLISHED["GAP"][element]
            me, mf = PUBLISHED["MTP"][element]
            u = r.get("uncertainty") or {}
            calibration = (f"{u['within_1sigma']:.2f} / {u['within_2sigma']:.2f}"
                           if u.get("within_1sigma") is not None else "-")
            chosen = ", ".join(f"{k}={v}" for k, v in (r.get("chosen") or {}).items())
            lines.append(
                f"| {element} | {kind} | {e:.2f} | {f:.4f} | {ge} / {gf} | {me} / {mf} | {e / ge:.2f}x "
                f"| {f / gf:.2f}x | {r['fit_seconds']:.0f} | {r.get('threads', 2)} | {r['peak_mib']:.0f} "
                f"| {r['us_per_atom_force_call']:.0f} | {r['cost_atoms']} | {calibration} | {chosen} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", default=",".join(ELEMENTS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each fit")
    parser.add_argument("--worker", nargs=4, metavar=("ELEMENT", "MODEL", "OUT", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    os.environ.setdefault("ML4MS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    results = json.loads(STORE.read_text()) if STORE.exists() else {}
    for element in args.elements.split(","):
        for kind in args.models.split(","):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                print(f"== {element} {kind}", flush=True)
                subprocess.run([sys.executable, __file__, "--worker", element, kind, out.name, str(args.threads)],
                               check=True)
                record = json.loads(Path(out.name).read_text())
            results[f"{element}-{kind}"] = record
            print(json.dumps(record, indent=1), flush=True)
            tmp = STORE.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
            os.replace(tmp, STORE)
    sys.path.insert(0, str(HERE))
    from _common import machine, write_section

    body = table(results)
    print(body)
    write_section("mlearn potentials (linear SOAP, sparse GP)", f"Machine: {machine()}.\n\n{body}")


if __name__ == "__main__":
    main()
