"""Scores of property predictions: errors, calibration, classification, importance, screening."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..training.metrics import calibration_summary


def regression_metrics(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray | None = None) -> dict[str, Any]:
    """MAE, RMSE, R² and (with ``sigma``) calibration of predictions ``mean`` of ``y``.

    All (n,) arrays in the target's unit. ``calibration`` is
    :func:`ml4ms.training.metrics.calibration_summary`.
    """
    y = np.asarray(y, float)
    mean = np.asarray(mean, float)
    error = mean - y
    total = np.sum((y - y.mean()) ** 2)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(1.0 - np.sum(error**2) / total) if total > 0 else None,
    }
    if sigma is not None:
        out["calibration"] = calibration_summary(error, np.asarray(sigma, float))
    return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (the Mann–Whitney
    statistic, ties counted one half); None with only one class."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, float))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(labels: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    """ROC-AUC, accuracy at probability 1/2 and the Brier score of ``probability`` (n,)
    of the positive class for boolean ``labels`` (n,)."""
    labels = np.asarray(labels, bool)
    probability = np.asarray(probability, float)
    return {
        "n": int(len(labels)),
        "positive_fraction": float(labels.mean()) if len(labels) else None,
        "roc_auc": roc_auc(labels, probability),
        "accuracy": float(np.mean((probability > 0.5) == labels)) if len(labels) else None,
        "brier": float(np.mean((probability - labels) ** 2)) if len(labels) else None,
    }


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    F: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    n_repeats: int = 3,
    seed: int = 0,
    top: int | None = 20,
) -> list[dict[str, Any]]:
    """Increase of the MAE when one feature column is shuffled (Breiman 2001).

    Parameters
    ----------
    predict
        Maps a feature matrix (n, F) to predictions (n,).
    F, y
        Held-out features and targets.
    names
        Column labels.
    n_repeats
        Shuffles per column; the mean and standard deviation of the increase are reported.
    top
        Keep the ``top`` most important columns (None: all).

    Returns
    -------
    list of dict
        ``{"feature", "importance", "std"}`` sorted by decreasing importance (target unit).
    """
    rng = np.random.default_rng(seed)
    base = np.mean(np.abs(predict(F) - y))
    out = []
    for j, name in enumerate(names):
        if np.ptp(F[:, j]) == 0:  # a constant column cannot matter
            out.append({"feature": str(name), "importance": 0.0, "std": 0.0})
            continue
        increases = []
        for _ in range(n_repeats):
            shuffled = F.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            increases.append(np.mean(np.abs(predict(shuffled) - y)) - base)
        out.append({"feature": str(name), "importance": float(np.mean(increases)),
                    "std": float(np.std(increases))})
    out.sort(key=lambda row: -row["importance"])
    return out[:top] if top else out


def expected_improvement(mean: np.ndarray, sigma: np.ndarray, best: float, *, maximize: bool = True,
                         xi: float = 0.0) -> np.ndarray:
    """Expected improvement over ``best`` of a Gaussian prediction ``(mean, sigma)`` (n,).

    With ``maximize`` the improvement is ``value - best``, otherwise ``best - value``;
    ``xi`` is the margin an improvement must exceed.
    """
    from scipy.stats import norm

    mean = np.asarray(mean, float)
    sigma = np.maximum(np.asarray(sigma, float), 1e-12)
    gain = (mean - best - xi) if maximize else (best - mean - xi)
    z = gain / sigma
    return gain * norm.cdf(z) + sigma * norm.pdf(z)


def screening_scores(mean: np.ndarray, sigma: np.ndarray, *, acquisition: str = "ei", best: float | None = None,
                     maximize: bool = True, kappa: float = 2.0, target: float | None = None) -> np.ndarray:
    """Scores by which to rank candidates, higher is better, from predictions
    ``(mean, sigma)`` (n,).

    ``acquisition``:

    - ``"ei"``: expected improvement over ``best`` (default: the best predicted mean);
    - ``"ucb"``: the optimistic bound ``mean + kappa sigma`` (``mean - kappa sigma`` when
      minimising);
    - ``"mean"``: the prediction alone;
    - ``"target"``: the probability that the value lies within ``± kappa`` of ``target``
      (e.g. a band gap within 0.3 eV of 1.4 eV for a solar absorber).
    """
    from scipy.stats import norm

    mean = np.asarray(mean, float)
    sigma = np.maximum(np.asarray(sigma, float), 1e-12)
    if acquisition == "ei":
        if best is None:
            best = float(mean.max() if maximize else mean.min())
        return expected_improvement(mean, sigma, best, maximize=maximize)
    if acquisition == "ucb":
        return mean + kappa * sigma if maximize else -(mean - kappa * sigma)
    if acquisition == "mean":
        return mean if maximize else -mean
    if acquisition == "target":
        if target is None:
            raise ValueError("acquisition 'target' needs a target value")
        return norm.cdf((target + kappa - mean) / sigma) - norm.cdf((target - kappa - mean) / sigma)
    raise ValueError(f"unknown acquisition {acquisition!r}; choose ei, ucb, mean or target")
