"""ml4ms.testing: every conformance check passes on correct potentials and fails on broken ones.

Each broken model below violates exactly one physical requirement; the test shows
that the matching check catches it (and, where instructive, that the other checks
do not mistake it for something else).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ml4ms import testing
from ml4ms.data import AtomicGraph
from ml4ms.models import LennardJones, Morse, predict
from ml4ms.simulate import Calculator

ARGON = {"sigma": 3.405, "epsilon": 0.0103}


# ------------------------------------------------------------------ structures
def argon_crystal(seed: int = 1) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * (2, 2, 1)
    atoms.rattle(0.1, seed=seed)
    return atoms


def triclinic_argon(seed: int = 2) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.3) * (2, 2, 2)
    atoms.set_cell(
        atoms.cell.array @ (np.eye(3) + [[0.02, 0.05, 0.0], [0.0, -0.03, 0.04], [0.01, 0.0, 0.02]]),
        scale_atoms=True,
    )
    atoms.rattle(0.1, seed=seed)
    return atoms


def argon_cluster(n: int = 7, seed: int = 3) -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True) * 2
    atoms = atoms[:n]
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    atoms.rattle(0.1, seed=seed)
    return atoms


def slab(seed: int = 4) -> Atoms:
    atoms = argon_crystal(seed)
    atoms.pbc = [True, True, False]
    return atoms


# ------------------------------------------------------------------ broken models
def _offsets(graph: AtomicGraph, cell: torch.Tensor) -> torch.Tensor:
    i = graph.edge_index[0]
    return torch.einsum("ea,eab->eb", graph.shifts, cell[graph.batch[i]])


class BrokenHalfDetachedLJ(LennardJones):
    """Wrong forces: the neighbour's position is detached, so half of each pair force is lost."""

    def atomic_energies(self, graph):
        i, j = graph.edge_index
        vectors = graph.positions[j].detach() - graph.positions[i] + _offsets(graph, graph.cell)
        r = torch.linalg.vector_norm(vectors, dim=1)
        inside = r < self.cutoff
        u = torch.where(inside, self.pair_energy(torch.where(inside, r, self.cutoff)), 0.0)
        return torch.zeros(len(graph.numbers), dtype=r.dtype).index_add(0, i, 0.5 * u)


class BrokenDetachedCellLJ(LennardJones):
    """Stress is wrong, forces right: periodic images do not follow the strained cell."""

    def atomic_energies(self, graph):
        i, j = graph.edge_index
        vectors = graph.positions[j] - graph.positions[i] + _offsets(graph, graph.cell.detach())
        r = torch.linalg.vector_norm(vectors, dim=1)
        inside = r < self.cutoff
        u = torch.where(inside, self.pair_energy(torch.where(inside, r, self.cutoff)), 0.0)
        return torch.zeros(len(graph.numbers), dtype=r.dtype).index_add(0, i, 0.5 * u)


class BrokenAbsolutePositionLJ(LennardJones):
    """Depends on where the structure is: an external field along x (not translation invariant)."""

    def atomic_energies(self, graph):
        return super().atomic_energies(graph) + 0.01 * graph.positions[:, 0]


class BrokenAnisotropicLJ(LennardJones):
    """Prefers bonds along x: translation and permutation invariant, not rotation invariant."""

    def atomic_energies(self, graph):
        vectors = graph.edge_vectors()
        extra = torch.zeros(len(graph.numbers), dtype=vectors.dtype)
        extra = extra.index_add(0, graph.edge_index[0], 1e-3 * vectors[:, 0] ** 2)
        return super().atomic_energies(graph) + extra


class BrokenIndexDependentLJ(LennardJones):
    """Weights atoms by their index: not permutation invariant."""

    def atomic_energies(self, graph):
        energies = super().atomic_energies(graph)
        return energies * (1.0 + 0.01 * torch.arange(len(energies), dtype=energies.dtype))


class BrokenRadiusOfGyrationLJ(LennardJones):
    """Uses positions relative to the centre of mass: translation and rotation invariant,
    but moving an atom to a periodic image changes it."""

    def atomic_energies(self, graph):
        positions = graph.positions
        centre = torch.zeros_like(graph.cell[:, 0]).index_add(0, graph.batch, positions)
        centre = centre / graph.n_atoms[:, None].to(positions.dtype)
        spread = ((positions - centre[graph.batch]) ** 2).sum(dim=1)
        return super().atomic_energies(graph) + 1e-4 * spread


