"""The Behler-Parrinello atomic neural network is a proper, reproducible potential.

Specifications: it passes the conformance checks of every ml4ms potential (forces and
stress are derivatives of the energy, invariances, batching, a lone atom feels no force,
continuity at the cutoff) with ACSF and with SOAP, on bulk metal and on a molecule of
three elements; its weights depend only on its seed; it survives a file round trip
with the statistics :meth:`initialize` fitted; those statistics are plain means and
standard deviations of the descriptor; single precision agrees with double; and every
element has a network of its own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from ml4ms import testing
from ml4ms.data import AtomicGraph
from ml4ms.data.dataset import AtomsDataset
from ml4ms.errors import ConfigError, UnknownElementError
from ml4ms.models import predict
from ml4ms.models.base import model_class
from ml4ms.models.bpnn import PRESETS, AtomicNeuralNetwork
from ml4ms.serialization import load, save

from .conftest import SOAP_SMALL, alloy_cells, emt_cells

#: A small ACSF set: 1 + 4 G2 + 2 G4 per element (pair), fast enough for finite differences.
ACSF_SMALL = {"type": "acsf", "r_cut": 4.0, "n_radial": 4, "n_angular": 1, "zetas": [1.0],
              "lambdas": [-1.0, 1.0]}
DESCRIPTORS = {"acsf": ACSF_SMALL, "soap": {"type": "soap", **SOAP_SMALL}}


def forward(model, images, *, stress=False):
    dtype = model.feature_mean.dtype
    graph = AtomicGraph.from_atoms(list(images), model.cutoff, dtype=dtype, labels=False)
    model.eval()
    out = model(graph, compute_forces=True, compute_stress=stress)
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def cu_cells():
    return emt_cells(4, seed=5)


@pytest.fixture(scope="module")
def methanol():
    atoms = molecule("CH3OH")
    atoms.rattle(0.02, seed=3)
    return atoms


# ------------------------------------------------------------------ conformance
@pytest.mark.parametrize("kind", DESCRIPTORS)
def test_it_is_a_proper_potential_on_bulk_copper(kind, cu_cells):
    model = AtomicNeuralNetwork(["Cu"], descriptor=DESCRIPTORS[kind], hidden=[8, 8], seed=1)
    model.initialize(AtomsDataset(cu_cells))
    small = bulk("Cu", "fcc", a=3.7) * (2, 1, 1)  # a cell much smaller than the cutoff
    small.rattle(0.05, seed=2)
    ran = testing.run_model_checks(model, [cu_cells[0], small], n_checks=6)
    assert set(ran) == set(testing.CHECKS)


@pytest.mark.parametrize("kind", DESCRIPTORS)
def test_it_is_a_proper_potential_on_an_isolated_molecule_of_three_elements(kind, methanol):
    model = AtomicNeuralNetwork(["H", "C", "O"], descriptor=DESCRIPTORS[kind], hidden=[8], seed=2)
    ran = testing.run_model_checks(model, [methanol, molecule("H2O")], n_checks=9)
    assert {"forces", "invariance", "batch", "cross_gradient", "isolated_atom",
            "smooth_at_cutoff"} <= set(ran)


@pytest.mark.parametrize("activation", ["tanh", "celu"])
def test_every_activation_gives_forces_that_are_minus_the_energy_gradient(activation, methanol):
    model = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=[8],
                                activation=activation)
    testing.assert_forces_match_finite_difference(model, methanol, n_checks=6)


# ------------------------------------------------------------------ determinism
def test_the_seed_alone_decides_the_weights(methanol):
    rng_state = torch.random.get_rng_state()
    a = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=[8], seed=7)
    b = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=[8], seed=7)
    c = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=[8], seed=8)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # global RNG untouched
    ea, eb, ec = (forward(m, [methanol]) for m in (a, b, c))
    np.testing.assert_array_equal(ea["energy"], eb["energy"])
    np.testing.assert_array_equal(ea["forces"], eb["forces"])
    assert abs(ea["energy"][0] - ec["energy"][0]) > 1e-6
    assert np.abs(ea["forces"] - ec["forces"]).max() > 1e-6


def test_parameters_are_float64_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        model = AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, hidden=[4])
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} == {torch.float64}


# ------------------------------------------------------------------ configuration and files
def test_the_config_is_json_and_rebuilds_the_model(methanol):
    model = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=(8, 4),
                                activation="tanh", seed=3)
    config = json.loads(json.dumps(model.get_config()))
    assert config == {"descriptor": ACSF_SMALL, "hidden": [8, 4], "activation": "tanh", "seed": 3,
                      "repulsion": None, "anchor_isolated_atom": False}
    rebuilt = type(model)(species=model.species, **config)
    np.testing.assert_array_equal(forward(rebuilt, [methanol])["energy"],
                                  forward(model, [methanol])["energy"])
    assert model_class("AtomicNeuralNetwork") is AtomicNeuralNetwork


def test_save_and_load_keep_energies_forces_and_fitted_statistics(tmp_path):
    data = alloy_cells(6, seed=0)
    model = AtomicNeuralNetwork(["Cu", "Au"], descriptor=ACSF_SMALL, hidden=[8], seed=4)
    model.initialize(AtomsDataset(data))
    path = save(model, tmp_path / "bpnn.ml4ms")
    loaded = load(path)
    assert isinstance(loaded, AtomicNeuralNetwork)
    for name in ("feature_mean", "feature_std", "energy_scale", "reference_energies"):
        assert torch.equal(getattr(loaded, name), getattr(model, name)), name
    assert not torch.equal(loaded.feature_std, torch.ones_like(loaded.feature_std))
    before, after = forward(model, data[:3], stress=True), forward(loaded, data[:3], stress=True)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(after[key], before[key], rtol=0, atol=1e-12, err_msg=key)


def test_presets_and_bad_arguments():
    for name, preset in PRESETS.items():
        model = AtomicNeuralNetwork(["Cu"], **preset)
        assert model.hidden == preset["hidden"], name
    assert AtomicNeuralNetwork(["Cu"], **PRESETS["medium"]).n_features == 49
    with pytest.raises(ConfigError, match="activation"):
        AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, activation="relu6")
    with pytest.raises(ConfigError, match="periodic"):
        AtomicNeuralNetwork(["Cu"], descriptor={**ACSF_SMALL, "periodic": False})
    with pytest.raises(ConfigError, match="descriptor.type"):
        AtomicNeuralNetwork(["Cu"], descriptor={"type": "coulomb"})
    with pytest.raises(ConfigError, match="unknown key"):
        AtomicNeuralNetwork(["Cu"], descriptor={"type": "acsf", "r_cut": 4.0, "n_radiall": 3})


def test_an_explicit_acsf_set_is_taken_as_given():
    explicit = {"type": "acsf", "r_cut": 4.0, "g2_params": [[1.0, 2.0]],
                "g4_params": [[0.01, 1.0, 1.0]]}
    model = AtomicNeuralNetwork(["Cu"], descriptor=explicit, hidden=[4])
    assert model.n_features == 3  # G1, one G2, one G4
    assert model.descriptor.periodic


# ------------------------------------------------------------------ initialisation
def test_initialize_sets_plain_descriptor_statistics_and_centred_reference_energies():
    data = AtomsDataset(alloy_cells(8, seed=1))
    model = AtomicNeuralNetwork(["Cu", "Au"], descriptor=ACSF_SMALL, hidden=[8])
    model.initialize(data, batch_size=3)

    graph = AtomicGraph.from_atoms(data.images, model.cutoff, dtype=torch.float64, labels=False)
    with torch.no_grad():
        q = model.descriptor(graph).numpy()
    numbers = graph.numbers.numpy()
    for k, z in enumerate(model.species):
        rows = q[numbers == z]
        std = rows.std(0)
        std[std < 1e-6] = 1.0
        mean = model.feature_mean[k].numpy()
        np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model.feature_std[k].numpy(), std, rtol=1e-10, atol=1e-12)
    assert (model.feature_std > 0).all()

    # E0 absorbs the initial network's offset per element: the predictions start centred,
    # i.e. no composition-linear part is left in the training errors.
    counts = np.array([[np.sum(a.numbers == z) for z in model.species] for a in data.images])
    errors = predict(model, data.images, compute_stress=False).energy - data.energies()
    offset, *_ = np.linalg.lstsq(counts, errors, rcond=None)
    np.testing.assert_allclose(offset, 0.0, atol=1e-9)
    rms = np.sqrt(np.mean(np.concatenate([a.arrays["forces"] for a in data.images]) ** 2))
    assert float(model.energy_scale) == pytest.approx(rms, rel=1e-12)


def test_initialize_gives_an_element_absent_from_the_data_the_statistics_of_all_atoms():
    data = AtomsDataset(emt_cells(2, seed=2))
    model = AtomicNeuralNetwork(["Cu", "Au"], descriptor=ACSF_SMALL, hidden=[4])
    model.initialize(data)
    cu, au = model.species.index(29), model.species.index(79)
    assert torch.equal(model.feature_mean[au], model.feature_mean[cu])
    assert torch.equal(model.feature_std[au], model.feature_std[cu])


# ------------------------------------------------------------------ precision, elements
def test_single_precision_agrees_with_double(cu_cells):
    model = AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, hidden=[16, 16], seed=5)
    model.initialize(AtomsDataset(cu_cells))
    double = forward(model, cu_cells[:2], stress=True)
    model.to(torch.float32)
    assert model.feature_mean.dtype == torch.float32
    single = forward(model, cu_cells[:2], stress=True)
    assert single["forces"].dtype == np.float32
    np.testing.assert_allclose(single["energy"], double["energy"], rtol=1e-4)
    # relative to the typical size: components near zero carry the same absolute error
    for key in ("energies", "forces", "stress"):
        scale = np.abs(double[key]).max()
        np.testing.assert_allclose(single[key], double[key], rtol=0, atol=1e-4 * scale, err_msg=key)


def test_an_element_the_model_does_not_know_is_rejected_with_the_structure_named(methanol):
    model = AtomicNeuralNetwork(["H", "C"], descriptor=ACSF_SMALL, hidden=[4])
    graph = AtomicGraph.from_atoms([molecule("CH4"), methanol], model.cutoff, labels=False)
    with pytest.raises(UnknownElementError, match="O") as info:
        model(graph)
    assert info.value.index == 1


def test_each_element_has_its_own_network(methanol):
    model = AtomicNeuralNetwork(["H", "C", "O"], descriptor=ACSF_SMALL, hidden=[8], seed=6)
    diamond = bulk("C", "diamond", a=3.57)
    diamond.rattle(0.05, seed=1)
    before_mol, before_c = forward(model, [methanol]), forward(model, [diamond])
    h = model.species.index(1)
    with torch.no_grad():
        for w in model.weights:
            w[h] += 0.1 * torch.ones_like(w[h])
    after_mol, after_c = forward(model, [methanol]), forward(model, [diamond])
    assert abs(after_mol["energy"][0] - before_mol["energy"][0]) > 1e-4
    carbon_and_oxygen = methanol.numbers != 1
    # C and O atoms of methanol keep their energies: only the H network changed
    np.testing.assert_array_equal(after_mol["energies"][carbon_and_oxygen],
                                  before_mol["energies"][carbon_and_oxygen])
    np.testing.assert_array_equal(after_c["energy"], before_c["energy"])
    np.testing.assert_array_equal(after_c["forces"], before_c["forces"])
