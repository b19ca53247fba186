"""Error metrics in the community's units, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.units import GPa

from ml4ms.models.predict import Predictions
from ml4ms.training.metrics import error_metrics


def _case():
    a = Atoms("Cu4", positions=np.eye(4, 3) * 2.5, cell=np.eye(3) * 5, pbc=True)
    a.info.update(energy=-10.0, stress=np.zeros(6), config_type="bulk")
    a.arrays["forces"] = np.zeros((4, 3))
    b = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]])
    b.info.update(energy=-4.0, config_type="dimer")
    b.arrays["forces"] = np.zeros((2, 3))
    predicted_stress = np.array([[1.0, 0, 0, 0, 0, -1.0], [np.nan] * 6]) * GPa
    forces = [np.full((4, 3), 0.1), np.zeros((2, 3))]
    forces[1][0, 2] = -0.6
    return [a, b], Predictions(energy=np.array([-9.99, -4.02]), forces=forces,
                               stress=predicted_stress, n_atoms=np.array([4, 2]))


def test_energy_errors_are_per_atom_in_mev():
    metrics = error_metrics(*_case())
    # +0.01 eV over 4 atoms = 2.5 meV/atom; -0.02 eV over 2 atoms = -10 meV/atom
    assert metrics["energy"]["mae"] == pytest.approx((2.5 + 10.0) / 2)
    assert metrics["energy"]["rmse"] == pytest.approx(np.sqrt((2.5**2 + 10.0**2) / 2))


def test_force_errors_are_per_component_in_ev_per_angstrom():
    metrics = error_metrics(*_case())
    # 12 components of 0.1 and 6 components of which one is 0.6
    assert metrics["forces"]["mae"] == pytest.approx((12 * 0.1 + 0.6) / 18)
    assert metrics["forces"]["rmse"] == pytest.approx(np.sqrt((12 * 0.01 + 0.36) / 18))


def test_stress_errors_are_in_gpa_over_structures_with_a_stress():
    metrics = error_metrics(*_case())
    assert metrics["stress"]["mae"] == pytest.approx(2.0 / 6)  # |1| + |-1| GPa over 6 components
    assert metrics["by_group"]["dimer"]["stress"] is None


def test_groups_are_reported_separately():
    metrics = error_metrics(*_case())
    assert metrics["by_group"]["bulk"]["energy"]["mae"] == pytest.approx(2.5)
    assert metrics["by_group"]["dimer"]["n_atoms"] == 2