class BrokenGlobalMeanLJ(LennardJones):
    """Mixes the structures of a batch: every atom gets a share of the mean over *all* atoms."""

    def atomic_energies(self, graph):
        energies = super().atomic_energies(graph)
        return energies + 0.5 * energies.mean()


class BrokenBatchSizeLJ(LennardJones):
    """Energies depend on the number of structures in the batch, but not on their positions."""

    def atomic_energies(self, graph):
        return super().atomic_energies(graph) + 1e-3 * graph.n_structures


class BrokenTruncatedLJ(LennardJones):
    """Lennard-Jones cut at rc without the shift: the energy jumps by u(rc) at the cutoff."""

    def pair_energy(self, r):
        return self._lj(r)


class BrokenTripletCountLJ(LennardJones):
    """A hard-cutoff three-body count: invisible to a dimer, a jump when a third atom enters."""

    def atomic_energies(self, graph):
        i = graph.edge_index[0]
        degree = torch.zeros(len(graph.numbers), dtype=graph.positions.dtype).index_add(
            0, i, torch.ones_like(i, dtype=graph.positions.dtype)
        )
        return super().atomic_energies(graph) + 1e-3 * degree * (degree - 1) / 2


class BrokenSelfEnergyLJ(LennardJones):
    """Adds a constant per atom outside the reference energies: a lone atom is not at E0."""

    def atomic_energies(self, graph):
        return super().atomic_energies(graph) + 0.3


class TamperedCalculator(AseCalculator):
    """Wraps an ASE calculator and corrupts its forces or stress in a chosen way."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        inner,
        *,
        force_scale=1.0,
        force_bias=(0.0, 0.0, 0.0),
        stress_sign=1.0,
        stress_bias=(0.0,) * 6,
    ):
        super().__init__()
        self.inner = inner
        self.force_scale, self.force_bias = force_scale, np.asarray(force_bias)
        self.stress_sign, self.stress_bias = stress_sign, np.asarray(stress_bias)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.inner
        energy = work.get_potential_energy()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": self.force_scale * work.get_forces() + self.force_bias,
        }
        if work.cell.rank == 3:
            self.results["stress"] = self.stress_sign * work.get_stress() + self.stress_bias


class LabelWritingCalculator(Calculator):
    """An ml4ms calculator that also stores its energy in the caller's atoms.info."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms.info["energy"] = self.results["energy"]


def lj(cls=LennardJones, **kwargs):
    return cls(**{**ARGON, "smooth": True, **kwargs})


def energy_of(model):
    calc = Calculator(model)
    return lambda atoms: calc.get_potential_energy(atoms)


# ------------------------------------------------------------------ correct models pass
GOOD_MODELS = {
    "lj_smooth": lambda: lj(),
    "lj_shifted": lambda: LennardJones(**ARGON, rc=9.0),
    "morse": lambda: Morse(epsilon=0.05, rho0=5.0, r0=3.8, rcut1=1.6, rcut2=2.2),
    "lj_with_E0": lambda: lj(reference_energies={"Ar": -0.25}),
}


@pytest.mark.parametrize("name", GOOD_MODELS)
def test_correct_pair_potentials_pass_every_check(name):
    model = GOOD_MODELS[name]()
    skip = () if name != "lj_shifted" else ("smooth_forces",)  # shifted LJ: forces jump at rc
    ran = testing.run_model_checks(model, [argon_crystal(), argon_cluster(), slab()], skip=skip)
    expected = set(testing.CHECKS) - set(skip)
    assert set(ran) == expected


def test_ase_calculators_pass_the_calculator_checks():
    ran = testing.run_model_checks(
        AseLennardJones(**ARGON, rc=9.0, smooth=True), [argon_crystal(), argon_cluster()]
    )
    assert ran == ["forces", "stress", "invariance", "input_mutation"]


def test_run_model_checks_rejects_unknown_check_names():
    with pytest.raises(ValueError, match="unknown checks"):
        testing.run_model_checks(lj(), [argon_cluster()], skip=["forcez"])


