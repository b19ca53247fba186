"""The ASE calculator's ``energy_std`` and ``energies_std``: given on demand, never paid for in MD.

Oracle: a toy Lennard-Jones whose uncertainty is analytic (0.01 eV per atom for the
energy, 0.001 eV times the atomic number for each atom's energy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet

import ml4ms
from ml4ms.data.graph import AtomicGraph
from ml4ms.models import LennardJones
from ml4ms.simulate import Calculator

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 3.0 * 3.405, "smooth": True}


class CalculatorTestUncertainLJ(LennardJones):
    """Lennard-Jones with an analytic uncertainty."""

    supports_uncertainty = True

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        dtype = graph.positions.dtype
        n_atoms = torch.bincount(graph.batch, minlength=graph.n_structures).to(dtype)
        return {"energy": 0.01 * n_atoms, "energies": 0.001 * graph.numbers.to(dtype)}


@pytest.fixture
def counted(monkeypatch):
    """A calculator on the toy model, and the lists of its energy and uncertainty evaluations."""
    model = CalculatorTestUncertainLJ(**ARGON)
    energies, uncertainties = [], []
    atomic_energies, uncertainty = model.atomic_energies, model.uncertainty

    def count_energies(graph):
        energies.append(len(graph.numbers))
        return atomic_energies(graph)

    def count_uncertainties(graph):
        uncertainties.append(len(graph.numbers))
        return uncertainty(graph)

    monkeypatch.setattr(model, "atomic_energies", count_energies)
    monkeypatch.setattr(model, "uncertainty", count_uncertainties)
    return Calculator(model), energies, uncertainties


def mixed_crystal(seed: int = 0) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * 2
    atoms.numbers[[1, 5]] = 36  # two krypton atoms
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_energy_std_and_energies_std_are_given_when_asked():
    atoms = mixed_crystal()
    atoms.calc = Calculator(CalculatorTestUncertainLJ(**ARGON))
    energy_std = atoms.calc.get_property("energy_std", atoms)
    assert isinstance(energy_std, float) and energy_std == pytest.approx(0.01 * len(atoms), rel=1e-14)
    energies_std = atoms.calc.get_property("energies_std", atoms)
    assert energies_std.dtype == np.float64 and energies_std.shape == (len(atoms),)
    np.testing.assert_allclose(energies_std, 0.001 * atoms.numbers, rtol=1e-14)
    # the rest of the results came with them
    assert set(atoms.calc.results) == {"energy", "free_energy", "energies", "forces", "stress",
                                       "energy_std", "energies_std"}


def test_forces_and_md_never_compute_the_uncertainty(counted):
    calc, energies, uncertainties = counted
    atoms = mixed_crystal()
    atoms.calc = calc
    atoms.get_forces()
    atoms.get_potential_energies()
    atoms.get_stress()
    assert "energy_std" not in calc.results and uncertainties == []
    VelocityVerlet(atoms, timestep=1.0 * units.fs).run(3)
    assert uncertainties == [] and len(energies) > 1


def test_uncertainty_after_forces_of_the_same_geometry_needs_no_second_evaluation(counted):
    calc, energies, uncertainties = counted
    atoms = mixed_crystal()
    atoms.calc = calc
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    assert calc.get_property("energy_std", atoms) == pytest.approx(0.01 * len(atoms))
    calc.get_property("energies_std", atoms)
    assert len(energies) == 1 and len(uncertainties) == 1
    np.testing.assert_array_equal(atoms.get_forces(), forces)
    assert atoms.get_potential_energy() == energy


def test_uncertainty_first_gives_everything_in_one_evaluation(counted):
    calc, energies, uncertainties = counted
    atoms = mixed_crystal()
    atoms.calc = calc
    calc.get_property("energy_std", atoms)
    atoms.get_forces()
    atoms.get_stress()
    assert len(energies) == 1 and len(uncertainties) == 1


def test_a_new_geometry_gets_a_new_uncertainty(counted):
    calc, _, uncertainties = counted
    atoms = mixed_crystal()
    atoms.calc = calc
    calc.get_property("energy_std", atoms)
    atoms.positions[0, 0] += 0.1
    atoms.get_forces()
    assert "energy_std" not in calc.results  # stale results are gone, and not recomputed
    cluster = Atoms("ArKr", positions=[[0, 0, 0], [0, 0, 3.8]])
    cluster.calc = calc
    np.testing.assert_allclose(calc.get_property("energies_std", cluster), [0.018, 0.036], rtol=1e-14)
    assert calc.get_property("energy_std", cluster) == pytest.approx(0.02)
    assert len(uncertainties) == 2


def test_a_model_without_uncertainties_does_not_implement_them():
    calc = Calculator(LennardJones(**ARGON))
    assert "energy_std" not in calc.implemented_properties
    assert "energies_std" not in calc.implemented_properties
    assert Calculator.implemented_properties == ["energy", "free_energy", "energies", "forces", "stress"]
    atoms = mixed_crystal()
    atoms.calc = calc
    with pytest.raises(PropertyNotImplementedError):
        calc.get_property("energy_std", atoms)
    with pytest.raises(PropertyNotImplementedError, match="LennardJones does not predict uncertainties"):
        calc.calculate(atoms, ["energy_std"])


def test_a_calculator_from_a_model_file_and_another_dtype_keeps_the_uncertainty(tmp_path):
    path = ml4ms.save(CalculatorTestUncertainLJ(**ARGON), tmp_path / "toy.ml4ms")
    atoms = mixed_crystal()
    atoms.calc = Calculator(path, dtype=torch.float32)
    assert atoms.calc.get_property("energy_std", atoms) == pytest.approx(0.01 * len(atoms), rel=1e-6)


def test_a_committee_gives_the_error_bar_of_an_energy_difference_from_its_members():
    from ml4ms.models import Committee

    members = [LennardJones(**{**ARGON, "epsilon": e, "sigma": s})
               for e, s in ((0.0100, 3.40), (0.0106, 3.41), (0.0103, 3.39), (0.0101, 3.42))]
    committee = Committee.from_models(members)
    crystal = bulk("Ar", "fcc", a=5.26, cubic=True)
    strained = crystal.copy()
    strained.set_cell(crystal.cell.array * 1.02, scale_atoms=True)
    images = [crystal, strained]
    covariance = Calculator(committee).energy_covariance(images)
    difference = []
    for member in members:
        energies = []
        for atoms in images:
            work = atoms.copy()
            work.calc = Calculator(member)
            energies.append(work.get_potential_energy())
        difference.append(energies[1] - energies[0])
    sigma = np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    assert sigma == pytest.approx(np.std(difference, ddof=1), rel=1e-9)
    atoms = crystal.copy()
    atoms.calc = Calculator(committee)
    assert atoms.calc.get_property("energy_std", atoms) == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-9)
