"""Lowest-energy conformer of n-pentane (or a longer alkane) by Bayesian optimisation over its torsions.

This is the conformer search of BOSS (Todorović et al. 2019) on a molecule whose answer
is known, so that the search can be checked:

- the energy comes from the TraPPE united-atom force field for alkanes (Martin & Siepmann,
  J. Phys. Chem. B 102, 2569 (1998)): CH3 and CH2 groups are single sites, with the
  TraPPE torsion potential on every C-C-C-C dihedral and Lennard-Jones interactions
  between sites more than three bonds apart. Bonds and angles stay rigid when a torsion
  turns, so their (constant) energy is left out. It is implemented below as an ASE
  calculator, :class:`TraPPEUA`, which also reads all-atom alkanes (hydrogens are
  ignored, each carbon standing for its CHn group);
- the reference minimum comes from a brute-force scan: a 15-degree grid over the
  torsions (30 degrees from three torsions on) refined by Nelder-Mead from its best
  points (hundreds to thousands of evaluations);
- Bayesian optimisation (:func:`ml4ms.bayes.bo.minimize`, periodic kernel over the
  angles) then finds the same conformer in a few dozen evaluations for pentane's two
  torsions. Hexane's three torsions (27 staggered minima) need more: see
  docs/bayes-bo.md for the measured figures.

Why not an ml4ms potential fitted to the aspirin GFN2-xTB frames? Those frames come from
molecular dynamics near one conformer; a potential fitted to them would be asked about
torsions it has never seen, and its "lowest conformer" would be an extrapolation. An
analytic force field keeps the example honest and fast (well under two minutes).

    python examples/bo/conformer.py                 # pentane, 2 torsions, writes runs/bo-5-alkane/
    python examples/bo/conformer.py --carbons 6     # hexane, 3 torsions
    ml4ms bo examples/bo/butane.yaml                # the same calculator from the command line
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import kB

#: TraPPE-UA Lennard-Jones parameters: (epsilon / k_B in K, sigma in Å) of CH3 and CH2 sites.
LJ = {"CH3": (98.0, 3.75), "CH2": (46.0, 3.95), "CH4": (148.0, 3.73)}
#: TraPPE torsion coefficients c1, c2, c3 / k_B in K: U = c1 (1 + cos φ) + c2 (1 - cos 2φ) + c3 (1 + cos 3φ).
TORSION = (355.03, -68.19, 791.32)
CC_BOND = 1.54  # Å, TraPPE's fixed C-C bond
CCC_ANGLE = 114.0  # degrees, TraPPE's equilibrium C-C-C angle


class TraPPEUA(Calculator):
    """TraPPE united-atom energy (eV) of a linear or branched alkane: torsions + non-bonded LJ.

    Carbons closer than ``bond_cutoff`` (Å) are bonded; hydrogens are ignored. Each carbon
    is a CH3 or CH2 site by its number of carbon neighbours (1 or 2; an isolated carbon
    is CH4). Only ``energy`` is implemented.
    """

    implemented_properties = ["energy", "free_energy"]

    def __init__(self, bond_cutoff: float = 1.8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bond_cutoff = bond_cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        from scipy.sparse.csgraph import shortest_path

        super().calculate(atoms, properties, system_changes)
        carbon = self.atoms.numbers == 6
        pos = self.atoms.positions[carbon]
        n = len(pos)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        bonded = (dist < self.bond_cutoff) & ~np.eye(n, dtype=bool)
        degree = bonded.sum(axis=1)
        if (degree > 2).any():
            raise ValueError("TraPPEUA here handles linear alkanes only (CH3 and CH2 sites)")
        kind = np.where(degree == 0, "CH4", np.where(degree == 1, "CH3", "CH2"))
        eps = np.array([LJ[k][0] for k in kind])
        sig = np.array([LJ[k][1] for k in kind])
        hops = shortest_path(bonded.astype(float), unweighted=True)
        i, j = np.nonzero(np.triu(hops > 3))  # beyond 1-4 (also unconnected molecules: inf)
        e_ij = np.sqrt(eps[i] * eps[j])
        s6 = ((0.5 * (sig[i] + sig[j])) / dist[i, j]) ** 6
        energy = np.sum(4.0 * e_ij * (s6 * s6 - s6))
        # dihedrals a-b-c-d along every path of three bonds
        quads = [(a, b, c, d) for b, c in zip(*np.nonzero(np.triu(bonded)))
                 for a in np.flatnonzero(bonded[b]) if a != c
                 for d in np.flatnonzero(bonded[c]) if d != b and d != a]
        if quads:
            q = np.array(quads)
            b1, b2, b3 = pos[q[:, 1]] - pos[q[:, 0]], pos[q[:, 2]] - pos[q[:, 1]], pos[q[:, 3]] - pos[q[:, 2]]
            n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
            m1 = np.cross(n1, b2 / np.linalg.norm(b2, axis=1, keepdims=True))
            phi = np.arctan2((m1 * n2).sum(1), (n1 * n2).sum(1))  # IUPAC: trans = ±180°
            c1, c2, c3 = TORSION
            energy += np.sum(c1 * (1 + np.cos(phi)) + c2 * (1 - np.cos(2 * phi)) + c3 * (1 + np.cos(3 * phi)))
        energy *= kB  # K -> eV
        self.results = {"energy": float(energy), "free_energy": float(energy)}


def alkane(n_carbons: int, torsions: float | list[float] = 180.0) -> Atoms:
    """A united-atom n-alkane (carbons only) with TraPPE's bond and angle and the given torsions (deg)."""
    theta = np.radians(CCC_ANGLE)
    pos = [np.zeros(3), np.array([CC_BOND, 0.0, 0.0])]
    pos.append(pos[1] + CC_BOND * np.array([-np.cos(theta), np.sin(theta), 0.0]))
    atoms = Atoms("C3", positions=pos)
    for k in range(3, n_carbons):  # place the next carbon trans, then turn it
        a, b = atoms.positions[k - 2], atoms.positions[k - 1]
        atoms += Atoms("C", positions=[b + (a - atoms.positions[k - 3])])  # zig-zag continuation
    angles = np.broadcast_to(np.asarray(torsions, dtype=float), (max(n_carbons - 3, 0),))
    from ml4ms.bayes.bo import torsion_mask

    for k, angle in enumerate(angles):
        quad = (k, k + 1, k + 2, k + 3)
        atoms.set_dihedral(*quad, angle, mask=torsion_mask(atoms, quad, mult=1.25))
    return atoms


