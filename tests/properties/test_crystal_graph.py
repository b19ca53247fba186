"""CrystalGraphNet: invariant under the symmetries of physics, learns a known structure ->
property map, and round-trips through a model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from ml4ms.data.neighbors import neighbor_list
from ml4ms.errors import DataError
from ml4ms.properties.crystal_graph import CrystalGraphNet
from ml4ms.properties.files import load_property_model, save_property_model

SMALL = {"cutoff": 4.0, "channels": 16, "n_layers": 2, "n_gaussians": 12, "readout_hidden": 32, "batch_size": 16,
         "lr": 3e-3, "device": "cpu", "n_threads": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rocksalt_cells(n: int, seed: int) -> list[Atoms]:
    """Rattled, strained 8-atom rock-salt cells of Na/K with Cl/Br."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(n):
        atoms = bulk("NaCl", "rocksalt", a=rng.uniform(5.2, 6.2), cubic=True)
        numbers = atoms.numbers.copy()
        cation = numbers == 11
        numbers[cation] = rng.choice([11, 19], cation.sum())
        numbers[~cation] = rng.choice([17, 35], (~cation).sum())
        atoms.numbers = numbers
        atoms.positions += rng.normal(0.0, 0.15, atoms.positions.shape)
        cells.append(atoms)
    return cells


def pair_target(atoms: Atoms, cutoff: float = 4.0) -> float:
    """Per atom: sum over neighbours within the cutoff of a smooth pair term that depends
    on the two elements, averaged over atoms (an intensive, known function of the structure)."""
    pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    r = np.linalg.norm(pairs.vectors(atoms.positions, atoms.cell.array), axis=1)
    strength = np.where(atoms.numbers[pairs.i] == atoms.numbers[pairs.j], -0.5, 1.0) * \
        (atoms.numbers[pairs.i] + atoms.numbers[pairs.j]) / 30.0
    terms = strength * np.exp(-(r - 2.5)) * 0.5 * (1 + np.cos(np.pi * r / cutoff))
    return float(terms.sum() / len(atoms))


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    cells = rocksalt_cells(260, 0)
    y = np.array([pair_target(a) for a in cells])
    model = CrystalGraphNet(**SMALL, epochs=40, dtype="float64")
    model.fit(cells[:200], y[:200])
    return model, cells, y


def test_learns_a_known_function_of_the_structure(trained):
    model, cells, y = trained
    mean, sigma = model.predict(cells[200:], return_std=True)
    mae = np.abs(mean - y[200:]).mean()
    baseline = np.abs(y[200:] - y[:200].mean()).mean()
    assert mean.shape == sigma.shape == (60,)
    assert (sigma > 0).all()
    assert mae < 0.3 * baseline, (mae, baseline)


def test_invariant_to_atom_order_rotation_translation_and_supercell(trained):
    model = trained[0]
    atoms = rocksalt_cells(1, 5)[0]
    order = np.random.default_rng(1).permutation(len(atoms))
    permuted = atoms[order]
    rotation = Rotation.from_euler("zyx", [0.3, -1.1, 2.0]).as_matrix()
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    moved.positions = atoms.positions @ rotation.T + np.array([0.7, -2.1, 5.3])
    supercell = atoms.repeat((2, 1, 3))
    stretched = atoms.copy()
    stretched.set_cell(atoms.cell.array * 1.05, scale_atoms=True)
    mean, sigma = model.predict([atoms, permuted, moved, supercell, stretched], return_std=True)
    np.testing.assert_allclose(mean[:4], mean[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(sigma[:4], sigma[0], rtol=0, atol=1e-9)
    assert abs(mean[4] - mean[0]) > 1e-4  # but it does see the geometry


def test_a_saved_model_predicts_exactly_as_the_original(trained, tmp_path):
    model, cells, _ = trained
    path = save_property_model(model, tmp_path / "cg.ml4ms", target="pair", unit="eV/atom")
    loaded = load_property_model(path)
    assert isinstance(loaded, CrystalGraphNet) and loaded.file_header_["input_kind"] == "structure"
    for a, b in zip(model.predict(cells[200:], return_std=True), loaded.predict(cells[200:], return_std=True)):
        np.testing.assert_array_equal(a, b)


def test_sum_pooling_and_float32_train_and_improve():
    cells = rocksalt_cells(80, 3)
    y = np.array([pair_target(a) * len(a) for a in cells])
    model = CrystalGraphNet(**{**SMALL, "pooling": "sum"}, epochs=15, validation_fraction=0.25)
    model.fit(cells, y)
    assert next(model.networks_[0].parameters()).dtype == torch.float32
    assert model.training_[0]["best_val_mae"] < 0.5 * np.abs(y - y.mean()).mean()


def test_bad_input_is_refused_with_a_clear_error():
    cells = rocksalt_cells(3, 4)
    with pytest.raises(DataError, match="structure 1: X: expected an ase.Atoms"):
        CrystalGraphNet(**SMALL, epochs=1).fit([cells[0], "NaCl", cells[2]], [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="structure 2: numbers: the structure has no atoms"):
        CrystalGraphNet(**SMALL, epochs=1).fit([cells[0], cells[1], Atoms()], [1.0, 2.0, 3.0])
