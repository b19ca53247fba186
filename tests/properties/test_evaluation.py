"""Scores of property predictions, checked against scikit-learn and closed forms."""

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from ml4ms.properties.evaluation import (
    classification_metrics,
    expected_improvement,
    permutation_importance,
    regression_metrics,
    roc_auc,
    screening_scores,
)


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    p = y + 0.3 * rng.normal(size=200)
    m = regression_metrics(y, p, np.full(200, 0.3))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    # Gaussian errors with the right sigma: about 68 % and 95 % inside
    assert m["calibration"]["within_1sigma"] == pytest.approx(0.68, abs=0.08)
    assert m["calibration"]["within_2sigma"] == pytest.approx(0.95, abs=0.04)


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.random(300) < 0.4
    scores = np.round(labels + rng.normal(size=300), 1)  # many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc(np.ones(5, bool), np.arange(5)) is None
    assert classification_metrics(labels, np.clip(scores, 0, 1))["accuracy"] <= 1.0


def test_expected_improvement_matches_monte_carlo():
    rng = np.random.default_rng(2)
    mean, sigma, best = np.array([0.2, 1.0, -0.5]), np.array([0.5, 0.1, 2.0]), 0.8
    samples = mean + sigma * rng.normal(size=(400_000, 3))
    mc = np.maximum(samples - best, 0).mean(0)
    np.testing.assert_allclose(expected_improvement(mean, sigma, best), mc, rtol=0.02, atol=1e-3)
    mc_min = np.maximum(best - samples, 0).mean(0)
    np.testing.assert_allclose(expected_improvement(mean, sigma, best, maximize=False), mc_min, rtol=0.02)


def test_screening_scores_rank_as_intended():
    mean = np.array([1.0, 2.0, 2.0])
    sigma = np.array([0.1, 0.1, 1.0])
    assert np.argmax(screening_scores(mean, sigma, acquisition="ucb")) == 2
    assert np.argmax(screening_scores(mean, sigma, acquisition="mean", maximize=False)) == 0
    near = screening_scores(np.array([1.4, 3.0]), np.array([0.2, 0.2]), acquisition="target", target=1.4, kappa=0.3)
    assert near[0] > 0.8 and near[1] < 1e-6
    with pytest.raises(ValueError, match="target"):
        screening_scores(mean, sigma, acquisition="target")


def test_permutation_importance_finds_the_used_feature():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(300, 4))
    F[:, 3] = 1.0
    y = 3 * F[:, 1]
    rows = permutation_importance(lambda G: 3 * G[:, 1], F, y, ["a", "b", "c", "const"], top=None)
    assert rows[0]["feature"] == "b" and rows[0]["importance"] > 1.0
    assert {r["feature"]: r["importance"] for r in rows}["const"] == 0.0
