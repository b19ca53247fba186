"""Coulomb and sine matrices: equal to DScribe's, differentiable, invariant, strict on input.

DScribe 2.1.2 is the oracle. Its SineMatrix builds a ``dscribe.core.System`` that no
longer constructs under ASE >= 3.27 (positional ``Atoms`` arguments); the fixture
``dscribe_sine`` swaps that class for a minimal stand-in that reuses DScribe's own
methods, so the numbers still come from DScribe's code.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch
from ase import Atoms
from ase.build import bulk, molecule
from dscribe.core.system import System as DScribeSystem
from dscribe.descriptors import CoulombMatrix as DScribeCM
from dscribe.descriptors import SineMatrix as DScribeSM

from ml4ms import testing
from ml4ms.descriptors.matrices import CoulombMatrix, SineMatrix
from ml4ms.errors import ConfigError, DataError

ELEMENTS = ["H", "C", "N", "O", "S", "Cu"]
N_MAX = 12


# ---------------------------------------------------------------------------- structures
def _far_enough(atoms: Atoms, d_min: float) -> bool:
    if len(atoms) < 2:
        return True
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    return d[np.triu_indices(len(atoms), 1)].min() >= d_min


def random_molecule(rng: np.random.Generator) -> Atoms:
    for _ in range(1000):
        n = int(rng.integers(1, N_MAX + 1))
        box = (10.0 * n) ** (1 / 3)
        atoms = Atoms(rng.choice(ELEMENTS, n), positions=rng.uniform(0, box, (n, 3)))
        if _far_enough(atoms, 0.9):
            return atoms
    raise RuntimeError


def random_crystal(rng: np.random.Generator, small: bool = False) -> Atoms:
    for _ in range(1000):
        n = int(rng.integers(1, 4 if small else N_MAX + 1))
        length = rng.uniform(2.3, 3.2) if small else (12.0 * n) ** (1 / 3)
        cell = length * (np.eye(3) + 0.25 * rng.uniform(-1, 1, (3, 3)))
        atoms = Atoms(rng.choice(ELEMENTS, n), scaled_positions=rng.uniform(0, 1, (n, 3)),
                      cell=cell, pbc=True)
        if _far_enough(atoms, 0.9):
            return atoms
    raise RuntimeError


def molecules(seed: int = 0, n: int = 50) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    return [random_molecule(rng) for _ in range(n)]


def crystals(seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    return [random_crystal(rng) for _ in range(40)] + [random_crystal(rng, small=True)
                                                        for _ in range(12)]


class _System(Atoms):
    """What DScribe's SineMatrix needs of its System, with DScribe's own methods."""

    get_cell_inverse = DScribeSystem.get_cell_inverse
    get_displacement_tensor = DScribeSystem.get_displacement_tensor

    @staticmethod
    def from_atoms(atoms: Atoms) -> _System:
        system = _System(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                         pbc=atoms.pbc)
        system._cell_inverse = system._displacement_tensor = None
        system._distance_matrix = system._inverse_distance_matrix = None
        return system

    def set_pbc(self, pbc):
        self._cell_inverse = self._displacement_tensor = None
        super().set_pbc(pbc)


@pytest.fixture
def dscribe_sine(monkeypatch):
    import dscribe.descriptors.sinematrix as module

    monkeypatch.setattr(module, "System", _System)
    return DScribeSM


def assert_close(actual, expected, rtol=1e-6):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.isfinite(actual).all()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-10)


# ---------------------------------------------------------------------------- DScribe
@pytest.mark.parametrize("permutation", ["none", "sorted_l2", "eigenspectrum"])
def test_coulomb_matrix_equals_dscribe(permutation):
    images = molecules(0) + crystals(1)[:10]  # DScribe ignores the cell: so must we
    assert len(images) >= 50
    ours = CoulombMatrix(N_MAX, permutation=permutation)
    theirs = DScribeCM(N_MAX, permutation=permutation)
    assert ours.get_number_of_features() == theirs.get_number_of_features()
    for k, atoms in enumerate(images):
        try:
            assert_close(ours.create(atoms), theirs.create(atoms))
        except AssertionError as err:
            raise AssertionError(f"structure {k} ({atoms.get_chemical_formula()}): {err}") from None
    assert_close(ours.create(images), np.stack([theirs.create(a) for a in images]))


@pytest.mark.parametrize("permutation", ["none", "sorted_l2", "eigenspectrum"])
def test_sine_matrix_equals_dscribe(permutation, dscribe_sine):
    images = crystals(0)
    assert len(images) >= 50
    ours = SineMatrix(N_MAX, permutation=permutation)
    theirs = dscribe_sine(N_MAX, permutation=permutation)
    for k, atoms in enumerate(images):
        try:
            assert_close(ours.create(atoms), theirs.create(atoms))
        except AssertionError as err:
            raise AssertionError(f"structure {k} ({atoms.get_chemical_formula()}): {err}") from None
    assert_close(ours.create(images), np.stack([theirs.create(a) for a in images]))


def test_layout_is_dscribes():
    water = molecule("H2O")
    cm = CoulombMatrix(4, permutation="none")
    matrix = cm.unflatten(cm.create(water))
    assert matrix.shape == (4, 4)
    assert matrix[0, 0] == pytest.approx(0.5 * 8**2.4)
    assert matrix[0, 1] == pytest.approx(8 * 1 / water.get_distance(0, 1))
    assert np.all(matrix[3] == 0) and np.all(matrix[:, 3] == 0)
    np.testing.assert_array_equal(matrix, matrix.T)
    eigen = CoulombMatrix(4, permutation="eigenspectrum").create(water)
    assert eigen.shape == (4,) and eigen[3] == 0
    assert np.all(np.diff(np.abs(eigen)) <= 0)
    assert len(cm.feature_labels()) == 16


# ---------------------------------------------------------------------------- random
def test_random_with_tiny_sigma_is_sorted():
    images = molecules(3, 20)
    sorted_ = CoulombMatrix(N_MAX).create(images)
    noisy = CoulombMatrix(N_MAX, permutation="random", sigma=1e-9, seed=7).create(images)
    np.testing.assert_array_equal(noisy, sorted_)


def test_random_is_reproducible_with_a_seed_and_a_permutation_of_the_matrix():
    images = molecules(4, 10)
    a = CoulombMatrix(N_MAX, permutation="random", sigma=5.0, seed=11).create(images)
    b = CoulombMatrix(N_MAX, permutation="random", sigma=5.0, seed=11).create(images)
    c = CoulombMatrix(N_MAX, permutation="random", sigma=5.0, seed=12).create(images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    plain = CoulombMatrix(N_MAX, permutation="none")
    for atoms, row in zip(images, a):
        # a symmetric permutation of the unsorted matrix: same diagonal multiset, same spectrum
        m, r = plain.unflatten(plain.create(atoms)), plain.unflatten(row)
        np.testing.assert_allclose(np.sort(np.diag(r)), np.sort(np.diag(m)))
        np.testing.assert_allclose(np.linalg.eigvalsh(r), np.linalg.eigvalsh(m), atol=1e-9)
        n = len(atoms)
        assert np.all(r[n:] == 0) and np.all(r[:, n:] == 0)  # padding stays last


def test_random_orders_vary_with_the_noise():
    atoms = next(a for a in molecules(5, 30) if len(a) >= 6)
    descriptor = CoulombMatrix(N_MAX, permutation="random", sigma=20.0, seed=1)
    orders = {tuple(np.round(descriptor.create(atoms)[:N_MAX], 8)) for _ in range(30)}
    assert len(orders) > 3  # large noise: many different row orders
    # and the row norms, before noise, still decide on average: the mean first diagonal
    # entry is larger than that of the last atom
    firsts = [descriptor.unflatten(descriptor.create(atoms))[0, 0] for _ in range(200)]
    lasts = [descriptor.unflatten(descriptor.create(atoms))[len(atoms) - 1, len(atoms) - 1]
             for _ in range(200)]
    assert np.mean(firsts) > np.mean(lasts)


# ---------------------------------------------------------------------------- gradients
def _gradients(descriptor, atoms: Atoms, weights: np.ndarray):
    graph = descriptor.graph([atoms])
    positions = graph.positions.clone().requires_grad_()
    deformation = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    strain = torch.eye(3, dtype=torch.float64) + deformation
    value = (descriptor(graph.replace(positions=positions @ strain, cell=graph.cell @ strain))
             * torch.as_tensor(weights)).sum()
    d_positions, d_deformation = torch.autograd.grad(value, [positions, deformation])
    return d_positions.numpy(), d_deformation.numpy()


def _numeric_position_gradient(descriptor, atoms, weights, h=1e-6):
    out = np.zeros((len(atoms), 3))
    for a in range(len(atoms)):
        for c in range(3):
            values = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, c] += sign * h
                values.append(float(descriptor.create(moved) @ weights))
            out[a, c] = (values[0] - values[1]) / (2 * h)
    return out


@pytest.mark.parametrize("cls", [CoulombMatrix, SineMatrix])
@pytest.mark.parametrize("permutation", ["none", "sorted_l2", "eigenspectrum"])
def test_position_gradients_match_finite_differences(cls, permutation):
    for atoms in crystals(6)[:4]:
        descriptor = cls(N_MAX, permutation=permutation)
        weights = np.random.default_rng(len(atoms)).normal(size=descriptor.get_number_of_features())
        grad, _ = _gradients(descriptor, atoms, weights)
        numeric = _numeric_position_gradient(descriptor, atoms, weights)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("permutation", ["none", "sorted_l2", "eigenspectrum"])
def test_sine_matrix_strain_gradient_matches_finite_differences(permutation):
    descriptor = SineMatrix(N_MAX, permutation=permutation)
    for atoms in crystals(7)[:3] + crystals(7)[-2:]:
        weights = np.random.default_rng(len(atoms)).normal(size=descriptor.get_number_of_features())
        _, grad = _gradients(descriptor, atoms, weights)
        numeric = testing.numerical_strain_derivative(lambda a: descriptor.create(a) @ weights, atoms)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def _jacobian(descriptor, atoms):
    graph = descriptor.graph([atoms])

    def features(positions):
        return descriptor(graph.replace(positions=positions))[0]

    return torch.autograd.functional.jacobian(features, graph.positions).numpy()  # (F, N, 3)


@pytest.mark.parametrize("permutation", ["none", "sorted_l2", "eigenspectrum"])
def test_coulomb_jacobian_matches_dscribe_derivatives(permutation):
    ours = CoulombMatrix(N_MAX, permutation=permutation)
    theirs = DScribeCM(N_MAX, permutation=permutation)
    for atoms in molecules(8, 4):
        derivatives, descriptor = theirs.derivatives(atoms, method="numerical")
        jacobian = _jacobian(ours, atoms).transpose(1, 2, 0)  # DScribe: (atom, xyz, feature)
        assert jacobian.shape == derivatives.shape
        # DScribe: central differences, step 1e-4 Å (truncation error ~1e-7 here)
        np.testing.assert_allclose(jacobian, derivatives, rtol=1e-5, atol=1e-6)
        assert_close(ours.create(atoms), descriptor)


def test_sine_jacobian_matches_dscribe_derivatives(dscribe_sine):
    ours = SineMatrix(N_MAX, permutation="sorted_l2")
    theirs = dscribe_sine(N_MAX, permutation="sorted_l2")
    for atoms in crystals(9)[:3]:
        derivatives, descriptor = theirs.derivatives(atoms, method="numerical")
        jacobian = _jacobian(ours, atoms).transpose(1, 2, 0)
        np.testing.assert_allclose(jacobian, derivatives, rtol=1e-5, atol=1e-6)
        assert_close(ours.create(atoms), descriptor)


def test_batch_has_no_cross_structure_gradient():
    images = crystals(10)[:3]
    descriptor = SineMatrix(N_MAX)
    graph = descriptor.graph(images)
    positions = graph.positions.clone().requires_grad_()
    features = descriptor(graph.replace(positions=positions))
    (grad,) = torch.autograd.grad(features[1].sum(), positions)
    mine = graph.batch == 1
    assert torch.all(grad[~mine] == 0) and torch.any(grad[mine] != 0)


# ---------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("permutation", ["sorted_l2", "eigenspectrum"])
def test_coulomb_matrix_invariance(permutation):
    descriptor = CoulombMatrix(N_MAX, permutation=permutation)
    for k, atoms in enumerate(molecules(11, 5)):
        testing.assert_invariant(descriptor.create, atoms, atol=1e-9, rtol=1e-9, seed=k)


@pytest.mark.parametrize("permutation", ["sorted_l2", "eigenspectrum"])
def test_sine_matrix_invariance(permutation):
    descriptor = SineMatrix(N_MAX, permutation=permutation)
    for k, atoms in enumerate(crystals(12)[:5]):
        testing.assert_invariant(descriptor.create, atoms, atol=1e-9, rtol=1e-9, seed=k)


def test_unsorted_matrix_is_not_permutation_invariant():
    """The oracle can fail: without a permutation the atoms' order shows."""
    atoms = molecules(13, 10)[-1]
    assert len(atoms) > 2
    with pytest.raises(AssertionError, match="permutation"):
        testing.assert_invariant(CoulombMatrix(N_MAX, permutation="none").create, atoms,
                                 rotation=False, translation=False)


