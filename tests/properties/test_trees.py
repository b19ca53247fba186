"""Exported boosted trees predict exactly what scikit-learn predicts."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from ml4ms.properties.trees import TreeEnsemble


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the learned branch
    y = np.nan_to_num(X[:, 0]) ** 2 + np.sin(np.nan_to_num(X[:, 1])) + 0.1 * rng.normal(size=400)
    return X, y


@pytest.mark.parametrize("loss", ["squared_error", "quantile", "absolute_error"])
def test_regressor_matches_sklearn(data, loss):
    X, y = data
    kwargs = {"quantile": 0.8} if loss == "quantile" else {}
    model = HistGradientBoostingRegressor(loss=loss, max_iter=60, random_state=0, **kwargs).fit(X, y)
    trees = TreeEnsemble.from_sklearn(model)
    X_new = np.random.default_rng(1).normal(size=(300, 6))
    X_new[::7, 2] = np.nan
    np.testing.assert_allclose(trees.raw_predict(X_new), model.predict(X_new), rtol=0, atol=1e-12)


def test_binary_classifier_logit_matches_sklearn(data):
    X, y = data
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y > 1.0)
    trees = TreeEnsemble.from_sklearn(model)
    p = 1.0 / (1.0 + np.exp(-trees.raw_predict(X)))
    np.testing.assert_allclose(p, model.predict_proba(X)[:, 1], atol=1e-12)


def test_round_trip_through_arrays(data):
    X, y = data
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y)
    trees = TreeEnsemble.from_sklearn(model)
    again = TreeEnsemble.from_arrays(trees.arrays("t."), "t.")
    np.testing.assert_array_equal(again.raw_predict(X), trees.raw_predict(X))


def test_multiclass_is_refused(data):
    X, y = data
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, np.digitize(y, [0.5, 1.5]))
    with pytest.raises(ValueError, match="binary"):
        TreeEnsemble.from_sklearn(model)
