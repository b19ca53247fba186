"""Clustering of descriptor vectors or map coordinates: k-means, DBSCAN and HDBSCAN.

:func:`cluster` runs one of scikit-learn's estimators and reports the labels with the
silhouette score; with k-means and no ``n_clusters`` it picks k by that score
(:func:`select_n_clusters`). Density-based methods mark outliers with the label -1.

>>> from ml4ms.analysis.clustering import cluster                   # doctest: +SKIP
>>> result = cluster(coordinates, "hdbscan", min_cluster_size=10)
>>> result.labels, result.n_clusters, result.silhouette, result.noise_fraction
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN, KMeans
from sklearn.metrics import silhouette_score

from ..errors import ConfigError
from .maps import check_features

__all__ = ["CLUSTER_METHODS", "ClusterResult", "cluster", "select_n_clusters"]

#: Clustering methods by name.
CLUSTER_METHODS = ("kmeans", "dbscan", "hdbscan")

#: Silhouette scores are computed on at most this many points (a seeded subsample).
SILHOUETTE_SAMPLE = 5000


@dataclass
class ClusterResult:
    """Labels of a clustering and how good it is.

    Attributes
    ----------
    labels : ndarray of int, shape (n_samples,)
        Cluster of each sample, 0 ... n_clusters-1; -1 marks noise (DBSCAN, HDBSCAN).
    n_clusters : int
        Number of clusters (noise excluded).
    silhouette : float
        Mean silhouette coefficient of the clustered (non-noise) samples, in [-1, 1];
        NaN with fewer than two clusters.
    noise_fraction : float
        Share of the samples labelled noise.
    method : str
        ``"kmeans"``, ``"dbscan"`` or ``"hdbscan"``.
    estimator : object
        The fitted scikit-learn estimator.
    scores : dict
        For k-means with k chosen automatically: silhouette score of each k tried.
    """

    labels: np.ndarray
    n_clusters: int
    silhouette: float
    noise_fraction: float
    method: str
    estimator: Any
    scores: dict[int, float] = field(default_factory=dict)


def _silhouette(X: np.ndarray, labels: np.ndarray, random_state: int | None) -> float:
    keep = labels >= 0
    if len(np.unique(labels[keep])) < 2 or len(np.unique(labels[keep])) >= keep.sum():
        return float("nan")
    sample = SILHOUETTE_SAMPLE if keep.sum() > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(X[keep], labels[keep], sample_size=sample, random_state=random_state))


def select_n_clusters(
    X, k_values: Iterable[int] = range(2, 11), *, random_state: int | None = 0, n_init: int = 10
) -> tuple[int, dict[int, float]]:
    """The number of k-means clusters with the best silhouette score.

    Parameters
    ----------
    X
        Samples, shape (n_samples, n_features).
    k_values
        Candidate numbers of clusters (each at least 2; those above n_samples - 1 are
        skipped).
    random_state, n_init
        Passed to :class:`sklearn.cluster.KMeans`.

    Returns
    -------
    best_k : int
    scores : dict
        Silhouette score of each k tried.
    """
    X = check_features(X, min_samples=3)
    ks = sorted({int(k) for k in k_values})
    if not ks or ks[0] < 2:
        raise ConfigError(f"k_values must be integers >= 2, got {ks}")
    ks = [k for k in ks if k < X.shape[0]]
    if not ks:
        raise ConfigError(f"{X.shape[0]} samples are too few for the candidate numbers of clusters")
    scores = {}
    for k in ks:
        labels = KMeans(n_clusters=k, n_init=n_init, random_state=random_state).fit_predict(X)
        scores[k] = _silhouette(X, labels, random_state)
    finite = {k: s for k, s in scores.items() if np.isfinite(s)}
    if not finite:
        raise ConfigError("no candidate number of clusters gives two distinct clusters")
    return max(finite, key=finite.get), scores


def cluster(
    X,
    method: str = "kmeans",
    *,
    n_clusters: int | None = None,
    k_values: Iterable[int] = range(2, 11),
    random_state: int | None = 0,
    **options,
) -> ClusterResult:
    """Cluster the rows of ``X`` and score the result.

    Parameters
    ----------
    X
        Samples, shape (n_samples, n_features): descriptor vectors or map coordinates.
    method
        ``"kmeans"`` (:class:`sklearn.cluster.KMeans`), ``"dbscan"``
        (:class:`sklearn.cluster.DBSCAN`; ``eps`` is in the units of ``X``) or
        ``"hdbscan"`` (:class:`sklearn.cluster.HDBSCAN`).
    n_clusters
        For k-means; None picks it from ``k_values`` by the silhouette score.
    k_values
        Candidates for the automatic choice.
    random_state
        Seed of k-means and of the silhouette subsample.
    **options
        Further arguments of the scikit-learn estimator (``eps``, ``min_samples``,
        ``min_cluster_size``, ``n_init``...).

    Returns
    -------
    ClusterResult
    """
    name = str(method).lower()
    if name not in CLUSTER_METHODS:
        raise ConfigError(f"clustering method must be one of {', '.join(CLUSTER_METHODS)}; got {method!r}")
    X = check_features(X, min_samples=2)
    scores: dict[int, float] = {}
    try:
        if name == "kmeans":
            if n_clusters is None:
                n_clusters, scores = select_n_clusters(X, k_values, random_state=random_state,
                                                       n_init=options.get("n_init", 10))
            if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
                raise ConfigError(f"n_clusters must be a positive integer, got {n_clusters!r}")
            if n_clusters > X.shape[0]:
                raise ConfigError(f"n_clusters={n_clusters} is more than the {X.shape[0]} samples")
            estimator = KMeans(n_clusters=int(n_clusters), random_state=random_state, **{"n_init": 10, **options})
        else:
            if n_clusters is not None:
                raise ConfigError(f"{name} finds the number of clusters itself; n_clusters applies to kmeans only")
            estimator = DBSCAN(**options) if name == "dbscan" else HDBSCAN(**{"copy": True, **options})
        labels = estimator.fit_predict(X)
    except TypeError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    except ValueError as exc:  # scikit-learn's parameter validation
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{name}: {exc}") from None
    labels = np.asarray(labels, dtype=int)
    return ClusterResult(
        labels=labels,
        n_clusters=int(len(np.unique(labels[labels >= 0]))),
        silhouette=_silhouette(X, labels, random_state),
        noise_fraction=float(np.mean(labels < 0)),
        method=name,
        estimator=estimator,
        scores=scores,
    )
