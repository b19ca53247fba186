"""Clustering: planted clusters are found, noise is marked, silhouette scores are right."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from ml4ms.analysis.clustering import cluster, select_n_clusters
from ml4ms.errors import ConfigError, DataError


def _blobs(rng, n_per=40, k=4, spread=0.3, dim=5):
    centres = rng.normal(size=(k, dim)) * 10.0
    truth = np.repeat(np.arange(k), n_per)
    return centres[truth] + rng.normal(size=(k * n_per, dim)) * spread, truth, centres


def test_kmeans_finds_planted_clusters_and_chooses_k_by_silhouette(rng):
    X, truth, _ = _blobs(rng)
    result = cluster(X, "kmeans")
    assert result.n_clusters == 4
    assert set(result.scores) == set(range(2, 11))
    assert max(result.scores, key=result.scores.get) == 4
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.noise_fraction == 0.0
    assert cluster(X, "kmeans", n_clusters=4).silhouette == pytest.approx(result.silhouette)
    best, scores = select_n_clusters(X, [2, 3, 4, 5])
    assert best == 4 and len(scores) == 4


def test_silhouette_matches_its_definition():
    # Clusters {0, 1} and {10, 11} on a line: a(i) = 1, b(i) = mean distance to the other pair.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    result = cluster(X, "kmeans", n_clusters=2)
    expected = np.mean([1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5])
    assert result.silhouette == pytest.approx(expected, rel=1e-12)


def test_dbscan_and_hdbscan_find_clusters_and_mark_noise(rng):
    X, truth, centres = _blobs(rng, n_per=50, k=3)
    # Isolated points farther from the data (and from each other) than the clusters are apart.
    directions = rng.normal(size=(8, X.shape[1]))
    outliers = centres.mean(axis=0) + 150.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    spacing = np.linalg.norm(centres[:, None] - centres[None], axis=2).max()
    assert np.min(np.linalg.norm(outliers[:, None] - X[None], axis=2)) > spacing
    data = np.concatenate([X, outliers])
    for method, options in (("dbscan", {"eps": 1.5, "min_samples": 5}), ("hdbscan", {"min_cluster_size": 10})):
        result = cluster(data, method, **options)
        assert result.n_clusters == 3, method
        assert adjusted_rand_score(truth, result.labels[: len(X)]) == 1.0
        assert (result.labels[len(X):] == -1).all(), method
        assert result.noise_fraction == pytest.approx(len(outliers) / len(data))
        assert np.isfinite(result.silhouette)


def test_bad_requests_are_config_errors(rng):
    X, _, _ = _blobs(rng, n_per=5, k=2)
    with pytest.raises(ConfigError, match="clustering method must be one of"):
        cluster(X, "spectral")
    with pytest.raises(ConfigError, match="n_clusters applies to kmeans only"):
        cluster(X, "dbscan", n_clusters=3)
    with pytest.raises(ConfigError, match="dbscan"):
        cluster(X, "dbscan", eps=-1.0)
    with pytest.raises(ConfigError, match="n_clusters=20 is more than the 10 samples"):
        cluster(X, "kmeans", n_clusters=20)
    with pytest.raises(ConfigError, match="hdbscan"):
        cluster(X, "hdbscan", radius=3)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cluster(bad, "kmeans", n_clusters=2)
