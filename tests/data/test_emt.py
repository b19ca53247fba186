"""EMT-labelled reference data: labels are EMT's own, in ml4ms's label keys and units."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from ml4ms.data.emt import emt_dataset, label_with_emt


def test_labels_are_emts_energy_forces_and_stress():
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.05, seed=3)
    labelled = label_with_emt(atoms, "bulk")
    atoms.calc = EMT()
    assert labelled.info["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(labelled.arrays["forces"], atoms.get_forces(), atol=1e-12)
    np.testing.assert_allclose(labelled.info["stress"], atoms.get_stress(), atol=1e-12)
    assert labelled.info["config_type"] == "bulk" and labelled.calc is None


def test_an_element_emt_does_not_describe_is_refused():
    with pytest.raises(ValueError, match="EMT describes"):
        emt_dataset("Si")
