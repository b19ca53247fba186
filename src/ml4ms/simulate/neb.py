"""Nudged elastic band barriers with error bars, and vacancy migration in a crystal.

The error bar of a barrier ``E_saddle - E_initial`` comes from the model's predicted
*covariance* of the two energies (:meth:`~ml4ms.simulate.Calculator.energy_covariance`):
the errors the two structures share (most of the crystal around the hopping atom) cancel,
which the two separate sigmas would miss. The geometry is held fixed in this propagation;
at stationary points of the path, a shift of the geometry changes the energy only to
second order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from ..errors import DataError

#: Interpolations of the initial band, by name.
INTERPOLATIONS = ("idpp", "linear")


@dataclass
class BarrierResult:
    """Energy along a minimum-energy path.

    Attributes
    ----------
    images
        The band, end points included.
    energies
        Energy of each image relative to the initial one, eV.
    sigma
        Predicted standard deviation of each relative energy (``E_k - E_0``), eV, or None
        for a model without uncertainties.
    path
        Cumulative distance along the band (minimum image), Å.
    barrier, reverse_barrier
        ``max(E) - E_initial`` and ``max(E) - E_final``, eV.
    barrier_sigma
        Standard deviation of ``barrier``, eV (or None).
    """

    images: list[Atoms]
    energies: np.ndarray
    sigma: np.ndarray | None
    path: np.ndarray
    converged: bool
    steps: int
    max_force: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def saddle_index(self) -> int:
        return int(np.argmax(self.energies))

    @property
    def barrier(self) -> float:
        return float(self.energies.max())

    @property
    def reverse_barrier(self) -> float:
        return float(self.energies.max() - self.energies[-1])

    @property
    def barrier_sigma(self) -> float | None:
        return None if self.sigma is None else float(self.sigma[self.saddle_index])

    def summary(self) -> dict[str, Any]:
        return {"barrier_eV": self.barrier, "barrier_sigma_eV": self.barrier_sigma,
                "reverse_barrier_eV": self.reverse_barrier, "saddle_index": self.saddle_index,
                "energies_eV": self.energies.tolist(),
                "sigma_eV": None if self.sigma is None else self.sigma.tolist(),
                "path_A": self.path.tolist(), "converged": self.converged, "steps": self.steps,
                "max_force_eV_per_A": self.max_force, "n_images": len(self.images), **self.extra}


def _check_end_points(initial: Atoms, final: Atoms) -> None:
    if len(initial) != len(final) or (initial.numbers != final.numbers).any():
        raise DataError(f"NEB end points must hold the same atoms in the same order: the initial structure has "
                        f"{initial.get_chemical_formula()} ({len(initial)} atoms), the final one "
                        f"{final.get_chemical_formula()} ({len(final)} atoms)", field="numbers")
    if not np.allclose(initial.cell.array, final.cell.array, atol=1e-6) or (initial.pbc != final.pbc).any():
        raise DataError("NEB end points must share the cell and periodicity", field="cell")


def path_sigma(calculator: BaseCalculator, images: Sequence[Atoms]) -> np.ndarray | None:
    """Standard deviations (eV) of ``E_k - E_0`` along a path, or None without uncertainties."""
    if not hasattr(calculator, "energy_covariance") or "energy_std" not in calculator.implemented_properties:
        return None
    c = calculator.energy_covariance(images)
    variance = np.diag(c) + c[0, 0] - 2 * c[:, 0]
    return np.sqrt(np.clip(variance, 0, None))


def neb(
    initial: Atoms,
    final: Atoms,
    calculator: BaseCalculator,
    *,
    n_images: int = 5,
    climb: bool = True,
    fmax: float = 0.03,
    steps: int = 500,
    k: float = 0.1,
    interpolation: str = "idpp",
    optimizer: str = "FIRE",
    method: str = "improvedtangent",
    logfile: str | None = None,
) -> BarrierResult:
    """Climbing-image NEB between two relaxed end points.

    Parameters
    ----------
    initial, final
        End points: same atoms in the same order, same cell (not changed).
    calculator
        Any ASE calculator; with an ml4ms :class:`~ml4ms.simulate.Calculator` of a model
        that predicts uncertainties, the energies come with sigmas.
    n_images
        Images between the end points.
    climb
        Climbing image (the highest image climbs to the saddle point).
    fmax, steps
        Convergence on the largest NEB force (eV/Å) and the most optimiser steps.
    k
        Spring constant, eV/Å².
    interpolation
        ``"idpp"`` (image-dependent pair potential) or ``"linear"``; minimum image either way.
    optimizer
        ``"FIRE"``, ``"BFGS"`` or ``"LBFGS"``.
    method
        ASE's NEB tangent method.

    Returns
    -------
    BarrierResult
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.geometry import find_mic
    from ase.mep import NEB

    from .relax import _optimizer

    _check_end_points(initial, final)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}")
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    images = [initial.copy() for _ in range(n_images + 1)] + [final.copy()]
    for image in images:
        image.calc = calculator
    band = NEB(images, k=k, climb=climb, method=method, allow_shared_calculator=True)
    band.interpolate(method=interpolation, mic=True)
    opt = _optimizer(optimizer)(band, logfile=logfile)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    forces = band.get_forces()
    max_force = float(np.sqrt((forces**2).sum(1)).max()) if len(forces) else 0.0
    steps_done = int(opt.get_number_of_steps())
    frozen = []
    for image in images:  # one evaluation each; the results stay with a detached copy
        snapshot = image.copy()
        snapshot.calc = SinglePointCalculator(snapshot, energy=image.get_potential_energy(),
                                              forces=image.get_forces())
        frozen.append(snapshot)
    energies = np.array([image.get_potential_energy() for image in frozen])
    displacements = [0.0]
    for a, b in zip(frozen[:-1], frozen[1:], strict=True):
        d, _ = find_mic(b.positions - a.positions, a.cell, a.pbc)
        displacements.append(float(np.linalg.norm(d)))
    return BarrierResult(frozen, energies - energies[0], path_sigma(calculator, frozen), np.cumsum(displacements),
                         converged, steps_done, max_force)


