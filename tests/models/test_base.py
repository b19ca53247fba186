"""The AtomisticModel contract: elements, reference energies, batching, error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from ml4ms.errors import UnknownElementError
from ml4ms.models import LennardJones, predict
from ml4ms.simulate import Calculator


def test_species_and_reference_energies_accept_symbols_or_numbers():
    model = LennardJones(species=["Ar", 36], reference_energies={"Ar": -0.5, 36: -0.25})
    assert model.species == [18, 36] and model.elements == ["Ar", "Kr"]
    assert model.get_reference_energies() == {"Ar": -0.5, "Kr": -0.25}
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        LennardJones(species=["Xx"])


def test_isolated_atom_energy_is_its_reference_energy():
    model = LennardJones(species=["Ar"], reference_energies={"Ar": -0.75})
    atom = Atoms("Ar", positions=[[0, 0, 0]])
    atom.calc = Calculator(model)
    assert atom.get_potential_energy() == pytest.approx(-0.75, abs=1e-15)
    np.testing.assert_array_equal(atom.get_forces(), 0.0)


def test_predict_names_the_structure_holding_an_unknown_element_in_the_callers_list():
    model = LennardJones(species=[18])
    images = [bulk("Ar", "fcc", a=5.26), Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.8]]),
              Atoms("Cu", positions=[[0, 0, 0]])]
    with pytest.raises(UnknownElementError, match="structure 2: numbers: element Cu") as error:
        predict(model, images)
    assert error.value.index == 2


def test_calculator_leaves_the_callers_model_dtype_and_mode_alone():
    model = LennardJones(sigma=3.4, epsilon=0.0104).to(torch.float32).train()
    calc = Calculator(model)
    assert calc.dtype == torch.float32 and calc.model is model
    converted = Calculator(model, dtype=torch.float64)
    atoms = bulk("Ar", "fcc", a=5.26)
    atoms.calc = converted
    atoms.get_potential_energy()
    assert model.reference_energies.dtype == torch.float32 and model.training
    assert converted.model is not model


def test_slab_without_vacuum_vector_matches_ase_and_has_no_stress():
    from ase.build import fcc111
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.calculators.morse import MorsePotential

    from ml4ms.models import Morse

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=None)  # pbc (T, T, F), third lattice vector zero
    slab.rattle(0.02, seed=1)
    reference = slab.copy()
    reference.calc = MorsePotential(epsilon=0.3, r0=2.5)
    slab.calc = Calculator(Morse(epsilon=0.3, r0=2.5))
    assert slab.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(slab.get_forces(), reference.get_forces(), atol=1e-10)
    with pytest.raises(PropertyNotImplementedError):
        slab.get_stress()