def test_run_model_checks_reports_the_first_failure():
    with pytest.raises(AssertionError, match="finite difference"):
        testing.run_model_checks(lj(BrokenHalfDetachedLJ), [argon_cluster()])


# ------------------------------------------------------------------ forces
@pytest.mark.parametrize(
    "atoms", [argon_crystal(), argon_cluster(), slab()], ids=["bulk", "cluster", "slab"]
)
def test_forces_check_fails_when_forces_are_not_minus_the_energy_gradient(atoms):
    with pytest.raises(AssertionError, match=r"atom \d+ \(Ar\), component [xyz].*tolerance"):
        testing.assert_forces_match_finite_difference(lj(BrokenHalfDetachedLJ), atoms)


def test_forces_check_fails_for_an_ase_calculator_with_forces_one_percent_too_large():
    atoms = argon_crystal()
    good = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    testing.assert_forces_match_finite_difference(good, atoms)
    with pytest.raises(AssertionError, match="forces do not match"):
        testing.assert_forces_match_finite_difference(
            TamperedCalculator(good, force_scale=1.01), atoms
        )


def test_forces_check_subsamples_big_structures_but_checks_all_of_small_ones(monkeypatch):
    atoms = argon_crystal() * (2, 2, 2)  # 128 atoms
    calls = []
    calc = Calculator(lj())
    original = calc.calculate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(calc, "calculate", counting)
    testing.assert_forces_match_finite_difference(calc, atoms, n_checks=10)
    assert len(calls) == 1 + 2 * 10
    calls.clear()
    testing.assert_forces_match_finite_difference(calc, argon_cluster(3), n_checks=None)
    assert len(calls) == 1 + 2 * 9


def test_forces_check_ignores_constraints_and_leaves_the_input_alone():
    from ase.constraints import FixAtoms

    atoms = argon_cluster()
    atoms.set_constraint(FixAtoms([0, 1]))
    testing.assert_no_input_mutation(
        lambda a: testing.assert_forces_match_finite_difference(lj(), a), atoms
    )


# ------------------------------------------------------------------ stress
@pytest.mark.parametrize("atoms", [argon_crystal(), triclinic_argon()], ids=["cubic", "triclinic"])
def test_stress_check_passes_and_agrees_with_ase_numerical_stress(atoms):
    from ase.calculators.fd import calculate_numerical_stress

    model = lj()
    testing.assert_stress_matches_finite_difference(model, atoms)
    work = atoms.copy()
    work.calc = Calculator(model)
    np.testing.assert_allclose(
        work.get_stress(), calculate_numerical_stress(work, eps=1e-5), atol=1e-9, rtol=1e-5
    )


def test_stress_check_fails_when_the_cell_derivative_is_missing_even_though_forces_are_right():
    atoms = triclinic_argon()
    model = lj(BrokenDetachedCellLJ)
    testing.assert_forces_match_finite_difference(model, atoms)
    with pytest.raises(
        AssertionError, match=r"worst: (xx|yy|zz|yz|xz|xy): model .* finite difference"
    ):
        testing.assert_stress_matches_finite_difference(model, atoms)


def test_stress_check_fails_for_the_wrong_sign_convention():
    atoms = argon_crystal()
    good = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    testing.assert_stress_matches_finite_difference(good, atoms)
    with pytest.raises(AssertionError, match="stress does not match"):
        testing.assert_stress_matches_finite_difference(
            TamperedCalculator(good, stress_sign=-1.0), atoms
        )


def test_stress_check_refuses_a_structure_without_a_3d_cell():
    with pytest.raises(ValueError, match="three lattice vectors"):
        testing.assert_stress_matches_finite_difference(lj(), argon_cluster())


# ------------------------------------------------------------------ invariance
ONLY = {
    "rotation": dict(rotation=True, translation=False, permutation=False, periodic_image=False),
    "translation": dict(rotation=False, translation=True, permutation=False, periodic_image=False),
    "permutation": dict(rotation=False, translation=False, permutation=True, periodic_image=False),
    "periodic_image": dict(
        rotation=False, translation=False, permutation=False, periodic_image=True
    ),
}

