"""Training data labelled by ASE's EMT: a classical reference whose answers are known exactly.

A potential fitted to EMT labels can be checked against EMT itself -- its lattice
constant, elastic constants and vacancy-migration barrier -- which makes EMT data the
independent reference of the simulation tests, the tutorials and the MD benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from .dataset import AtomsDataset

#: Elements ASE's EMT describes.
EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")


@dataclass
class EMTReference:
    """``data``: labelled structures (groups ``bulk``, ``md<T>``, ``vacancy``, ``path``);
    ``crystal``: the conventional cubic cell relaxed with EMT; ``barrier``: EMT's own
    vacancy-migration path (:class:`~ml4ms.simulate.BarrierResult`) in the same supercell."""

    data: AtomsDataset
    crystal: Atoms
    barrier: Any
    supercell: int


def label_with_emt(atoms: Atoms, group: str) -> Atoms:
    """A copy of ``atoms`` with EMT's energy, forces and stress as ml4ms labels."""
    from ase.calculators.emt import EMT

    labelled = atoms.copy()
    labelled.calc = EMT()
    energy, forces, stress = (labelled.get_potential_energy(), labelled.get_forces(), labelled.get_stress())
    labelled.calc = None
    labelled.info.update(energy=float(energy), stress=np.asarray(stress), config_type=group)
    labelled.arrays["forces"] = np.asarray(forces)
    return labelled


def emt_dataset(element: str = "Cu", *, supercell: int = 2, temperatures: tuple[float, ...] = (300, 800, 1200),
                seed: int = 0) -> EMTReference:
    """Label rattled and strained bulk, MD snapshots, vacancy cells and NEB images with EMT.

    Parameters
    ----------
    element
        One of :data:`EMT_ELEMENTS` (fcc).
    supercell
        Repetitions of the conventional cubic cell (2: 32 atoms, 31 with a vacancy).
    temperatures
        Langevin MD temperatures of the snapshots, K (6 snapshots each).
    seed
        Seed of strains, rattles and thermostats.

    Returns
    -------
    EMTReference
        About 64 structures with energies (eV), forces (eV/Å) and stresses (eV/Å³).
    """
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from ..simulate import molecular_dynamics, relax, vacancy_migration

    if element not in EMT_ELEMENTS:
        raise ValueError(f"EMT describes {', '.join(EMT_ELEMENTS)}; got {element!r}")
    rng = np.random.default_rng(seed)
    crystal = bulk(element, cubic=True)
    crystal.calc = EMT()
    relax(crystal, cell=True, fmax=1e-5)
    base = crystal.repeat(supercell)
    images = []
    for _ in range(24):
        strained = base.copy()
        strain = rng.normal(0, 0.015, (3, 3))
        strained.set_cell(base.cell.array @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        strained.rattle(0.03 + 0.04 * rng.random(), seed=int(rng.integers(2**31)))
        images.append(label_with_emt(strained, "bulk"))
    md = base.copy()
    md.calc = EMT()
    for temperature in temperatures:
        options = dict(ensemble="langevin", temperature_K=temperature, timestep_fs=2, friction_per_fs=0.02,
                       progress=False)
        molecular_dynamics(md, steps=300, log_interval=50, seed=int(rng.integers(2**31)), **options)
        for _ in range(6):
            molecular_dynamics(md, steps=40, log_interval=40, seed=int(rng.integers(2**31)), **options)
            images.append(label_with_emt(md, f"md{temperature:g}"))
    path = vacancy_migration(crystal, EMT(), supercell=supercell, n_images=5, fmax=0.01)
    vacancy = path.images[0]
    for _ in range(12):
        cell = vacancy.copy()
        cell.rattle(0.05, seed=int(rng.integers(2**31)))
        strain = rng.normal(0, 0.01, (3, 3))
        cell.set_cell(cell.cell.array @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        images.append(label_with_emt(cell, "vacancy"))
    for image in path.images[1:-1]:
        for _ in range(2):
            moved = image.copy()
            moved.rattle(0.03, seed=int(rng.integers(2**31)))
            images.append(label_with_emt(moved, "path"))
    return EMTReference(AtomsDataset(images), crystal, path, supercell)