def vacancy_migration(
    crystal: Atoms,
    calculator: BaseCalculator,
    *,
    supercell: int | Sequence[int] | None = None,
    min_length: float = 10.0,
    vacancy: int = 0,
    relax_fmax: float = 0.01,
    **neb_options: Any,
) -> BarrierResult:
    """Barrier of a vacancy hopping to a nearest-neighbour site, with its error bar.

    Builds the supercell, removes atom ``vacancy``, moves its nearest neighbour into the
    empty site for the final state, relaxes both end points (positions, cell fixed),
    interpolates and runs climbing-image NEB (:func:`neb`).

    Parameters
    ----------
    crystal
        The perfect crystal (e.g. ``ase.build.bulk("Cu", cubic=True)``), at the lattice
        constant of the model (relax it first).
    calculator
        The potential (see :func:`neb`).
    supercell
        Repetitions of ``crystal``; default the fewest that make every cell height at least
        ``min_length`` Å (so the vacancy does not see its images within a typical cutoff).
    vacancy
        Index (in the supercell) of the atom removed.
    relax_fmax
        Force convergence of the end points, eV/Å.
    **neb_options
        Passed to :func:`neb` (``n_images``, ``fmax``, ``climb``, ...).

    Returns
    -------
    BarrierResult
        ``extra`` holds the supercell, the number of atoms and the hopping atom's index.
    """
    from ase.geometry import find_mic

    from .relax import relax

    if crystal.cell.rank < 3 or not crystal.pbc.all():
        raise DataError("vacancy migration needs a crystal periodic in three directions", field="cell")
    if supercell is None:
        heights = crystal.cell.volume / np.linalg.norm(np.cross(crystal.cell[[1, 2, 0]], crystal.cell[[2, 0, 1]]),
                                                         axis=1)
        supercell = tuple(int(np.ceil(min_length / h - 1e-9)) for h in heights)
    elif isinstance(supercell, int):
        supercell = (supercell,) * 3
    atoms = crystal.repeat(supercell)
    if not 0 <= vacancy < len(atoms):
        raise ValueError(f"vacancy index {vacancy} is outside the supercell of {len(atoms)} atoms")
    site = atoms.positions[vacancy].copy()
    del atoms[vacancy]
    d, lengths = find_mic(atoms.positions - site, atoms.cell, atoms.pbc)
    hopper = int(np.argmin(lengths))
    initial = atoms.copy()
    final = atoms.copy()
    final.positions[hopper] = site
    for end in (initial, final):
        end.calc = calculator
        relax(end, fmax=relax_fmax)
    result = neb(initial, final, calculator, **neb_options)
    result.extra.update(supercell=list(supercell), n_atoms=len(initial), hopping_atom=hopper,
                        hop_distance_A=float(lengths[hopper]))
    return result