# Which symmetry each broken model violates, and the ones it respects (on a periodic crystal).
VIOLATIONS = [
    (BrokenAbsolutePositionLJ, "translation", ["permutation"]),
    (BrokenAnisotropicLJ, "rotation", ["translation", "permutation", "periodic_image"]),
    (BrokenIndexDependentLJ, "permutation", ["rotation", "translation", "periodic_image"]),
    (BrokenRadiusOfGyrationLJ, "periodic_image", ["rotation", "permutation"]),
]


@pytest.mark.parametrize(
    "cls, broken, respected", VIOLATIONS, ids=lambda x: getattr(x, "__name__", None)
)
def test_invariance_check_catches_exactly_the_broken_symmetry(cls, broken, respected):
    fn = energy_of(lj(cls))
    atoms = argon_crystal()
    for symmetry in respected:
        testing.assert_invariant(fn, atoms, **ONLY[symmetry])
    with pytest.raises(AssertionError, match="not invariant"):
        testing.assert_invariant(fn, atoms, **ONLY[broken])


def test_invariance_check_names_the_operation_and_the_values():
    with pytest.raises(
        AssertionError, match=r"under a translation by .* got .* expected .* tolerance"
    ):
        testing.assert_invariant(
            energy_of(lj(BrokenAbsolutePositionLJ)), argon_cluster(), **ONLY["translation"]
        )


@pytest.mark.parametrize(
    "atoms",
    [argon_crystal(), triclinic_argon(), argon_cluster(), slab()],
    ids=["cubic", "triclinic", "cluster", "slab"],
)
def test_a_correct_energy_is_invariant_under_all_operations(atoms):
    testing.assert_invariant(energy_of(lj()), atoms)


def coordination_numbers(atoms: Atoms) -> np.ndarray:
    """Per-atom neighbour counts within 4.5 Å, by ASE: invariant, and permuted with the atoms."""
    i = ase_neighbor_list("i", atoms, 4.5)
    return np.bincount(i, minlength=len(atoms)).astype(float)


def test_per_atom_outputs_are_permuted_with_the_atoms():
    atoms = argon_cluster(9)  # a cluster: coordination numbers differ between atoms
    assert len(set(coordination_numbers(atoms))) > 1
    testing.assert_invariant(coordination_numbers, atoms, per_atom=True)
    with pytest.raises(AssertionError, match="permutation"):
        testing.assert_invariant(coordination_numbers, atoms, per_atom=False, **ONLY["permutation"])


def test_random_rotation_is_a_proper_rotation_and_seeded():
    for seed in range(20):
        R = testing.random_rotation(seed)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_array_equal(testing.random_rotation(3), testing.random_rotation(3))
    assert not np.allclose(testing.random_rotation(3), testing.random_rotation(4))


@pytest.mark.parametrize(
    "atoms", [triclinic_argon(), argon_cluster(), slab()], ids=["triclinic", "cluster", "slab"]
)
def test_model_invariance_passes_for_a_correct_model(atoms):
    testing.assert_model_invariant(lj(), atoms)


def test_model_invariance_fails_on_the_energy_of_a_non_invariant_model():
    with pytest.raises(AssertionError, match="the energy is not invariant"):
        testing.assert_model_invariant(lj(BrokenAnisotropicLJ), argon_crystal())


def test_model_invariance_fails_when_forces_do_not_rotate_with_the_structure():
    good = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    with pytest.raises(
        AssertionError,
        match=r"forces do not rotate .* under a random rotation.*atom \d+ \(Ar\), component [xyz]",
    ):
        testing.assert_model_invariant(
            TamperedCalculator(good, force_bias=(0.05, 0.0, 0.0)), argon_cluster()
        )


