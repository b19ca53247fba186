"""The linear and quadratic SOAP potentials (Bayesian ridge)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml4ms import load, save
from ml4ms.data import AtomicGraph
from ml4ms.models import LinearPotential, predict
from ml4ms.testing import run_model_checks

from .conftest import SOAP_SMALL


@pytest.fixture(scope="module", params=[False, True], ids=["linear", "quadratic"])
def linear(request, emt_train):
    descriptor = SOAP_SMALL if not request.param else {**SOAP_SMALL, "n_max": 3, "l_max": 2}
    model = LinearPotential(["Cu"], descriptor, quadratic=request.param)
    return model.fit(emt_train, energy_sigma=5e-4, force_sigma=0.01, stress_sigma=0.005, alpha=1e-6)


def test_design_rows_are_the_derivatives_of_energy_forces_and_stress(linear, emt_test):
    graph = AtomicGraph.from_atoms(emt_test[:2], linear.cutoff)
    design = linear.design(graph)
    out = linear(graph, compute_stress=True)
    w = linear.weights
    torch.testing.assert_close(design["energy"] @ w, out["energy"].detach()
                               - 32 * linear.reference_energies[29], rtol=0, atol=1e-9)
    torch.testing.assert_close(design["forces"] @ w, out["forces"].detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(design["stress"] @ w, out["stress"].detach(), rtol=0, atol=1e-11)


def test_a_linear_model_learns_emt_and_passes_the_conformance_checks(linear, emt_test):
    predictions = predict(linear, emt_test)
    n = np.array([len(a) for a in emt_test])
    energy_mae = np.abs((predictions.energy - [a.info["energy"] for a in emt_test]) / n).mean()
    assert energy_mae < 5e-3
    run_model_checks(linear, emt_test[:2], n_checks=6)


def test_the_posterior_variance_is_phi_sigma_phi(linear, emt_test):
    graph = AtomicGraph.from_atoms(emt_test[:1], linear.cutoff)
    phi = linear.design(graph)["energy"][0]
    r = linear.posterior_factor
    expected = float(phi @ torch.linalg.solve(r.T @ r, phi)) * float(linear.uncertainty_scale) ** 2
    assert float(linear.uncertainty(graph)["energy"][0]) ** 2 == pytest.approx(expected, rel=1e-2)


def test_save_load_round_trip(linear, emt_test, tmp_path):
    save(linear, tmp_path / "m.ml4ms")
    twin = load(tmp_path / "m.ml4ms")
    a, b = predict(linear, emt_test[:2]), predict(twin, emt_test[:2])
    np.testing.assert_allclose(b.energy, a.energy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(b.forces), np.concatenate(a.forces), rtol=0, atol=1e-12)
