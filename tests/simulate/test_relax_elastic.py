"""Relaxation, the equation of state and elastic constants.

Oracles: thermodynamic identities that tie independent routes together -- the cell
relaxation's lattice constant is the minimum of the energy-volume curve; the bulk modulus
of that curve is the Voigt average ``(C11 + 2 C12) / 3`` of the stress-strain constants;
C44 and C11 - C12 are also the curvatures of the *energy* under a shear and a tetragonal
strain; pair potentials obey the Cauchy relation C12 = C44 at zero stress; and the
constants implied by labelled strained cells are those of the potential that labelled them.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT

from ml4ms.errors import DataError
from ml4ms.models import LennardJones
from ml4ms.simulate import (
    Calculator,
    elastic_constants,
    elastic_constants_from_data,
    equation_of_state,
    relax,
)
from ml4ms.simulate.elastic import strain_of, voigt_strain_tensor

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 3.0 * 3.405, "smooth": True}


def emt_copper(a: float = 3.61) -> Atoms:
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.calc = EMT()
    return atoms


def strained(atoms: Atoms, voigt) -> Atoms:
    """A copy of ``atoms`` in the cell deformed by the Voigt strain (engineering shears), EMT attached."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + voigt_strain_tensor(voigt)), scale_atoms=True)
    out.calc = EMT()
    return out


# ----------------------------------------------------------------------------- relax, EOS
def test_cell_relaxation_finds_the_minimum_of_the_equation_of_state():
    # start well off the minimum (EMT's lattice constant is near 3.59 Å), slightly sheared
    atoms = emt_copper(3.68)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + voigt_strain_tensor([0, 0, 0, 0, 0, 0.01])), scale_atoms=True)
    result = relax(atoms, cell=True, fmax=1e-5)
    assert result.converged and result.atoms is atoms
    assert result.max_stress_GPa is not None and result.max_stress_GPa < 1e-3
    assert result.energy == pytest.approx(EMT().get_potential_energy(atoms), abs=1e-10)
    # the cell came back cubic
    np.testing.assert_allclose(atoms.cell.angles(), 90.0, atol=1e-3)
    lengths = atoms.cell.lengths()
    assert np.ptp(lengths) < 1e-4
    # oracle: the minimum of E(V) under isotropic scaling of the unrelaxed cubic cell
    eos = equation_of_state(emt_copper(3.61), strains=np.linspace(-0.025, 0.015, 9))
    assert lengths.mean() == pytest.approx(eos.lattice_constant, abs=1e-3)
    assert eos.volume == pytest.approx(atoms.get_volume(), rel=3e-3)
    assert eos.energy == pytest.approx(result.energy, abs=1e-4)


def test_relax_positions_only_keeps_the_cell_and_removes_the_forces():
    atoms = emt_copper(3.61).repeat(2)
    atoms.rattle(0.05, seed=3)
    atoms.calc = EMT()
    cell = atoms.cell.array.copy()
    result = relax(atoms, fmax=1e-3)
    assert result.converged and result.max_stress_GPa is None
    np.testing.assert_array_equal(atoms.cell.array, cell)
    assert np.abs(EMT().get_forces(atoms)).max() < 1e-3
    # a perfect fcc crystal: every atom back on a lattice site of the unchanged cell
    perfect = emt_copper(3.61).repeat(2)
    energy = EMT().get_potential_energy(perfect)
    assert result.energy == pytest.approx(energy, abs=1e-5)


def test_relax_refuses_atoms_without_calculator_or_cell():
    with pytest.raises(ValueError, match="calculator"):
        relax(bulk("Cu", cubic=True))
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]])
    cluster.calc = EMT()
    with pytest.raises(ValueError, match="cell"):
        relax(cluster, cell=True)
    with pytest.raises(ValueError, match="optimizer"):
        relax(emt_copper(), optimizer="steepest")