def test_model_invariance_fails_when_stress_does_not_rotate_as_a_tensor():
    good = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    bias = (1e-3, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(
        AssertionError,
        match=r"stress does not transform as R sigma R\^T under a random rotation.*component \w\w",
    ):
        testing.assert_model_invariant(TamperedCalculator(good, stress_bias=bias), argon_crystal())


# ------------------------------------------------------------------ batches
MIXED = [argon_crystal(), argon_cluster(5), triclinic_argon(), Atoms("Ar", positions=[[0, 0, 0]])]


def test_batch_equals_singles_for_a_correct_model():
    testing.assert_batch_equals_singles(lj(), MIXED)
    periodic = [argon_crystal(), triclinic_argon(), slab()]
    testing.assert_batch_equals_singles(lj(), periodic)  # with stress


def test_batch_check_fails_when_structures_are_mixed_in_a_batch():
    with pytest.raises(
        AssertionError,
        match=r"structure \d+ \(Ar\d*\): (energy|per-atom energies) in a batch of 4 structures != ",
    ):
        testing.assert_batch_equals_singles(lj(BrokenGlobalMeanLJ), MIXED)


def test_batch_check_fails_even_when_the_coupling_has_no_gradient():
    model = lj(BrokenBatchSizeLJ)
    testing.assert_no_cross_structure_gradient(model, MIXED)  # constant: no gradient to see
    with pytest.raises(AssertionError, match="evaluated alone"):
        testing.assert_batch_equals_singles(model, MIXED)


def test_cross_structure_gradient_is_exactly_zero_for_a_correct_model():
    testing.assert_no_cross_structure_gradient(lj(), MIXED)
    testing.assert_no_cross_structure_gradient(Morse(epsilon=0.05, rho0=5.0, r0=3.8), MIXED)


def test_cross_structure_gradient_check_fails_when_structures_are_mixed():
    with pytest.raises(
        AssertionError,
        match=r"energy of structure \d+ depends on the positions of \d+ atoms of other "
        r"structures.*must be exactly 0",
    ):
        testing.assert_no_cross_structure_gradient(lj(BrokenGlobalMeanLJ), MIXED)


def test_cross_structure_gradient_needs_two_structures():
    with pytest.raises(ValueError, match="two"):
        testing.assert_no_cross_structure_gradient(lj(), MIXED[:1])


def test_batch_checks_need_an_ml4ms_model():
    with pytest.raises(TypeError, match="AtomisticModel"):
        testing.assert_batch_equals_singles(AseLennardJones(), MIXED)


# ------------------------------------------------------------------ cutoff
def test_smooth_lennard_jones_and_morse_are_continuous_through_the_cutoff():
    testing.assert_smooth_at_cutoff(lj(), element="Ar")
    testing.assert_smooth_at_cutoff(Morse(epsilon=0.05, rho0=5.0, r0=3.8), element="Ar")


def test_truncated_unshifted_lennard_jones_has_an_energy_jump_at_the_cutoff():
    model = lj(BrokenTruncatedLJ, smooth=False, rc=2.5 * ARGON["sigma"])
    with pytest.raises(AssertionError, match=r"dimer probe .* the energy jumps by .* between r = "):
        testing.assert_smooth_at_cutoff(model, element="Ar")


def test_shifted_lennard_jones_has_continuous_energy_but_a_force_jump_at_the_cutoff():
    model = LennardJones(**ARGON, rc=2.5 * ARGON["sigma"], smooth=False)
    testing.assert_smooth_at_cutoff(model, element="Ar", forces=False)
    with pytest.raises(AssertionError, match="the force jumps"):
        testing.assert_smooth_at_cutoff(model, element="Ar")


def test_a_three_body_jump_is_seen_by_the_cluster_probe_only():
    model = lj(BrokenTripletCountLJ)
    testing.assert_smooth_at_cutoff(model, element="Ar", probes=["dimer"])
    with pytest.raises(AssertionError, match="cluster probe .* the energy jumps"):
        testing.assert_smooth_at_cutoff(model, element="Ar", probes=["cluster"])


def test_smoothness_of_an_ase_calculator_needs_its_cutoff():
    calc = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    testing.assert_smooth_at_cutoff(calc, element="Ar", cutoff=9.0)
    with pytest.raises(TypeError, match="cutoff"):
        testing.assert_smooth_at_cutoff(calc, element="Ar")


def test_a_model_that_still_interacts_beyond_its_cutoff_fails():
    # ASE's LJ with rc=9 probed as if its cutoff were 8 Å: beyond "the cutoff" it is not separated.
    calc = AseLennardJones(**ARGON, rc=9.0, smooth=True)
    with pytest.raises(AssertionError, match="beyond the cutoff"):
        testing.assert_smooth_at_cutoff(calc, element="Ar", cutoff=8.0)


# ------------------------------------------------------------------ isolated atom
def test_an_isolated_atom_has_the_reference_energy():
    testing.assert_isolated_atom_energy(lj(reference_energies={"Ar": -0.25}), "Ar")
    testing.assert_isolated_atom_energy(lj(reference_energies={"Ar": -0.25}), 18, -0.25)
    testing.assert_isolated_atom_energy(lj(), "Ar", 0.0)


def test_isolated_atom_check_fails_for_energy_outside_the_reference_energies():
    with pytest.raises(
        AssertionError, match=r"isolated Ar atom has energy -0\.2 eV, expected -0\.5 eV"
    ):
        testing.assert_isolated_atom_energy(
            lj(BrokenSelfEnergyLJ, reference_energies={"Ar": -0.5}), "Ar"
        )


def test_isolated_atom_check_fails_against_a_wrong_expected_value():
    with pytest.raises(AssertionError, match="expected 1 eV"):
        testing.assert_isolated_atom_energy(lj(), "Ar", 1.0)


# ------------------------------------------------------------------ input mutation
def labelled_crystal() -> Atoms:
    atoms = argon_crystal()
    atoms.positions += 2.0  # some atoms outside the cell: wrapping would move them
    atoms.info.update(energy=-1.0, tags={"source": "dft", "k": [1, 2]})
    atoms.arrays["forces"] = np.ones((len(atoms), 3))
    return atoms


@pytest.mark.parametrize(
    "name",
    ["calculator", "predict", "graph", "check_forces"],
)
def test_ml4ms_entry_points_do_not_modify_their_input(name):
    model = lj()
    fn = {
        "calculator": lambda a: Calculator(model).get_forces(a),
        "predict": lambda a: predict(model, [a]),
        "graph": lambda a: AtomicGraph.from_atoms(a, 9.0),
        "check_forces": lambda a: testing.assert_forces_match_finite_difference(
            model, a, n_checks=3
        ),
    }[name]
    testing.assert_no_input_mutation(fn, labelled_crystal())


def test_a_calculator_writing_labels_into_the_input_is_caught():
    calc = LabelWritingCalculator(lj())
    with pytest.raises(AssertionError, match=r"atoms\['info'\]\['energy'\] changed: -1\.0 ->"):
        testing.assert_no_input_mutation(calc.get_potential_energy, labelled_crystal())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.wrap(), r"atoms\['positions'\] changed at \d+ entries"),
        (lambda a: a.set_pbc([True, True, False]), r"atoms\['pbc'\] changed"),
        (lambda a: a.set_cell(a.cell * 1.01, scale_atoms=False), r"atoms\['cell'\] changed"),
        (
            lambda a: a.numbers.__setitem__(0, 29),
            r"atoms\['numbers'\] changed at 1 entries .*, first at index 0: 18 -> 29",
        ),
        (lambda a: a.arrays.__setitem__("charges", np.zeros(len(a))), r"\['charges'\] was added"),
        (lambda a: a.arrays["forces"].__setitem__((0, 0), 2.0), r"\['forces'\] changed"),
        (lambda a: a.info["tags"]["k"].append(3), r"\['tags'\]\['k'\] changed"),
        (lambda a: a.info.pop("energy"), r"\['energy'\] was removed"),
    ],
    ids=["wrap", "pbc", "cell", "numbers", "new_array", "array_entry", "nested_info", "info_key"],
)
def test_every_kind_of_input_mutation_is_caught(mutate, message):
    with pytest.raises(AssertionError, match=message):
        testing.assert_no_input_mutation(mutate, labelled_crystal())


def test_no_input_mutation_returns_what_fn_returns():
    assert testing.assert_no_input_mutation(len, labelled_crystal()) == 16


def test_checks_give_the_model_back_in_the_mode_and_dtype_it_came_in():
    model = lj()
    model.train()
    testing.run_model_checks(model, [argon_cluster(4)])
    assert model.training
    assert model.reference_energies.dtype == torch.float64


def test_numerical_strain_derivative_of_the_volume_is_volume_times_identity():
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    atoms.set_cell(atoms.cell.array + [[0.0, 0.3, 0.1], [0.2, 0.0, 0.0], [0.0, -0.1, 0.0]], scale_atoms=True)
    before = atoms.copy()
    derivative = testing.numerical_strain_derivative(lambda a: a.get_volume(), atoms)
    np.testing.assert_allclose(derivative, atoms.get_volume() * np.eye(3), atol=1e-6)
    assert atoms == before  # the input is left alone
