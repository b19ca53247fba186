"""The PaiNN-style equivariant message-passing network is a proper, reproducible potential.

Specifications: it passes the conformance checks of every ml4ms potential (forces and
stress are derivatives of the energy, invariances, batching, a lone atom feels no force,
continuity of energy and forces at the cutoff) on bulk copper, on a cell much smaller
than the cutoff and on molecules of three elements; its internal vector features rotate
with the structure while its scalar features do not change; its weights depend only on
its seed; it survives a file round trip; single precision agrees with double; unknown
elements are refused by name; forces can be trained on (double backward); and
:meth:`initialize` sets E0 and the energy scale to independently computed statistics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from ml4ms import testing
from ml4ms.data import AtomicGraph
from ml4ms.data.dataset import AtomsDataset
from ml4ms.errors import ConfigError, UnknownElementError
from ml4ms.models.base import model_class
from ml4ms.models.mpnn import PRESETS, EquivariantMPNN
from ml4ms.serialization import load, save

from .conftest import alloy_cells, emt_cells

#: Small enough for finite differences, large enough to have every part at work.
TINY = {"channels": 16, "n_layers": 2, "n_radial": 6, "readout_hidden": 8}


def forward(model, images, *, stress=False, dtype=None):
    dtype = dtype or model.reference_energies.dtype
    graph = AtomicGraph.from_atoms(list(images), model.cutoff, dtype=dtype, labels=False)
    model.eval()
    out = model(graph, compute_forces=True, compute_stress=stress)
    return {k: v.detach().double().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def cu_cells():
    return emt_cells(3, seed=11)


@pytest.fixture(scope="module")
def methanol():
    atoms = molecule("CH3OH")
    atoms.rattle(0.02, seed=3)
    return atoms


# ------------------------------------------------------------------ conformance
def test_it_is_a_proper_potential_on_bulk_copper(cu_cells):
    model = EquivariantMPNN(["Cu"], cutoff=4.5, seed=1, **TINY)
    model.initialize(AtomsDataset(cu_cells))
    small = bulk("Cu", "fcc", a=3.7) * (2, 1, 1)  # a cell much smaller than the cutoff
    small.rattle(0.05, seed=2)
    ran = testing.run_model_checks(model, [cu_cells[0], small], n_checks=8)
    assert set(ran) == set(testing.CHECKS)


def test_it_is_a_proper_potential_on_isolated_molecules_of_three_elements(methanol):
    model = EquivariantMPNN(["H", "C", "O"], cutoff=4.0, seed=2, atomic_energy_scale=0.5, **TINY)
    model.set_reference_energies({"H": -13.6, "C": -1029.0, "O": -2041.0})
    # The unrattled, symmetric H2O has vector features near zero: PaiNN's plain norm |V v|
    # makes the forces there disagree with finite differences.
    ran = testing.run_model_checks(model, [methanol, molecule("H2O")], n_checks=9)
    assert {
        "forces",
        "invariance",
        "batch",
        "cross_gradient",
        "isolated_atom",
        "smooth_at_cutoff",
        "smooth_forces",
    } <= set(ran)


def test_the_forces_are_not_trivially_zero(cu_cells, methanol):
    # The conformance checks would pass for a model that ignores geometry.
    cu = forward(EquivariantMPNN(["Cu"], cutoff=4.5, **TINY), cu_cells[:1])
    mol = forward(EquivariantMPNN(["H", "C", "O"], cutoff=4.0, **TINY), [methanol])
    assert np.abs(cu["forces"]).max() > 1e-3 and np.abs(mol["forces"]).max() > 1e-3
    assert np.abs(mol["energies"]).max() > 1e-3


def test_edges_beyond_the_cutoff_contribute_nothing(cu_cells):
    model = EquivariantMPNN(["Cu"], cutoff=4.0, **TINY).eval()
    atoms = cu_cells[0]
    same = model(AtomicGraph.from_atoms(atoms, 4.0, labels=False), compute_stress=True)
    longer = model(AtomicGraph.from_atoms(atoms, 6.0, labels=False), compute_stress=True)
    for key in ("energy", "energies", "forces", "stress"):
        torch.testing.assert_close(longer[key], same[key], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ equivariance
def test_vector_features_rotate_with_the_structure_and_scalar_features_do_not(cu_cells, methanol):
    rotation = testing.random_rotation(5)
    for atoms, species in ((cu_cells[1], ["Cu"]), (methanol, ["H", "C", "O"])):
        model = EquivariantMPNN(species, cutoff=4.0, seed=3, **TINY)
        rotated = atoms.copy()
        rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
        rotated.positions = atoms.positions @ rotation.T
        with torch.no_grad():
            s, v = model.features(AtomicGraph.from_atoms(atoms, model.cutoff, labels=False))
            s_rot, v_rot = model.features(
                AtomicGraph.from_atoms(rotated, model.cutoff, labels=False)
            )
        assert s.shape == (len(atoms), 16) and v.shape == (len(atoms), 3, 16)
        assert v.abs().max() > 1e-3  # not equivariant by being zero
        torch.testing.assert_close(s_rot, s, rtol=1e-10, atol=1e-10)
        expected = torch.einsum("ab,nbf->naf", torch.as_tensor(rotation), v)
        torch.testing.assert_close(v_rot, expected, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ determinism
def test_the_seed_alone_decides_the_weights(methanol):
    rng_state = torch.random.get_rng_state()
    a, b, c = (EquivariantMPNN(["H", "C", "O"], seed=seed, **TINY) for seed in (7, 7, 8))
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # global RNG untouched
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(a.embedding, c.embedding)
    ea, eb, ec = (forward(m, [methanol]) for m in (a, b, c))
    np.testing.assert_array_equal(ea["energy"], eb["energy"])
    np.testing.assert_array_equal(ea["forces"], eb["forces"])
    assert abs(ea["energy"][0] - ec["energy"][0]) > 1e-6
    assert np.abs(ea["forces"] - ec["forces"]).max() > 1e-6


def test_parameters_are_float64_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        model = EquivariantMPNN(["Cu"], **TINY)
    finally:
        torch.set_default_dtype(previous)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert all(b.dtype in (torch.float64, torch.int64, torch.bool) for b in model.buffers())


# ------------------------------------------------------------------ files and precision
def test_a_saved_model_loads_with_the_same_predictions(tmp_path, cu_cells):
    model = EquivariantMPNN(["Cu"], cutoff=4.5, seed=4, **TINY)
    model.initialize(AtomsDataset(cu_cells))
    assert json.loads(json.dumps(model.config)) == model.config
    path = save(model, tmp_path / "m.ml4ms")
    loaded = load(path)
    assert type(loaded) is EquivariantMPNN and model_class("EquivariantMPNN") is EquivariantMPNN
    assert loaded.config == model.config
    assert loaded.get_reference_energies() == model.get_reference_energies()
    assert float(loaded.atomic_energy_scale) == float(model.atomic_energy_scale) != 1.0
    before, after = forward(model, cu_cells, stress=True), forward(loaded, cu_cells, stress=True)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(after[key], before[key], rtol=0, atol=1e-12)
    # The configuration alone rebuilds the same network (weights from the seed).
    rebuilt = type(model)(species=model.species, **model.get_config())
    rebuilt.set_reference_energies(model.get_reference_energies())
    np.testing.assert_allclose(
        forward(rebuilt, cu_cells)["forces"], before["forces"], rtol=0, atol=1e-12
    )


def test_single_precision_agrees_with_double(cu_cells, methanol):
    for images, species in ((cu_cells[:2], ["Cu"]), ([methanol], ["H", "C", "O"])):
        model = EquivariantMPNN(species, cutoff=4.5, seed=5, atomic_energy_scale=0.5, **TINY)
        model.set_reference_energies({z: -3.0 for z in species})
        double = forward(model, images, stress=species == ["Cu"])
        model.to(torch.float32)
        assert model.embedding.dtype == torch.float32
        single = forward(model, images, stress=species == ["Cu"], dtype=torch.float32)
        np.testing.assert_allclose(single["energy"], double["energy"], rtol=1e-5)
        scale = np.abs(double["forces"]).max()
        np.testing.assert_allclose(single["forces"], double["forces"], rtol=0, atol=1e-4 * scale)
        if "stress" in double:
            scale = np.abs(double["stress"]).max()
            np.testing.assert_allclose(
                single["stress"], double["stress"], rtol=0, atol=1e-4 * scale
            )


# ------------------------------------------------------------------ input checks
def test_an_unknown_element_is_refused_by_name():
    model = EquivariantMPNN(["Cu"], **TINY)
    atoms = Atoms("CuAu", positions=[[0, 0, 0], [0, 0, 2.5]])
    graph = AtomicGraph.from_atoms(atoms, model.cutoff, labels=False)
    with pytest.raises(UnknownElementError, match="element Au"):
        model(graph)
    with pytest.raises(UnknownElementError, match="element Au"):
        model.features(graph)


def test_bad_hyperparameters_are_configuration_errors():
    with pytest.raises(ConfigError, match="activation"):
        EquivariantMPNN(["Cu"], activation="relu6")
    with pytest.raises(ConfigError, match="channels"):
        EquivariantMPNN(["Cu"], channels=0)
    with pytest.raises(ConfigError, match="species"):
        EquivariantMPNN([])


def test_presets_build_models_that_rebuild_from_their_config():
    assert [PRESETS[k]["channels"] for k in ("small", "medium", "large")] == [32, 64, 128]
    assert [PRESETS[k]["n_layers"] for k in ("small", "medium", "large")] == [2, 3, 4]
    for preset in PRESETS.values():
        model = EquivariantMPNN(["Cu", "Au"], **preset)
        config = model.get_config()
        assert {k: config[k] for k in preset} == preset
        rebuilt = type(model)(species=model.species, **config)
        assert torch.equal(rebuilt.embedding, model.embedding)


# ------------------------------------------------------------------ training
def test_forces_can_be_trained_on(cu_cells):
    # A force loss needs the derivative of the forces with respect to the weights.
    model = EquivariantMPNN(["Cu"], cutoff=4.5, **TINY).train()
    graph = AtomicGraph.from_atoms(cu_cells[:2], model.cutoff)
    out = model(graph, compute_forces=True, compute_stress=True)
    loss = ((out["forces"] - graph.forces) ** 2).mean() + (out["stress"] ** 2).mean()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["messages.0.filter_weight"].abs().max() > 0
    assert grads["updates.1.uv.weight"].abs().max() > 0


# ------------------------------------------------------------------ initialize
def test_initialize_sets_the_scale_from_the_forces_and_e0_to_what_the_network_leaves():
    images = alloy_cells(6, seed=9)
    model = EquivariantMPNN(["Cu", "Au"], **TINY)
    model.initialize(AtomsDataset(images))

    forces = np.concatenate([a.arrays["forces"] for a in images])
    assert float(model.atomic_energy_scale) == pytest.approx(np.sqrt(np.mean(forces**2)), 1e-12)
    assert float(model.atomic_energy_shift) == 0.0
    # E0 is the least-squares fit, on composition, of the labels minus the network's part.
    counts = np.array([[np.sum(a.numbers == 29), np.sum(a.numbers == 79)] for a in images])
    energies = np.array([a.info["energy"] for a in images])
    with torch.no_grad():
        network = [
            float(model.atomic_energies(AtomicGraph.from_atoms(a, model.cutoff)).sum())
            for a in images
        ]
    e0, *_ = np.linalg.lstsq(counts, energies - np.array(network), rcond=None)
    fitted = model.get_reference_energies()
    np.testing.assert_allclose([fitted["Cu"], fitted["Au"]], e0, rtol=1e-9, atol=1e-9)
    # so the model's errors on its training energies sum to zero for every element
    predicted = forward(model, images)["energy"]
    np.testing.assert_allclose(counts.T @ (predicted - energies), 0.0, atol=1e-8)


def test_initialize_without_forces_takes_the_spread_of_per_atom_energies_as_scale():
    images = alloy_cells(6, seed=9)
    for atoms in images:
        del atoms.arrays["forces"]
    model = EquivariantMPNN(["Cu", "Au"], **TINY)
    model.initialize(AtomsDataset(images))
    counts = np.array([[np.sum(a.numbers == 29), np.sum(a.numbers == 79)] for a in images])
    energies = np.array([a.info["energy"] for a in images])
    composition_e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    residual = (energies - counts @ composition_e0) / counts.sum(1)
    assert float(model.atomic_energy_scale) == pytest.approx(residual.std(), 1e-10)
