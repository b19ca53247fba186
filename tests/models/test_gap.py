"""The sparse-GP potential: it learns a known potential, knows where it does not know, and
behaves as a potential must."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from ml4ms import load, save
from ml4ms.data import AtomicGraph
from ml4ms.errors import DataError, UnknownElementError
from ml4ms.models import SparseGPPotential, predict
from ml4ms.testing import run_model_checks

from .conftest import SOAP_SMALL


def _mae(predictions, images):
    n = np.array([len(a) for a in images])
    energy = np.abs((predictions.energy - np.array([a.info["energy"] for a in images])) / n).mean()
    forces = np.mean([np.abs(f - a.arrays["forces"]).mean() for f, a in zip(predictions.forces, images)])
    return energy, forces


@pytest.fixture(scope="module")
def gap(emt_train):
    model = SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=60, delta=0.2, pair={"cutoff": 4.5, "n_basis": 8})
    return model.fit(emt_train, energy_sigma=5e-4, force_sigma=0.01, stress_sigma=0.005)


def test_a_gp_fitted_to_emt_recovers_it_on_unseen_structures(gap, emt_test):
    energy_mae, force_mae = _mae(predict(gap, emt_test), emt_test)
    spread = np.std([a.info["energy"] / len(a) for a in emt_test])
    force_scale = np.mean([np.abs(a.arrays["forces"]).mean() for a in emt_test])
    assert energy_mae < 2e-3 and energy_mae < 0.1 * spread  # eV/atom
    assert force_mae < 0.1 * force_scale


def test_the_predicted_sigma_grows_away_from_the_training_data(gap, emt_test):
    near = emt_test[0]
    far = bulk("Cu", "fcc", a=3.61 * 0.88, cubic=True).repeat(2)  # 12 % compressed: never seen
    sigma = []
    for atoms in (near, far):
        graph = AtomicGraph.from_atoms([atoms], gap.cutoff)
        sigma.append(float(gap.uncertainty(graph)["energy"][0]))
    assert sigma[1] > 5 * sigma[0]
    per_atom = gap.uncertainty(AtomicGraph.from_atoms([far], gap.cutoff))["energies"]
    assert per_atom.shape == (len(far),) and bool((per_atom > 0).all())
    assert float(per_atom.max()) <= gap.delta * (1 + 1e-9)  # never above the prior


def test_the_gp_passes_the_potential_conformance_checks(gap, emt_test):
    images = [emt_test[0], bulk("Cu", "fcc", a=3.7) * (2, 1, 1)]
    images[1].rattle(0.05, seed=2)
    ran = run_model_checks(gap, images, n_checks=8)
    assert {"forces", "stress", "invariance", "batch"} <= set(ran)


def test_save_then_load_gives_the_same_predictions_and_uncertainties(gap, emt_test, tmp_path):
    path = tmp_path / "gap.ml4ms"
    save(gap, path)
    twin = load(path)
    a, b = predict(gap, emt_test[:3], uncertainty=True), predict(twin, emt_test[:3], uncertainty=True)
    np.testing.assert_allclose(b.energy, a.energy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(b.forces), np.concatenate(a.forces), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.stress, a.stress, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.energy_std, a.energy_std, rtol=1e-12, atol=0)


def test_validation_search_chooses_hyper_parameters_and_calibrates_sigma(emt_train):
    model = SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=40, delta=0.2)
    model.fit(emt_train, force_sigma=0.01, stress_sigma=None, validation=0.25,
              search={"energy_sigma": [5e-4, 5e-3], "alpha": [0.1, 1.0]})
    info = model.fit_info
    assert len(info["search"]) == 4 and info["n_validation"] == 6
    assert {info["chosen"]["energy_sigma"], info["chosen"]["alpha"]} <= {5e-4, 5e-3, 0.1, 1.0}
    assert info["uncertainty_scale"] > 0 and float(model.uncertainty_scale) == info["uncertainty_scale"]
    best = min(t["energy_mae"] / min(s["energy_mae"] for s in info["search"])
               + t["forces_mae"] / min(s["forces_mae"] for s in info["search"]) for t in info["search"])
    chosen = [t for t in info["search"] if all(t[k] == v for k, v in info["chosen"].items())][0]
    assert chosen["energy_mae"] / min(s["energy_mae"] for s in info["search"]) + \
        chosen["forces_mae"] / min(s["forces_mae"] for s in info["search"]) == pytest.approx(best)


def test_bad_training_data_and_unknown_elements_are_named(emt_train):
    no_forces = [a.copy() for a in emt_train[:4]]
    for a in no_forces:
        del a.arrays["forces"]
    model = SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=10)
    with pytest.raises(DataError, match="force_sigma"):
        model.fit(no_forces)
    with pytest.raises(DataError, match="do not occur"):
        SparseGPPotential(["Cu", "Au"], SOAP_SMALL, n_sparse=10).fit(emt_train[:4])
    model.fit(emt_train[:4], stress_sigma=None)
    gold = emt_train[0].copy()
    gold.numbers[3] = 79
    with pytest.raises(UnknownElementError, match="Au"):
        predict(model, [emt_train[1], gold])


def test_fitting_twice_gives_identical_weights(emt_train):
    def fit():
        return SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=20, sparse_method="cur", seed=3).fit(
            emt_train[:6], stress_sigma=None).weights
    torch.testing.assert_close(fit(), fit(), rtol=0, atol=0)
