"""The tabular regressor: learns known functions of composition, hurdle model for zeros,
calibrated sigma, exact save/load."""

import copy

import numpy as np
import pytest
from ase.data import chemical_symbols
from sklearn.base import clone

from ml4ms.descriptors.elements import element_table
from ml4ms.errors import ConfigError, DataError
from ml4ms.properties.files import load_property_model, save_property_model
from ml4ms.properties.tabular import TabularRegressor

ELEMENTS = [3, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 20, 22, 26, 29, 30, 31, 33, 34, 35, 47, 50, 52, 53]


def _binaries(n, seed):
    """Random binary compounds A_x B_(1-x) with a target that is a known function of them."""
    rng = np.random.default_rng(seed)
    chi = np.asarray(element_table(["Electronegativity"]))[:, 0]
    formulas, y = [], []
    for _ in range(n):
        a, b = rng.choice(ELEMENTS, 2, replace=False)
        na, nb = rng.integers(1, 4, size=2)
        x = na / (na + nb)
        formulas.append(f"{chemical_symbols[a]}{na}{chemical_symbols[b]}{nb}")
        diff = abs(chi[a] - chi[b])
        # "gap": zero below an electronegativity difference of 1, rising above it
        y.append(0.0 if diff < 1.0 else 2.0 * (diff - 1.0) + 0.5 * x)
    return formulas, np.array(y)


@pytest.fixture(scope="module")
def fitted():
    X, y = _binaries(500, 0)
    model = TabularRegressor(max_iter=150, learning_rate=0.1, min_samples_leaf=5).fit(X, y)
    return model, X, y


def test_hurdle_model_learns_a_zero_inflated_target(fitted):
    model, _, y_train = fitted
    assert model.zero_inflated_  # about half the targets are exactly zero
    X, y = _binaries(200, 1)
    mean, sigma = model.predict(X, return_std=True)
    assert np.mean(np.abs(mean - y)) < 0.15 * np.mean(np.abs(y - y_train.mean()))
    p_zero = model.zero_probability(X)
    assert np.mean((p_zero > 0.5) == (y == 0)) > 0.9
    assert (sigma > 0).all() and np.isfinite(sigma).all()


def test_the_hurdle_prediction_is_the_median_of_the_mixture(fitted):
    from scipy.optimize import brentq
    from scipy.stats import norm

    model = copy.copy(fitted[0])
    X, _ = _binaries(60, 3)
    F = model.features_of(X)
    # the classifier of this easy data is sure of itself: sweep the zero probability instead
    p = np.linspace(0.0, 0.6, len(X))
    model.zero_probability_features = lambda features: p
    mean = model.trees_["mean"].raw_predict(F)
    sigma = np.maximum(np.abs(model.trees_["high"].raw_predict(F) - model.trees_["low"].raw_predict(F)) / 2, 1e-9)
    predicted = model.predict(X)
    assert 0 < (predicted == 0).sum() < len(X)
    for k in range(len(X)):
        # the cumulative distribution of p δ(0) + (1 - p) N(mean, sigma), minus 1/2
        excess = lambda m, k=k: p[k] * (m >= 0) + (1 - p[k]) * norm.cdf((m - mean[k]) / sigma[k]) - 0.5  # noqa: E731
        expected = 0.0 if excess(0.0) >= 0 else brentq(excess, 0.0, abs(mean[k]) + 40 * sigma[k], xtol=1e-13)
        assert predicted[k] == pytest.approx(expected, abs=1e-9)


def test_calibrate_scales_sigma_to_unit_variance(fitted):
    model = clone(fitted[0]).fit(fitted[1], fitted[2])
    X, y = _binaries(300, 2)
    scale = model.calibrate(X, y)
    mean, sigma = model.predict(X, return_std=True)
    assert np.mean(((mean - y) / sigma) ** 2) == pytest.approx(1.0)
    assert scale > 0


def test_save_load_gives_identical_predictions(fitted, tmp_path):
    model, X, y = fitted
    model.uncertainty_scale_ = 1.7
    path = save_property_model(model, tmp_path / "gap.ml4ms", target="gap", unit="eV", metrics={"mae": 0.1})
    again = load_property_model(path)
    for a, b in zip(model.predict(X[:50], return_std=True), again.predict(X[:50], return_std=True)):
        np.testing.assert_array_equal(a, b)
    assert again.file_header_["target"] == "gap" and again.file_header_["input_kind"] == "composition"
    assert again.get_params() == model.get_params()


@pytest.mark.parametrize("estimator", ["gp", "krr"])
def test_kernel_estimators_learn_a_smooth_target(estimator):
    X, _ = _binaries(250, 3)
    chi = np.asarray(element_table(["Electronegativity"]))[:, 0]
    from ml4ms.descriptors.composition import composition_of

    def target(formulas):
        out = []
        for f in formulas:
            c = composition_of(f)
            total = sum(c.values())
            out.append(sum(chi[z] * a / total for z, a in c.items()))
        return np.array(out)

    model = TabularRegressor(estimator=estimator, zero_inflated=False, length_scale=8.0, alpha=1e-3,
                             features={"blocks": ["magpie"], "properties": ["Electronegativity", "Number"]})
    model.fit(X, target(X))
    X_new, _ = _binaries(60, 4)
    mean, sigma = model.predict(X_new, return_std=True)
    assert np.mean(np.abs(mean - target(X_new))) < 0.05
    assert (sigma > 0).all()


def test_absolute_error_loss_is_not_pulled_by_outliers():
    X, y = _binaries(3000, 3)
    keep = y > 0  # no zeros: the plain regressor, not the hurdle model
    X, y = [x for x, k in zip(X, keep) if k], y[keep]
    corrupted = y.copy()
    corrupted[np.random.default_rng(0).random(len(y)) < 0.1] += 20.0  # 10 % gross label errors
    # leaves of >= 20 rows: a median leaf value cannot be set by the one or two bad labels it holds
    settings = dict(max_iter=150, learning_rate=0.1, min_samples_leaf=20, zero_inflated=False)
    X_new, y_new = _binaries(400, 4)
    X_new, y_new = [x for x, k in zip(X_new, y_new > 0) if k], y_new[y_new > 0]
    errors = {}
    for loss in ("squared_error", "absolute_error"):
        model = TabularRegressor(loss=loss, **settings).fit(X, corrupted)
        errors[loss] = np.mean(np.abs(model.predict(X_new) - y_new))
    assert errors["absolute_error"] < 0.2 * errors["squared_error"]
    assert errors["absolute_error"] < 0.15  # the clean labels' spread about their median: 0.84


def test_bad_targets_and_settings():
    with pytest.raises(DataError, match="target"):
        TabularRegressor(max_iter=5).fit(["NaCl", "KBr"], [1.0, np.nan])
    with pytest.raises(DataError, match="not numbers"):
        TabularRegressor(max_iter=5).fit(["NaCl", "KBr"], ["a", "b"])
    with pytest.raises(ConfigError, match="estimator"):
        TabularRegressor(estimator="forest").fit(["NaCl"], [1.0])
    with pytest.raises(ConfigError, match="loss"):
        TabularRegressor(loss="huber").fit(["NaCl"], [1.0])
    with pytest.raises(DataError, match="Xx"):
        TabularRegressor(max_iter=5).fit(["NaCl", "Xx2O"], [1.0, 2.0])