# ---------------------------------------------------------------------------- bad input
def test_too_many_atoms_names_the_structure():
    images = [molecule("H2O"), molecule("CH4"), molecule("C6H6")]
    with pytest.raises(DataError, match=r"structure 2: numbers: the structure has 12 atoms, "
                                        r"more than n_atoms_max=5"):
        CoulombMatrix(5).create(images)
    with pytest.raises(DataError, match="structure 2"):
        cm = CoulombMatrix(5)
        from ml4ms.data.graph import AtomicGraph

        cm(AtomicGraph.from_atoms(images, 1.0, labels=False))


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_atoms_max=0), "n_atoms_max"),
    (dict(n_atoms_max=2.5), "n_atoms_max"),
    (dict(n_atoms_max=4, permutation="sorted"), "permutation"),
    (dict(n_atoms_max=4, permutation="random"), "sigma"),
    (dict(n_atoms_max=4, permutation="random", sigma=-1.0), "sigma"),
    (dict(n_atoms_max=4, sigma=1.0), "sigma"),
])
@pytest.mark.parametrize("cls", [CoulombMatrix, SineMatrix])
def test_bad_parameters(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [CoulombMatrix, SineMatrix])
def test_empty_and_nan(cls):
    with pytest.raises(DataError, match="no atoms"):
        cls(4).create(Atoms(cell=np.eye(3) * 3, pbc=True))
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.positions[0, 1] = np.nan
    with pytest.raises(DataError, match="structure 1: positions"):
        cls(4).create([bulk("Cu"), atoms])


def test_sine_matrix_needs_a_cell():
    with pytest.raises(DataError, match="cell"):
        SineMatrix(4).create(molecule("H2O"))


def test_coincident_atoms():
    atoms = Atoms("HH", positions=[[0, 0, 0], [0, 0, 0]])
    with pytest.raises(DataError, match="distance 0"):
        CoulombMatrix(4).create(atoms)
    crystal = Atoms("HH", positions=[[0, 0, 0], [3, 0, 0]], cell=np.eye(3) * 3, pbc=True)
    with pytest.raises(DataError, match="lattice site"):
        SineMatrix(4).create(crystal)


def test_sparse_output():
    images = molecules(14, 5)
    dense = CoulombMatrix(N_MAX).create(images)
    sparse = CoulombMatrix(N_MAX, sparse=True).create(images)
    assert scipy.sparse.issparse(sparse) and sparse.shape == dense.shape
    np.testing.assert_array_equal(sparse.toarray(), dense)
    one = CoulombMatrix(N_MAX, sparse=True).create(images[0])
    assert one.shape == (1, dense.shape[1])
