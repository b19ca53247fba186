"""Relaxation of positions and cell, and the equation of state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units

#: Optimisers :func:`relax` takes, by name.
OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


@dataclass
class RelaxResult:
    """A relaxed structure: ``atoms`` (the input, changed in place), its energy (eV), the
    largest remaining force (eV/Å) and stress component (GPa, when the cell was relaxed),
    whether ``fmax`` was reached, and the number of optimiser steps."""

    atoms: Atoms
    energy: float
    max_force: float
    max_stress_GPa: float | None
    converged: bool
    steps: int

    def summary(self) -> dict[str, Any]:
        cell = self.atoms.cell
        return {"energy_eV": self.energy, "energy_per_atom_eV": self.energy / len(self.atoms),
                "max_force_eV_per_A": self.max_force, "max_stress_GPa": self.max_stress_GPa,
                "converged": self.converged, "steps": self.steps, "n_atoms": len(self.atoms),
                "cell_A": cell.array.tolist(), "cell_lengths_A": cell.lengths().tolist(),
                "cell_angles_deg": cell.angles().tolist(), "volume_A3": float(abs(cell.volume))}


def _optimizer(name: str):
    from ase import optimize

    if name.upper() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
    return getattr(optimize, name.upper())


def relax(
    atoms: Atoms,
    *,
    cell: bool = False,
    hydrostatic: bool = False,
    fmax: float = 0.01,
    steps: int = 1000,
    optimizer: str = "FIRE",
    pressure_GPa: float = 0.0,
    trajectory: str | os.PathLike | None = None,
    logfile: str | None = None,
) -> RelaxResult:
    """Relax the positions (and with ``cell=True`` the cell) of ``atoms`` in place.

    Parameters
    ----------
    atoms
        The structure, with ``atoms.calc`` set.
    cell
        Relax the cell too, through ASE's ``FrechetCellFilter`` (``hydrostatic=True``
        keeps its shape). Needs a cell with three lattice vectors.
    fmax
        Convergence: largest force, eV/Å (for the cell, the filter's generalised force).
    steps
        Most optimiser steps.
    optimizer
        ``"FIRE"``, ``"BFGS"`` or ``"LBFGS"``.
    pressure_GPa
        External pressure for the cell relaxation, GPa.
    trajectory, logfile
        Passed to the ASE optimiser (``logfile=None`` keeps it quiet; ``"-"`` prints).

    Returns
    -------
    RelaxResult
    """
    if atoms.calc is None:
        raise ValueError("the atoms have no calculator: set atoms.calc first")
    target: Any = atoms
    if cell:
        if atoms.cell.rank < 3:
            raise ValueError("relaxing the cell needs a periodic cell with three lattice vectors")
        from ase.filters import FrechetCellFilter

        target = FrechetCellFilter(atoms, hydrostatic_strain=hydrostatic,
                                   scalar_pressure=pressure_GPa * units.GPa)
    opt = _optimizer(optimizer)(target, logfile=logfile,
                                trajectory=None if trajectory is None else str(trajectory))
    converged = bool(opt.run(fmax=fmax, steps=steps))
    forces = atoms.get_forces()
    max_force = float(np.sqrt((forces**2).sum(1)).max()) if len(atoms) else 0.0
    max_stress = float(np.abs(atoms.get_stress()).max() / units.GPa) if cell else None
    return RelaxResult(atoms, float(atoms.get_potential_energy()), max_force, max_stress, converged,
                       int(opt.get_number_of_steps()))


@dataclass
class EOSResult:
    """Equation of state fitted to energy against volume.

    Attributes
    ----------
    volume, energy
        Equilibrium volume (Å³, of the cell given) and energy (eV).
    bulk_modulus_GPa
        Bulk modulus at the equilibrium volume, GPa.
    lattice_constant
        Length of the first cell vector at the equilibrium volume (isotropic scaling), Å:
        the lattice constant when the cell given is the conventional cubic cell.
    volumes, energies
        The sampled points, Å³ and eV.
    """

    volume: float
    energy: float
    bulk_modulus_GPa: float
    lattice_constant: float
    volumes: np.ndarray
    energies: np.ndarray
    eos: str

    def summary(self) -> dict[str, Any]:
        return {"volume_A3": self.volume, "energy_eV": self.energy, "bulk_modulus_GPa": self.bulk_modulus_GPa,
                "lattice_constant_A": self.lattice_constant, "eos": self.eos,
                "volumes_A3": self.volumes.tolist(), "energies_eV": self.energies.tolist()}


def equation_of_state(
    atoms: Atoms,
    *,
    strains: np.ndarray | None = None,
    relax_positions: bool = False,
    fmax: float = 0.01,
    eos: str = "birchmurnaghan",
) -> EOSResult:
    """Energy against volume under isotropic scaling, fitted by an equation of state.

    Parameters
    ----------
    atoms
        The structure with its calculator (not changed).
    strains
        Linear strains of the cell; default 9 points in [-2 %, +2 %].
    relax_positions
        Relax the positions at each volume (needed when they are not fixed by symmetry).
    eos
        Any form ``ase.eos.EquationOfState`` knows ("birchmurnaghan", "murnaghan", "sj", ...).

    Returns
    -------
    EOSResult
    """
    from ase.eos import EquationOfState

    if atoms.cell.rank < 3:
        raise ValueError("an equation of state needs a periodic cell with three lattice vectors")
    strains = np.linspace(-0.02, 0.02, 9) if strains is None else np.asarray(strains, dtype=float)
    volumes, energies = [], []
    for strain in strains:
        scaled = atoms.copy()
        scaled.calc = atoms.calc
        scaled.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
        if relax_positions:
            relax(scaled, fmax=fmax)
        volumes.append(scaled.get_volume())
        energies.append(scaled.get_potential_energy())
    fit = EquationOfState(volumes, energies, eos=eos)
    v0, e0, b = fit.fit()
    a0 = float(np.linalg.norm(atoms.cell[0]) * (v0 / atoms.get_volume()) ** (1 / 3))
    return EOSResult(float(v0), float(e0), float(b / units.GPa), a0, np.array(volumes), np.array(energies), eos)