def main() -> None:
    from ml4ms.bayes.bo import TorsionObjective, convergence_plot, minimize, surrogate_plot
    from ml4ms.report import write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carbons", type=int, default=5, help="chain length (default 5: pentane)")
    parser.add_argument("--n-iter", type=int, default=None, help="BO rounds (default 15 per torsion)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--acquisition", default="ei", choices=("ei", "lcb"))
    parser.add_argument("--cap", type=float, default=0.5,
                        help="eV: energies above this (steric clashes) reach the surrogate capped (default 0.5)")
    parser.add_argument("--output", default=None, help="default runs/bo-<n>-alkane")
    args = parser.parse_args()

    k = args.carbons - 3
    if k < 1:
        parser.error("--carbons must be at least 4")
    start = alkane(args.carbons, 60.0)  # an all-gauche start
    torsions = [(i, i + 1, i + 2, i + 3) for i in range(k)]
    objective = TorsionObjective(start, torsions, TraPPEUA())
    # TorsionObjective finds bonds from covalent radii x 1.2 = 1.82 Å, enough for 1.54 Å C-C bonds.
    out = Path(args.output or f"runs/bo-{args.carbons}-alkane")
    print(f"C{args.carbons} united-atom alkane, {k} torsions, start all-gauche "
          f"(E = {objective.reference_energy * 1000:.1f} meV above the zero of TraPPE's torsions)")

    # Reference: a 15-degree grid (30 from three torsions on), then Nelder-Mead from its 5 best points.
    from scipy.optimize import minimize as scipy_minimize

    t0 = time.perf_counter()
    grid = np.stack(np.meshgrid(*[np.arange(0.0, 360.0, 15.0 if k < 3 else 30.0)] * k, indexing="ij"), -1).reshape(-1, k)
    values = np.array([objective(g) for g in grid])
    refined = [scipy_minimize(objective, grid[i], method="Nelder-Mead", options={"xatol": 0.01, "fatol": 1e-9})
               for i in np.argsort(values)[:5]]
    ref = min(refined, key=lambda r: r.fun)
    n_ref = len(grid) + sum(r.nfev for r in refined)
    ref_x = np.mod(ref.x, 360.0)
    print(f"reference (grid + Nelder-Mead, {n_ref} evaluations, {time.perf_counter() - t0:.1f} s): "
          f"torsions {np.round(ref_x, 1)} deg, E - E0 = {ref.fun * 1000:.2f} meV")

    tol = 1e-3  # eV
    reached = {}

    def watch(result):
        if "n" not in reached and result.f_best <= ref.fun + tol:
            reached["n"] = int(np.argmax(result.best_history <= ref.fun + tol)) + 1

    t0 = time.perf_counter()
    n_iter = args.n_iter or 15 * k
    result = minimize(objective, objective.bounds, n_iter, periodic=objective.periodic,
                      acquisition=args.acquisition, seed=args.seed, callback=watch, progress=False,
                      y_cap=args.cap)
    wall = time.perf_counter() - t0
    if "n" not in reached and result.f_best <= ref.fun + tol:
        reached["n"] = int(np.argmax(result.best_history <= ref.fun + tol)) + 1
    dev = np.abs((result.x_best - ref_x + 180.0) % 360.0 - 180.0)
    print(f"Bayesian optimisation ({result.n_evaluations} evaluations, {wall:.1f} s): torsions "
          f"{np.round(result.x_best, 1)} deg, E - E0 = {result.f_best * 1000:.2f} meV "
          f"(max torsion deviation {dev.max():.1f} deg)")
    print(f"  predicted minimum {np.round(result.x_min_predicted, 1)} deg, "
          f"{result.f_min_predicted * 1000:.2f} ± {result.f_min_std * 1000:.2f} meV")
    print(f"  evaluations to reach the reference within {tol * 1000:.0f} meV: {reached.get('n', 'not reached')}")

    out.mkdir(parents=True, exist_ok=True)
    convergence_plot(result, out / "convergence.png", ylabel="E - E(start) (eV)")
    if k <= 2:
        surrogate_plot(result, out / "surrogate.png", labels=[f"torsion {i + 1} (deg)" for i in range(k)],
                       zlabel="E - E(start) (eV)")
    write_json(out / "results.json", {
        "molecule": f"C{args.carbons} united-atom alkane (TraPPE-UA)", "torsions": torsions,
        "reference": {"x": ref_x.tolist(), "f_eV": float(ref.fun), "n_evaluations": n_ref},
        "bo": result.to_dict(), "evaluations_to_tolerance": reached.get("n"), "tolerance_eV": tol,
        "bo_wall_time_s": wall})
    print(f"wrote {out}/results.json and plots")


if __name__ == "__main__":
    main()