def test_bulk_modulus_of_the_equation_of_state_is_the_voigt_average_of_the_elastic_constants(emt_cu):
    eos = equation_of_state(emt_cu, strains=np.linspace(-0.01, 0.01, 9))
    assert eos.lattice_constant == pytest.approx(emt_cu.cell[0, 0], abs=1e-4)
    c = elastic_constants(emt_cu)
    cubic = c.cubic()
    assert c.bulk_modulus_GPa == pytest.approx((cubic["C11"] + 2 * cubic["C12"]) / 3, rel=1e-12)
    assert eos.bulk_modulus_GPa == pytest.approx(c.bulk_modulus_GPa, rel=0.02)
    # and not by a trivial coincidence: copper is stiff
    assert 100 < eos.bulk_modulus_GPa < 200


# ----------------------------------------------------------------------------- elastic_constants
def test_elastic_constants_equal_the_curvature_of_the_energy(emt_cu):
    """Stress-strain C44 and C11 - C12 against energy-strain curvatures (no stress used)."""
    c = elastic_constants(emt_cu, strain=0.004)
    cubic = c.cubic()
    volume = emt_cu.get_volume()
    amounts = np.array([-0.01, -0.005, 0.0, 0.005, 0.01])

    def curvature(direction) -> float:
        energies = [EMT().get_potential_energy(strained(emt_cu, x * np.asarray(direction, float)))
                    for x in amounts]
        return np.polyfit(amounts, energies, 4)[2] * 2 / volume / units.GPa  # d²E/dx² / V

    # engineering shear gamma: E = E0 + V C44 gamma² / 2
    assert curvature([0, 0, 0, 1, 0, 0]) == pytest.approx(cubic["C44"], rel=0.01)
    # (x, -x, 0): E = E0 + V (C11 - C12) x²
    assert curvature([1, -1, 0, 0, 0, 0]) / 2 == pytest.approx(cubic["C11"] - cubic["C12"], rel=0.01)
    # cubic symmetry: every cubic-equivalent entry equal, the others zero, C symmetric
    np.testing.assert_allclose(np.diag(c.C)[:3], cubic["C11"], rtol=1e-4)
    np.testing.assert_allclose(np.diag(c.C)[3:], cubic["C44"], rtol=1e-4)
    off = np.ones((6, 6), bool)
    off[:3, :3] = False
    off[np.diag_indices(6)] = False
    assert np.abs(c.C[off]).max() < 1e-3 * cubic["C11"]
    np.testing.assert_array_equal(c.C, c.C.T)


def test_lennard_jones_crystal_obeys_the_cauchy_relation(emt_cu):
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    atoms.calc = Calculator(LennardJones(**ARGON))
    relax(atoms, cell=True, fmax=1e-7)
    assert np.abs(atoms.get_stress()).max() / units.GPa < 1e-5
    cubic = elastic_constants(atoms, strain=0.002).cubic()
    assert cubic["C12"] == pytest.approx(cubic["C44"], rel=0.01)
    assert cubic["C11"] > 1.5 * cubic["C12"] > 0
    # the check can fail: EMT is no pair potential, and its C12 and C44 differ by far more than 1 %
    emt = elastic_constants(emt_cu).cubic()
    assert abs(emt["C12"] / emt["C44"] - 1) > 0.1


def test_elastic_constants_refuse_a_cell_without_three_vectors_or_a_large_strain(emt_cu):
    cluster = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]])
    cluster.calc = EMT()
    with pytest.raises(ValueError):
        elastic_constants(cluster)
    with pytest.raises(ValueError, match="strain"):
        elastic_constants(emt_cu, strain=0.2)


# ----------------------------------------------------------------------------- from data
def labelled_strain_set(crystal: Atoms, amounts=(-0.02, -0.01, -0.005, 0.005, 0.01, 0.02)) -> list[Atoms]:
    """The unstrained cell and each Voigt component strained by ``amounts``, EMT stresses in info."""
    images = []
    for j in [None, *range(6)]:
        for x in [0.0] if j is None else amounts:
            voigt = np.zeros(6)
            if j is not None:
                voigt[j] = x
            atoms = strained(crystal, voigt)
            atoms.info["stress"] = atoms.get_stress(voigt=True)
            atoms.info["energy"] = atoms.get_potential_energy()
            atoms.calc = None
            images.append(atoms)
    return images


