"""Committee: the mean of its members, their spread as the error bar, a file like any model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml4ms import testing
from ml4ms.data import AtomicGraph
from ml4ms.data.dataset import AtomsDataset
from ml4ms.models import AtomicNeuralNetwork, Committee, predict
from ml4ms.serialization import load, save

from .conftest import emt_cells

SMALL_ACSF = {"type": "acsf", "r_cut": 4.5, "n_radial": 6, "n_angular": 2, "zetas": [1, 4]}


@pytest.fixture(scope="module")
def cells():
    return emt_cells(6, seed=3)


@pytest.fixture(scope="module")
def members(cells):
    out = []
    for seed in range(3):
        model = AtomicNeuralNetwork(["Cu"], descriptor=SMALL_ACSF, hidden=[8], seed=seed)
        model.initialize(AtomsDataset(cells))
        out.append(model)
    return out


def test_the_committee_predicts_the_mean_of_its_members(members, cells):
    committee = Committee.from_models(members)
    alone = [predict(m, cells, uncertainty=False) for m in members]
    together = predict(committee, cells, uncertainty=False)
    np.testing.assert_allclose(together.energy, np.mean([p.energy for p in alone], axis=0), rtol=1e-12)
    for k in range(len(cells)):
        np.testing.assert_allclose(together.forces[k], np.mean([p.forces[k] for p in alone], axis=0),
                                   atol=1e-12)
    np.testing.assert_allclose(together.stress, np.mean([p.stress for p in alone], axis=0), atol=1e-12)


def test_the_error_bar_is_the_spread_of_the_members_and_the_covariance_their_sample_covariance(members, cells):
    committee = Committee.from_models(members)
    member_energy = np.array([predict(m, cells, uncertainty=False).energy for m in members])
    predicted = predict(committee, cells, uncertainty=True)
    np.testing.assert_allclose(predicted.energy_std, member_energy.std(axis=0, ddof=1), rtol=1e-10)
    graph = AtomicGraph.from_atoms(cells, committee.cutoff, labels=False)
    with torch.no_grad():
        covariance = committee.energy_covariance(graph).numpy()
    np.testing.assert_allclose(covariance, np.cov(member_energy, rowvar=False), rtol=1e-10, atol=1e-14)


def test_calibration_is_the_maximum_likelihood_scale_of_the_spread(members, cells):
    committee = Committee.from_models(members)
    member_energy = np.array([predict(m, cells, uncertainty=False).energy for m in members])
    errors = member_energy.mean(axis=0) - np.array([a.info["energy"] for a in cells])
    expected = np.sqrt(np.mean(errors**2 / member_energy.var(axis=0, ddof=1)))
    assert committee.calibrate_uncertainty(cells) == pytest.approx(expected, rel=1e-10)
    predicted = predict(committee, cells, uncertainty=True)
    np.testing.assert_allclose(predicted.energy_std, expected * member_energy.std(axis=0, ddof=1), rtol=1e-10)


def test_a_saved_committee_loads_with_its_members_and_its_scale(members, cells, tmp_path):
    committee = Committee.from_models(members)
    committee.calibrate_uncertainty(cells)
    path = save(committee, tmp_path / "committee.ml4ms")
    loaded = load(path)
    assert isinstance(loaded, Committee) and len(loaded.members) == 3
    before, after = predict(committee, cells), predict(loaded, cells)
    np.testing.assert_allclose(after.energy, before.energy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(after.energy_std, before.energy_std, rtol=1e-12)


def test_a_committee_is_a_proper_potential(members, cells):
    testing.run_model_checks(Committee.from_models(members), cells[:2])


def test_one_model_has_no_spread(members, cells):
    committee = Committee.from_models(members[:1])
    graph = AtomicGraph.from_atoms(cells[:1], committee.cutoff, labels=False)
    with pytest.raises(ValueError, match="at least two members"):
        committee.uncertainty(graph)
