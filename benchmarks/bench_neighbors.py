"""Neighbour lists: ml4ms (vesin cell lists + sorting + checks) vs ASE's neighbor_list.

Rattled fcc Cu (a = 3.61 Å), cutoff 5 Å, 64 to 100,000 atoms, one thread each,
alternating the two codes and reporting medians. Target: >= 5x faster than ASE at 10,000 atoms.

Run: python benchmarks/bench_neighbors.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import alternate, machine, pin_threads, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 10,000 atoms only")
    args = parser.parse_args()
    pin_threads(1)
    from ase.build import bulk
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    from ml4ms.data import neighbor_list

    cutoff = 5.0
    repeats = {64: (2, 2, 4, 9), 500: (5, 5, 5, 7), 2048: (8, 8, 8, 5), 10_976: (14, 14, 14, 5),
               32_000: (20, 20, 20, 3), 100_000: (25, 25, 40, 1)}
    if args.quick:
        repeats = {n: r for n, r in repeats.items() if n <= 11_000}
    rows = ["| atoms | pairs | ASE (ms) | ml4ms (ms) | speed-up |", "|---:|---:|---:|---:|---:|"]
    for n_atoms, (a, b, c, reps) in repeats.items():
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((a, b, c))
        atoms.rattle(0.05, seed=1)
        assert len(atoms) == n_atoms, len(atoms)
        pos, cell, pbc = atoms.positions, atoms.cell.array, atoms.pbc
        n_pairs = len(neighbor_list(pos, cell, pbc, cutoff).i)
        t = alternate({"ase": lambda: ase_neighbor_list("ijS", atoms, cutoff),
                       "ml4ms": lambda: neighbor_list(pos, cell, pbc, cutoff)}, repeats=reps)
        rows.append(f"| {n_atoms:,} | {n_pairs:,} | {1000 * t['ase']:.1f} | {1000 * t['ml4ms']:.2f} | "
                    f"{t['ase'] / t['ml4ms']:.0f}x |")
        print(rows[-1], flush=True)
    body = (f"`python benchmarks/bench_neighbors.py` — rattled fcc Cu, cutoff {cutoff} Å, 1 thread, "
            f"median of alternating runs ({machine()}). Pairs and shifts are identical to ASE's "
            f"(tests/data/test_neighbors.py).\n\n" + "\n".join(rows))
    write_section("Neighbour lists", body)


if __name__ == "__main__":
    main()