def test_elastic_constants_from_labelled_strained_cells_are_those_of_the_labelling_potential(emt_cu):
    images = labelled_strain_set(emt_cu)
    rng = np.random.default_rng(0)
    images = [images[i] for i in rng.permutation(len(images))]  # the order does not matter
    from_data = elastic_constants_from_data(images)
    model = elastic_constants(emt_cu)
    assert from_data.n_points == len(images) == 37
    for name, value in model.cubic().items():
        assert from_data.cubic()[name] == pytest.approx(value, rel=0.03), name
    np.testing.assert_allclose(from_data.C, model.C, atol=0.03 * model.cubic()["C11"])
    assert from_data.residual_GPa is not None and from_data.residual_GPa < 1.0
    # the reference cell given explicitly, and cells of another supercell (left out), change nothing
    bigger = labelled_strain_set(emt_cu.repeat((2, 1, 1)), amounts=(0.01,))
    again = elastic_constants_from_data(images + bigger[:3], reference=emt_cu.cell.array)
    np.testing.assert_allclose(again.C, from_data.C, rtol=1e-6, atol=1e-6)


def test_elastic_constants_from_data_leave_out_cells_past_max_strain(emt_cu):
    images = labelled_strain_set(emt_cu, amounts=(-0.01, -0.005, 0.005, 0.01))
    # a wildly strained cell with a wrong stress would spoil the fit if it were kept
    wild = strained(emt_cu, [0.08, 0, 0, 0, 0, 0])
    wild.info["stress"] = np.full(6, 10.0)
    result = elastic_constants_from_data([*images, wild], max_strain=0.03)
    assert result.n_points == len(images)
    assert result.cubic()["C11"] == pytest.approx(elastic_constants(emt_cu).cubic()["C11"], rel=0.03)


def test_elastic_constants_from_data_need_all_six_strain_components(emt_cu):
    images = [a for a in labelled_strain_set(emt_cu)
              if np.abs(strain_of(a.cell.array, emt_cu.cell.array)[3:]).max() < 1e-9]
    assert len(images) == 19  # the unstrained cell and the three normal strains only
    with pytest.raises(DataError, match="six"):
        elastic_constants_from_data(images)


def test_elastic_constants_from_data_need_stresses(emt_cu):
    images = labelled_strain_set(emt_cu)
    for atoms in images:
        del atoms.info["stress"]
    with pytest.raises(DataError, match="stress"):
        elastic_constants_from_data(images)
    with pytest.raises(DataError):
        elastic_constants_from_data([])


# ----------------------------------------------------------------------------- strain helpers
def test_voigt_strain_tensor_uses_engineering_shears():
    eps = voigt_strain_tensor([1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(eps, [[1, 3, 2.5], [3, 2, 2], [2.5, 2, 3]])


@pytest.mark.parametrize("cubic", [True, False], ids=["cubic", "triclinic"])
def test_strain_of_inverts_voigt_strain_tensor(cubic):
    reference = bulk("Cu", "fcc", a=3.6, cubic=cubic).cell.array
    rng = np.random.default_rng(1)
    for _ in range(5):
        voigt = rng.uniform(-0.03, 0.03, 6)
        cell = reference @ (np.eye(3) + voigt_strain_tensor(voigt))
        np.testing.assert_allclose(strain_of(cell, reference), voigt, atol=1e-13)
    # a rigid rotation adds nothing to first order
    theta = 1e-4
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    voigt = np.array([0.01, -0.004, 0.002, 0.003, -0.001, 0.005])
    cell = reference @ (np.eye(3) + voigt_strain_tensor(voigt)) @ rotation.T
    np.testing.assert_allclose(strain_of(cell, reference), voigt, atol=5e-6)
    np.testing.assert_allclose(strain_of(reference, reference), 0, atol=1e-15)
