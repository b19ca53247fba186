"""Labelled structures from ASE's EMT: a smooth, known potential to learn."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT


def emt_cells(n: int, seed: int, rattle: float = 0.08, strain: float = 0.02, element: str = "Cu"):
    """Rattled, strained copies of a 32-atom fcc cell, labelled by EMT."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk(element, "fcc", a=3.61, cubic=True).repeat(2)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain * rng.normal(size=(3, 3))), scale_atoms=True)
        atoms.rattle(rattle, seed=int(rng.integers(2**31)))
        atoms.calc = EMT()
        atoms.info.update(energy=atoms.get_potential_energy(), stress=atoms.get_stress(), config_type="bulk")
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        out.append(atoms)
    return out


def alloy_cells(n: int, seed: int) -> list:
    """EMT-labelled rattled Cu-Au fcc cells of varying composition (8 atoms each)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.8, cubic=True).repeat((2, 1, 1))
        atoms.numbers[rng.random(len(atoms)) < rng.uniform(0.1, 0.9)] = 79
        atoms.rattle(0.05, seed=int(rng.integers(2**31)))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        out.append(atoms)
    return out


SOAP_SMALL = {"r_cut": 4.5, "n_max": 4, "l_max": 3, "sigma": 0.5, "rbf": "gto_smooth"}


@pytest.fixture(scope="session")
def emt_train():
    return emt_cells(24, seed=0)


@pytest.fixture(scope="session")
def emt_test():
    return emt_cells(8, seed=1)
