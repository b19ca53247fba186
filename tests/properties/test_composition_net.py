"""CompositionAttentionNet: a function of the composition alone, learns a known one,
round-trips through a model file, is deterministic and resumes bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from ml4ms.descriptors.composition import FormulaError
from ml4ms.descriptors.elements import element_table
from ml4ms.errors import ConfigError, DataError
from ml4ms.properties.base import property_model_class
from ml4ms.properties.composition_net import CompositionAttentionNet
from ml4ms.properties.files import load_property_model, save_property_model

ELEMENTS = [3, 11, 12, 13, 14, 19, 20, 22, 26, 29, 30, 31, 32, 33, 47, 49, 50, 51]
SMALL = {"d_model": 32, "n_heads": 2, "n_layers": 2, "readout_hidden": 64, "batch_size": 32, "lr": 3e-3,
         "device": "cpu", "n_threads": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: a second thread only adds synchronisation (and is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(n: int, seed: int) -> tuple[list[dict[int, float]], np.ndarray]:
    """Compounds of 1-3 elements; target = fraction-weighted mean Pauling electronegativity
    plus the fraction-weighted mean |difference| between pairs (an ionic-character term)."""
    chi = np.array(element_table(["Electronegativity"]))[:, 0]
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        z = rng.choice(ELEMENTS, rng.integers(1, 4), replace=False)
        amounts = rng.integers(1, 5, len(z)).astype(float)
        f = amounts / amounts.sum()
        X.append({int(a): float(b) for a, b in zip(z, amounts)})
        y.append((f * chi[z]).sum() + (f[:, None] * f[None, :] * np.abs(chi[z][:, None] - chi[z][None, :])).sum())
    return X, np.array(y)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    X, y = synthetic(420, 0)
    model = CompositionAttentionNet(**SMALL, epochs=60, n_models=2, dtype="float64")
    model.fit(X[:300], y[:300])
    return model, X, y


def test_learns_a_known_function_of_composition(trained):
    model, X, y = trained
    mean = model.predict(X[300:])
    mae = np.abs(mean - y[300:]).mean()
    baseline = np.abs(y[300:] - y[:300].mean()).mean()
    assert mean.shape == (120,)
    assert mae < 0.15 * baseline, (mae, baseline)


def test_the_prediction_ignores_the_order_and_spelling_of_the_elements(trained):
    model, _, _ = trained
    forms = [{"O": 3, "Fe": 2}, {"Fe": 2, "O": 3}, "Fe2O3", {26: 4.0, 8: 6.0}, "Fe4O6"]
    mean, sigma = model.predict(forms, return_std=True)
    np.testing.assert_allclose(mean, mean[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(sigma, sigma[0], rtol=0, atol=1e-10)
    other = model.predict(["FeO", "Fe3O4"])
    assert abs(other[0] - mean[0]) > 1e-4 and abs(other[1] - mean[0]) > 1e-4


def test_sigma_is_positive_and_calibration_makes_it_match_the_errors(trained):
    fitted, X, y = trained
    model = CompositionAttentionNet.from_state(fitted.get_params(), *fitted.get_state())  # a copy
    mean, sigma = model.predict(X[300:360], return_std=True)
    assert (sigma > 0).all() and np.isfinite(sigma).all()
    scale = model.calibrate(X[300:360], y[300:360])
    _, calibrated = model.predict(X[300:360], return_std=True)
    np.testing.assert_allclose(calibrated, scale * sigma)
    assert np.mean(((y[300:360] - mean) / calibrated) ** 2) == pytest.approx(1.0)


def test_a_saved_model_predicts_exactly_as_the_original(trained, tmp_path):
    model, X, y = trained
    model.uncertainty_scale_ = 1.7
    path = save_property_model(model, tmp_path / "gap.ml4ms", target="synthetic", unit="eV")
    loaded = load_property_model(path)
    assert isinstance(loaded, CompositionAttentionNet) and property_model_class("composition-net") is CompositionAttentionNet
    for a, b in zip(model.predict(X[300:], return_std=True), loaded.predict(X[300:], return_std=True)):
        np.testing.assert_array_equal(a, b)


def test_training_is_deterministic_under_a_seed():
    X, y = synthetic(80, 1)
    settings = {**SMALL, "epochs": 3}
    a = CompositionAttentionNet(**settings, seed=3).fit(X, y).predict(X)
    b = CompositionAttentionNet(**settings, seed=3).fit(X, y).predict(X)
    c = CompositionAttentionNet(**settings, seed=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


def test_an_interrupted_fit_resumes_to_the_uninterrupted_model(tmp_path):
    X, y = synthetic(80, 2)
    settings = {**SMALL, "epochs": 3, "n_models": 2, "train_options": {"checkpoint_every": 2}}
    reference = CompositionAttentionNet(**settings).fit(X, y)
    # a time limit stops each member after its first step, with a checkpoint
    stopped = CompositionAttentionNet(**{**settings, "train_options": {"checkpoint_every": 2, "time_limit_min": 1e-9}})
    stopped.fit(X, y, directory=tmp_path)
    assert [t["stopped"] for t in stopped.training_] == ["time_limit", "time_limit"]
    assert (tmp_path / "member1" / "metrics.csv").exists() is False  # no epoch finished yet
    resumed = CompositionAttentionNet(**settings).fit(X, y, directory=tmp_path, resume=True)
    assert [t["steps"] for t in resumed.training_] == [t["steps"] for t in reference.training_]
    np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))
    assert (tmp_path / "member1" / "metrics.csv").exists()


def test_clone_gives_an_unfitted_model_with_the_same_hyper_parameters(trained):
    model, _, _ = trained
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "networks_")


def test_bad_input_is_refused_with_a_clear_error():
    X, y = synthetic(10, 3)
    with pytest.raises(DataError, match="not finite"):
        CompositionAttentionNet(**SMALL, epochs=1).fit(X, np.where(np.arange(10) == 4, np.nan, y))
    with pytest.raises(DataError, match="shape"):
        CompositionAttentionNet(**SMALL, epochs=1).fit(X, y[:-1])
    with pytest.raises(FormulaError, match="Xx"):
        CompositionAttentionNet(**SMALL, epochs=1).fit(["NaCl", "Xx2O"], [1.0, 2.0])
    with pytest.raises(ConfigError, match="n_models >= 2"):
        CompositionAttentionNet(**SMALL, loss="l1").fit(X, y)
    with pytest.raises(ConfigError, match="must divide"):
        CompositionAttentionNet(**{**SMALL, "n_heads": 3}).fit(X, y)
