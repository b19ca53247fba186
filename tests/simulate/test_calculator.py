"""The ASE calculator: ASE's contract, ASE's numbers, caching, model files, errors, and MD.

Oracles: ASE's own Lennard-Jones calculator, ASE's finite-difference forces and stress
(``ase.calculators.fd``, the non-deprecated home of ``Calculator.calculate_numerical_*``),
and conservation of energy in NVE molecular dynamics.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

import ml4ms
from ml4ms.errors import UnknownElementError
from ml4ms.models import LennardJones, predict
from ml4ms.simulate import Calculator

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 3.0 * 3.405, "smooth": True}


def argon_model(**kwargs) -> LennardJones:
    return LennardJones(**{**ARGON, **kwargs})


def argon_crystal(repeat=(2, 2, 2), seed: int = 0) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * repeat
    atoms.rattle(0.08, seed=seed)
    return atoms


def triclinic_argon(seed: int = 1) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.26) * (2, 2, 2)
    atoms.set_cell(
        atoms.cell.array @ [[1.01, 0.03, 0.0], [0.0, 0.98, 0.02], [0.04, 0.0, 1.0]],
        scale_atoms=True,
    )
    atoms.rattle(0.08, seed=seed)
    return atoms


def argon_cluster(n: int = 6, seed: int = 2) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * 2
    atoms = atoms[:n]
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    atoms.rattle(0.08, seed=seed)
    return atoms


def with_calc(atoms: Atoms, calc) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms


# ------------------------------------------------------------------ results
def test_results_have_ase_keys_shapes_and_dtypes():
    atoms = with_calc(argon_crystal(), Calculator(argon_model()))
    atoms.get_forces()
    results = atoms.calc.results
    assert set(results) == {"energy", "free_energy", "energies", "forces", "stress"}
    assert isinstance(results["energy"], float)
    assert results["energies"].shape == (len(atoms),)
    assert results["forces"].shape == (len(atoms), 3)
    assert results["stress"].shape == (6,)
    assert atoms.get_stress(voigt=False).shape == (3, 3)
    for key in ("energies", "forces", "stress"):
        assert results[key].dtype == np.float64


def test_a_molecule_has_no_stress_result():
    atoms = with_calc(argon_cluster(), Calculator(argon_model()))
    atoms.get_forces()
    assert set(atoms.calc.results) == {"energy", "free_energy", "energies", "forces"}


def test_free_energy_equals_energy_and_per_atom_energies_sum_to_it():
    for structure in (argon_crystal(), argon_cluster()):
        atoms = with_calc(structure, Calculator(argon_model(reference_energies={"Ar": -0.1})))
        energy = atoms.get_potential_energy()
        assert atoms.get_potential_energy(force_consistent=True) == energy
        assert atoms.get_potential_energies().sum() == pytest.approx(energy, abs=1e-12)


@pytest.mark.parametrize(
    "structure",
    [argon_crystal(), triclinic_argon(), argon_cluster()],
    ids=["cubic", "triclinic", "cluster"],
)
def test_results_equal_ases_lennard_jones(structure):
    ours = with_calc(structure, Calculator(argon_model()))
    theirs = with_calc(structure, AseLennardJones(**ARGON))
    assert ours.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(
        ours.get_potential_energies(), theirs.get_potential_energies(), atol=1e-10
    )
    np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), atol=1e-10)
    if structure.cell.rank == 3:
        np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), atol=1e-12)


@pytest.mark.parametrize(
    "structure",
    [argon_crystal(), triclinic_argon(), argon_cluster()],
    ids=["cubic", "triclinic", "cluster"],
)
def test_forces_equal_ase_finite_differences(structure):
    atoms = with_calc(structure, Calculator(argon_model()))
    checked = [0, 1, len(atoms) // 2, len(atoms) - 1]
    numerical = calculate_numerical_forces(atoms, eps=1e-4, iatoms=checked)
    np.testing.assert_allclose(atoms.get_forces()[checked], numerical, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "structure", [argon_crystal(), triclinic_argon()], ids=["cubic", "triclinic"]
)
def test_stress_equals_ase_finite_differences(structure):
    atoms = with_calc(structure, Calculator(argon_model()))
    numerical = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(atoms.get_stress(), numerical, atol=1e-9, rtol=1e-5)


def test_stress_of_a_structure_without_a_cell_raises_property_not_implemented():
    atoms = with_calc(argon_cluster(), Calculator(argon_model()))
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    flat = with_calc(argon_crystal(), Calculator(argon_model()))
    flat.set_cell([flat.cell[0], flat.cell[1], [0, 0, 0]])
    flat.pbc = [True, True, False]
    with pytest.raises(PropertyNotImplementedError):
        flat.get_stress()


def test_labels_carried_by_the_atoms_are_ignored():
    structure = argon_crystal()
    clean = with_calc(structure, Calculator(argon_model()))
    labelled = structure.copy()
    labelled.info.update(energy=123.0, stress=np.ones(6))
    labelled.arrays["forces"] = np.full((len(labelled), 3), 7.0)
    labelled.calc = Calculator(argon_model())
    assert labelled.get_potential_energy() == clean.get_potential_energy()
    np.testing.assert_array_equal(labelled.get_forces(), clean.get_forces())


# ------------------------------------------------------------------ caching
@pytest.fixture
def counted(monkeypatch):
    """A calculator whose model counts its evaluations."""
    model = argon_model()
    calls = []
    original = model.atomic_energies

    def counting(graph):
        calls.append(len(graph.numbers))
        return original(graph)

    monkeypatch.setattr(model, "atomic_energies", counting)
    return Calculator(model), calls


def test_repeated_requests_reuse_one_evaluation(counted):
    calc, calls = counted
    atoms = with_calc(argon_crystal(), calc)
    atoms.get_forces()
    atoms.get_forces()
    atoms.get_potential_energy()
    atoms.get_potential_energies()
    atoms.get_stress()  # computed along with the forces, not on demand
    assert len(calls) == 1


def test_moving_an_atom_or_changing_the_cell_triggers_a_new_evaluation(counted):
    calc, calls = counted
    atoms = with_calc(argon_crystal(), calc)
    e0 = atoms.get_potential_energy()
    atoms.positions[0, 0] += 0.1
    e1 = atoms.get_potential_energy()
    atoms.set_cell(atoms.cell * 1.01, scale_atoms=True)
    e2 = atoms.get_potential_energy()
    assert len(calls) == 3
    assert len({e0, e1, e2}) == 3


# ------------------------------------------------------------------ model files
def test_a_calculator_built_from_a_model_file_gives_the_same_results(tmp_path):
    model = argon_model(reference_energies={"Ar": -0.05})
    path = ml4ms.save(model, tmp_path / "argon.ml4ms")
    structure = triclinic_argon()
    reference = with_calc(structure, AseLennardJones(**ARGON))  # ASE has no E0: add it by hand
    expected_energy = reference.get_potential_energy() - 0.05 * len(structure)
    in_memory = with_calc(structure, Calculator(model))
    for source in (path, str(path)):
        from_file = with_calc(structure, Calculator(source))
        assert from_file.get_potential_energy() == pytest.approx(expected_energy, abs=1e-10)
        np.testing.assert_allclose(from_file.get_forces(), reference.get_forces(), atol=1e-10)
        np.testing.assert_allclose(from_file.get_stress(), reference.get_stress(), atol=1e-12)
        assert from_file.get_potential_energy() == in_memory.get_potential_energy()
        np.testing.assert_array_equal(from_file.get_forces(), in_memory.get_forces())


# ------------------------------------------------------------------ errors
def test_an_unknown_element_raises_unknown_element_error_naming_the_structure():
    calc = Calculator(argon_model(species=[18]))
    atoms = with_calc(bulk("Cu", "fcc", a=3.6), calc)
    with pytest.raises(
        UnknownElementError, match=r"structure 0: numbers: element Cu \(Z=29\).*\(Ar\)"
    ):
        atoms.get_potential_energy()
    assert issubclass(UnknownElementError, ValueError)


def test_a_mixed_structure_with_one_unknown_element_is_rejected_not_partly_evaluated():
    calc = Calculator(argon_model(species=[18]))
    atoms = argon_crystal()
    atoms.numbers[3] = 10  # one neon atom
    atoms.calc = calc
    with pytest.raises(UnknownElementError, match="Ne"):
        atoms.get_forces()


# ------------------------------------------------------------------ predict vs calculator
def mixed_structures() -> list[Atoms]:
    slab = argon_crystal(seed=5)
    slab.pbc = [True, True, False]
    return [
        argon_crystal(),
        argon_cluster(5),
        triclinic_argon(),
        Atoms("Ar", positions=[[1.0, 2.0, 3.0]]),
        slab,
        argon_cluster(8, seed=7),
        argon_crystal((1, 1, 1), seed=9),
    ]


def test_predict_in_batches_equals_the_calculator_one_structure_at_a_time():
    model = argon_model(reference_energies={"Ar": -0.02})
    images = mixed_structures()
    # Small batches that mix periodic structures and molecules, and split the list.
    predictions = predict(model, images, max_atoms_per_batch=40)
    for k, structure in enumerate(images):
        atoms = with_calc(structure, Calculator(model))
        assert predictions.energy[k] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(predictions.forces[k], atoms.get_forces(), atol=1e-10)
        assert predictions.n_atoms[k] == len(structure)
        if structure.cell.rank == 3:
            np.testing.assert_allclose(predictions.stress[k], atoms.get_stress(), atol=1e-12)
        else:
            assert np.isnan(predictions.stress[k]).all()


# ------------------------------------------------------------------ molecular dynamics
def test_nve_molecular_dynamics_conserves_energy():
    """Smooth LJ argon (rc = 2.5 sigma), fcc 3x3x3 (108 atoms), velocities drawn at 40 K,
    200 steps of 1 fs.

    Bound: both the drift (last minus first) and the fluctuation (max minus min) of the
    total energy stay below 2e-4 times the mean kinetic energy (about 0.3 eV). Velocity
    Verlet's energy error scales as dt^2: this run gives 4e-5, a 10 fs step 4e-3. Forces
    that are not minus the gradient of the energy, or that jump, break the bound.
    """
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (3, 3, 3)
    atoms.calc = Calculator(argon_model(rc=2.5 * ARGON["sigma"]))
    # Maxwell-Boltzmann momenta at 40 K: each component normal with variance m kB T.
    masses = atoms.get_masses()[:, None]
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * 40.0))
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    total, kinetic = [], []

    def record():
        kinetic.append(atoms.get_kinetic_energy())
        total.append(atoms.get_potential_energy() + kinetic[-1])

    dynamics.attach(record, interval=1)
    dynamics.run(200)
    total, kinetic = np.array(total), np.array(kinetic)
    assert len(total) == 201
    scale = kinetic.mean()
    assert (
        kinetic.min() < 0.8 * kinetic[0]
    )  # the atoms really moved: kinetic energy went into the lattice
    drift = abs(total[-1] - total[0])
    fluctuation = total.max() - total.min()
    assert drift < 2e-4 * scale, (drift, scale)
    assert fluctuation < 2e-4 * scale, (fluctuation, scale)
    np.testing.assert_allclose(atoms.get_momenta().sum(axis=0), 0.0, atol=1e-10)
