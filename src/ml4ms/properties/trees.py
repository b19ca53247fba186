"""Gradient-boosted trees as plain arrays: export from scikit-learn, predict with NumPy.

scikit-learn's fitted estimators are meant to be pickled; ml4ms model files never are.
A fitted :class:`~sklearn.ensemble.HistGradientBoostingRegressor` (or ``...Classifier``
with two classes) is a baseline plus a sum of binary trees on numeric thresholds, so it
is stored exactly as flat node arrays and evaluated here, level by level, for all
samples and trees at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_FIELDS = ("feature", "threshold", "left", "right", "value", "is_leaf", "missing_left")


class TreeEnsemble:
    """A sum of binary regression trees plus a baseline, as flat arrays.

    Parameters
    ----------
    arrays
        ``feature`` (M,) int64, ``threshold`` (M,) float64, ``left``/``right`` (M,) int64
        global node indices, ``value`` (M,) float64 leaf values, ``is_leaf`` and
        ``missing_left`` (M,) bool, ``roots`` (T,) int64 the root node of each tree, and
        ``baseline`` () float64.

    Notes
    -----
    A sample goes left at a node when its feature value is ``<= threshold``; a NaN goes
    the way scikit-learn learned for missing values (``missing_left``).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.feature = np.asarray(arrays["feature"], np.int64)
        self.threshold = np.asarray(arrays["threshold"], np.float64)
        self.left = np.asarray(arrays["left"], np.int64)
        self.right = np.asarray(arrays["right"], np.int64)
        self.value = np.asarray(arrays["value"], np.float64)
        self.is_leaf = np.asarray(arrays["is_leaf"], bool)
        self.missing_left = np.asarray(arrays["missing_left"], bool)
        self.roots = np.asarray(arrays["roots"], np.int64)
        self.baseline = float(np.asarray(arrays["baseline"]).reshape(-1)[0])
        self.depth = int(np.asarray(arrays.get("depth", 64)).reshape(-1)[0])

    @classmethod
    def from_sklearn(cls, estimator) -> TreeEnsemble:
        """Export a fitted histogram gradient-boosting regressor or binary classifier."""
        predictors = getattr(estimator, "_predictors", None)
        if predictors is None:
            raise TypeError(f"{type(estimator).__name__} is not a fitted histogram gradient-boosting model")
        if any(len(p) != 1 for p in predictors):
            raise ValueError("only regressors and binary classifiers (one tree per iteration) are supported")
        parts = {k: [] for k in _FIELDS}
        roots, offset, depth = [], 0, 0
        for (tree,) in predictors:
            nodes = tree.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            parts["feature"].append(nodes["feature_idx"].astype(np.int64))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(nodes["left"].astype(np.int64) + offset)
            parts["right"].append(nodes["right"].astype(np.int64) + offset)
            parts["value"].append(nodes["value"].astype(np.float64))
            parts["is_leaf"].append(nodes["is_leaf"].astype(bool))
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["roots"] = np.asarray(roots, np.int64)
        arrays["baseline"] = np.asarray(np.ravel(estimator._baseline_prediction)[0], np.float64)
        arrays["depth"] = np.asarray(depth, np.int64)
        return cls(arrays)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The arrays that rebuild this ensemble, their names prefixed."""
        out = {f: getattr(self, f) for f in _FIELDS}
        out.update(roots=self.roots, baseline=np.asarray(self.baseline), depth=np.asarray(self.depth))
        return {prefix + k: np.asarray(v) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "") -> TreeEnsemble:
        return cls({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def raw_predict(self, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Baseline plus the sum of the trees' leaf values, (n,) for X (n, F)."""
        X = np.asarray(X, np.float64)
        out = np.empty(len(X))
        for start in range(0, len(X), chunk):
            block = X[start:start + chunk]
            node = np.broadcast_to(self.roots, (len(block), self.n_trees)).copy()
            rows = np.arange(len(block))[:, None]
            for _ in range(self.depth):
                leaf = self.is_leaf[node]
                if leaf.all():
                    break
                x = block[rows, self.feature[node]]
                go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
                node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
            out[start:start + chunk] = self.value[node].sum(axis=1)
        return out + self.baseline
