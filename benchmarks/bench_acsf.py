"""ACSF: ml4ms vs DScribe 2.1.2, features and gradients, 64-atom Si and 500-atom Cu.

The descriptor is ``standard_acsf([element], r_cut=5)``: G1, 16 shifted G2 and 32 G4
(4 eta x zeta in {1, 2, 4, 16} x lambda = +-1) = 49 functions, periodic. DScribe gets
the same parameters.

- features: ``create(atoms)`` of both (neighbour search included);
- gradients: what a potential needs, the vector-Jacobian product ``d sum(w * G) / dR``
  (ml4ms: one forward and one backward pass, neighbour search included) against
  DScribe's ``derivatives(atoms, attach=True)``, its only way to get them: central
  finite differences, the full Jacobian (n_atoms x n_atoms x 3 x F). For 500-atom Cu
  that takes ~20 minutes, so it is timed on the first ``--cu-atoms`` atoms and scaled
  to all 500 (its cost is linear in the atoms it differentiates against).

Each thread count (1 and 2 torch threads; DScribe has no threads within one structure)
runs in its own process, threads pinned before torch is imported; the programs run in
alternation (A B A B ...) and medians are reported. The machine is shared: the last
column says how many cores other processes kept busy meanwhile (from /proc/stat), which
is what makes 2-thread figures unreliable when it approaches 1. Writes the ``ACSF``
section of RESULTS.md.

Run: python benchmarks/bench_acsf.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import alternate, machine, pin_threads, write_section  # noqa: E402

R_CUT = 5.0


def _busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have been busy (user, system, irq, steal)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _timed(functions, repeats):
    """``alternate`` plus the number of cores other processes kept busy meanwhile."""
    busy, own, wall = _busy_seconds(), time.process_time(), time.perf_counter()
    medians = alternate(functions, repeats)
    if busy is None:
        return medians, float("nan")
    elapsed = time.perf_counter() - wall
    others = (_busy_seconds() - busy) - (time.process_time() - own)
    return medians, max(0.0, others / elapsed)


def run(threads: int, quick: bool, cu_atoms: int) -> dict:
    """Time both programs with ``threads`` torch threads; rows and notes as a dict."""
    pin_threads(threads)
    import numpy as np
    import torch
    from ase.build import bulk
    from dscribe.descriptors import ACSF as DScribeACSF

    from ml4ms.descriptors.acsf import standard_acsf

    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((5, 5, 5))
    systems = {"Si diamond, 64 atoms": si, "Cu fcc, 500 atoms": cu}
    repeats_features = 5 if quick else 11
    repeats_gradients = 2 if quick else 3
    rows, notes = [], []
    for name, atoms in systems.items():
        atoms.rattle(0.02, seed=1)
        element = atoms.get_chemical_symbols()[0]
        ours = standard_acsf([element], R_CUT, periodic=True)
        theirs = DScribeACSF(r_cut=R_CUT, species=[element], periodic=True,
                             g2_params=ours.g2_params, g4_params=ours.g4_params)
        weights = np.random.default_rng(0).normal(size=(len(atoms), ours.get_number_of_features()))
        w = torch.as_tensor(weights)
        include = list(range(len(atoms))) if len(atoms) <= 64 else list(range(cu_atoms))

        def ml4ms_features(atoms=atoms, ours=ours):
            return ours.create(atoms)

        def dscribe_features(atoms=atoms, theirs=theirs):
            return theirs.create(atoms)

        def ml4ms_gradient(atoms=atoms, ours=ours, w=w):
            graph = ours.graph([atoms])
            positions = graph.positions.requires_grad_()
            (ours(graph) * w).sum().backward()
            return positions.grad

        def dscribe_derivatives(atoms=atoms, theirs=theirs, include=include):
            return theirs.derivatives(atoms, include=include, attach=True, method="numerical",
                                      return_descriptor=False)

        t, others = _timed({"dscribe": dscribe_features, "ml4ms": ml4ms_features}, repeats_features)
        rows.append(f"| {name} | {threads} | features | {1e3 * t['dscribe']:.1f} | "
                    f"{1e3 * t['ml4ms']:.1f} | {t['dscribe'] / t['ml4ms']:.1f}x | {others:.2f} |")
        print(rows[-1], flush=True)
        t, others = _timed({"dscribe": dscribe_derivatives, "ml4ms": ml4ms_gradient},
                           repeats_gradients)
        scale = len(atoms) / len(include)
        dscribe_ms = 1e3 * t["dscribe"] * scale
        what = "gradients (VJP vs `derivatives`)"
        if scale != 1:
            what += f", DScribe scaled from {len(include)} atoms"
        rows.append(f"| {name} | {threads} | {what} | {dscribe_ms:,.0f} | "
                    f"{1e3 * t['ml4ms']:.1f} | {dscribe_ms / (1e3 * t['ml4ms']):,.0f}x | "
                    f"{others:.2f} |")
        print(rows[-1], flush=True)

        if threads == 1:  # the same numbers, checked once
            x, y = ml4ms_features(), dscribe_features()
            rel = float(np.abs(x - y).max() / np.abs(y).max())
            vjp = np.einsum("cf,caxf->ax", weights, dscribe_derivatives())
            grad = ml4ms_gradient().numpy()[include]
            grad_err = float(np.abs(grad - vjp).max() / np.abs(vjp).max())
            n_pairs = ours.graph([atoms]).edge_index.shape[1]
            notes.append(f"{name}: {n_pairs:,} pairs; features equal DScribe's to {rel:.1e} "
                         f"(max relative); the VJP equals DScribe's finite-difference Jacobian "
                         f"contracted with w to {grad_err:.1e}")
            print(notes[-1], flush=True)
    return {"rows": rows, "notes": notes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1 thread only")
    parser.add_argument("--cu-atoms", type=int, default=4,
                        help="atoms DScribe differentiates against for 500-atom Cu (then scaled)")
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.threads is not None:
        print("RESULT " + json.dumps(run(args.threads, args.quick, args.cu_atoms)), flush=True)
        return

    rows = ["| system | threads | what | DScribe (ms) | ml4ms (ms) | speed-up | others busy (cores) |",
            "|---|---:|---|---:|---:|---:|---:|"]
    notes = []
    for threads in (1,) if args.quick else (1, 2):
        command = [sys.executable, __file__, "--threads", str(threads), "--cu-atoms",
                   str(args.cu_atoms)] + (["--quick"] if args.quick else [])
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        for line in result.stdout.splitlines():
            if line.startswith("RESULT "):
                part = json.loads(line[len("RESULT "):])
                rows += part["rows"]
                notes += part["notes"]
            else:
                print(line, flush=True)
    body = (
        f"`python benchmarks/bench_acsf.py` — `standard_acsf(r_cut=5)`: G1 + 16 G2 + 32 G4 = 49 "
        f"functions, periodic, rattled crystals; median of alternating runs, one process per "
        f"thread count ({machine()}). Features: `create(atoms)` of both, neighbour search "
        "included. Gradients: ml4ms's vector-Jacobian product d sum(w·G)/dR (forward + backward, "
        "what forces need) against DScribe's `derivatives(attach=True)`, central finite "
        "differences of the full Jacobian (its only method for ACSF). DScribe uses one thread "
        "per structure whatever the setting. \"Others busy\": cores used by other processes "
        "during the measurement; near 1, a 2-thread torch run waits for its second core and "
        "its figure is not meaningful.\n\n"
        + "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    )
    write_section("ACSF", body)


if __name__ == "__main__":
    main()
