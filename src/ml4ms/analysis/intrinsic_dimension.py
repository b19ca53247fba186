"""Intrinsic dimension of a data set from nearest-neighbour distance ratios: TwoNN and GRIDE.

How many coordinates does it take to describe a cloud of points — the descriptors of an
MD trajectory, a feature matrix — locally? Both estimators look only at ratios of
distances to a point's nearest neighbours, which are free of the density if the density
is locally uniform.

- **TwoNN** (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 7, 12140 (2017)): the ratio
  ``mu = r2 / r1`` of the distances to the second and first neighbours follows the
  Pareto law ``f(mu) = d mu^(-d-1)`` in a d-dimensional manifold. The maximum-likelihood
  estimate is ``d = N / sum(log mu)`` with standard error ``d / sqrt(N)`` (from the
  Fisher information); the original paper's line fit of ``-log(1 - F(mu))`` against
  ``log mu``, with the largest ratios discarded, is ``estimator="fit"``.
- **GRIDE** (Denti, Doimo, Laio & Mira, Sci. Rep. 12, 20005 (2022)): the generalised
  ratio ``mu = r_{2k} / r_k`` of the distances to neighbours of orders ``n2 = 2 n1``
  follows a law in d with which the maximum-likelihood estimate is computed for
  ``n1 = 1, 2, 4, 8, ...``. Larger orders probe larger scales, so the estimate against
  the mean neighbour distance shows at which scale noise stops and the manifold starts.
  The standard error comes from the observed Fisher information.

Distances are Euclidean (or any scikit-learn metric) between rows of a feature matrix.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln

from ..errors import ConfigError, DataError

METHODS = ("twonn", "gride")
ESTIMATORS = ("mle", "fit")


@dataclass
class IntrinsicDimension:
    """An intrinsic-dimension estimate.

    Attributes
    ----------
    method : str
        ``"twonn"`` or ``"gride"``.
    dimension, error : float
        The estimate and its standard error.
    n_points : int
        Points used (after duplicates and points with equidistant neighbours were set aside).
    n_duplicates : int
        Rows dropped as duplicates of another row (distance below ``duplicate_tol``).
    n_equidistant : int
        Points left out because the two distances of their ratio were equal (``mu = 1``).
    orders : ndarray or None
        GRIDE only: neighbour orders ``n1`` of each estimate of the scale dependence
        (``n2 = 2 n1``).
    scales : ndarray or None
        GRIDE only: the scale of each estimate, the mean over points of
        ``(r_{n1} + r_{n2}) / 2``, in the units of the features.
    dimensions, errors : ndarray or None
        GRIDE only: the estimate and standard error at each scale.
    """

    method: str
    dimension: float
    error: float
    n_points: int
    n_duplicates: int = 0
    n_equidistant: int = 0
    orders: np.ndarray | None = None
    scales: np.ndarray | None = None
    dimensions: np.ndarray | None = None
    errors: np.ndarray | None = None
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        def listed(a):
            return None if a is None else np.asarray(a).tolist()

        return {"method": self.method, "dimension": float(self.dimension), "error": float(self.error),
                "n_points": self.n_points, "n_duplicates": self.n_duplicates, "n_equidistant": self.n_equidistant,
                "orders": listed(self.orders), "scales": listed(self.scales),
                "dimensions": listed(self.dimensions), "errors": listed(self.errors), "options": self.options}


# ---------------------------------------------------------------------- estimators
def twonn_mle(log_mu: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood TwoNN estimate from ``log(r2/r1)`` (N,): ``(d, standard error)``."""
    n = len(log_mu)
    d = n / log_mu.sum()
    return float(d), float(d / math.sqrt(n))


def twonn_fit(log_mu: np.ndarray, discard_fraction: float = 0.1) -> tuple[float, float]:
    """TwoNN by Facco et al.'s line through the origin of ``-log(1 - F(mu))`` against ``log mu``.

    The largest ``discard_fraction`` of the ratios (the tail most sensitive to density
    changes) is left out of the fit. The error is the likelihood's, ``d / sqrt(n_kept)``.
    """
    n = len(log_mu)
    x = np.sort(log_mu)
    F = np.arange(1, n + 1) / n  # empirical CDF; the last point (F = 1) always goes
    keep = max(2, min(n - 1, int(np.floor(n * (1.0 - discard_fraction)))))
    x, y = x[:keep], -np.log1p(-F[:keep])
    d = float(x @ y / (x @ x))
    return d, d / math.sqrt(keep)


def _gride_dlogl(d: float, log_mu: np.ndarray, n1: int, n2: int) -> float:
    n = len(log_mu)
    # d/dd of log(mu^d - 1) is log(mu) / (1 - mu^-d)
    ratio = log_mu / -np.expm1(-d * log_mu)
    return n / d + (n2 - n1 - 1) * ratio.sum() - (n2 - 1) * log_mu.sum()


def _gride_d2logl(d: float, log_mu: np.ndarray, n1: int, n2: int) -> float:
    n = len(log_mu)
    e = np.exp(-d * log_mu)
    return -n / d**2 - (n2 - n1 - 1) * np.sum(log_mu**2 * e / (1.0 - e) ** 2)


def gride_loglik(d: float, log_mu: np.ndarray, n1: int, n2: int) -> float:
    """Log-likelihood of dimension d for ratios ``mu = r_{n2} / r_{n1}`` given as ``log mu`` (N,).

    ``f(mu) = d (mu^d - 1)^(n2-n1-1) / (mu^((n2-1) d + 1) B(n2 - n1, n1))`` for mu > 1.
    """
    n = len(log_mu)
    log_pow_m1 = d * log_mu + np.log(-np.expm1(-d * log_mu))  # log(mu^d - 1)
    return float(n * math.log(d) + (n2 - n1 - 1) * log_pow_m1.sum() - ((n2 - 1) * d + 1) * log_mu.sum()
                 - n * betaln(n2 - n1, n1))


def gride_mle(log_mu: np.ndarray, n1: int, n2: int | None = None,
              d_range: tuple[float, float] = (1e-3, 1e3)) -> tuple[float, float]:
    """GRIDE maximum-likelihood estimate and its standard error from ``log(r_{n2}/r_{n1})``.

    The log-likelihood is concave in d, so its maximum is the one root of its derivative,
    found by Brent's method in ``d_range``; the error is ``1 / sqrt(-l''(d))``.
    """
    n2 = 2 * n1 if n2 is None else n2
    lo, hi = d_range
    g_lo, g_hi = _gride_dlogl(lo, log_mu, n1, n2), _gride_dlogl(hi, log_mu, n1, n2)
    if g_lo <= 0:
        d = lo
    elif g_hi >= 0:
        d = hi
    else:
        d = brentq(_gride_dlogl, lo, hi, args=(log_mu, n1, n2), xtol=1e-10, rtol=1e-12)
    return float(d), float(1.0 / math.sqrt(-_gride_d2logl(d, log_mu, n1, n2)))


# ---------------------------------------------------------------------- data handling
def _as_matrix(X, descriptor=None, pool: str = "mean", n_jobs: int = 1) -> np.ndarray:
    from ase import Atoms

    if isinstance(X, Atoms) or (isinstance(X, Sequence) and len(X) and isinstance(X[0], Atoms)):
        if descriptor is None:
            raise ConfigError("structures need a descriptor (e.g. SOAP) to be turned into feature vectors")
        from ..descriptors.featurizer import Featurizer

        X = Featurizer(descriptor, pool=pool, n_jobs=n_jobs).fit(X).transform(X)
    if hasattr(X, "toarray"):
        X = X.toarray()
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"cannot read the data as a numeric matrix: {exc}", field="features") from None
    if X.ndim != 2:
        raise DataError(f"expected a matrix (n_points, n_features), got shape {X.shape}", field="features")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise DataError(f"{bad.sum()} rows hold NaN or infinite values (first: row {np.flatnonzero(bad)[0]})",
                        field="features")
    return X


def _deduplicate(X: np.ndarray, tol: float, metric: str) -> tuple[np.ndarray, int]:
    """Rows of X with every group of rows closer than ``tol`` (relative to the data's spread) kept once."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    X = np.unique(X, axis=0)  # exact duplicates first: cheap, and the common case
    spread = float(np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean())) if len(X) > 1 else 0.0
    if len(X) < 2 or spread == 0.0 or tol <= 0:
        return X, 0
    nn = NearestNeighbors(n_neighbors=1, metric=metric).fit(X)
    dist, _ = nn.kneighbors(n_neighbors=1)
    if dist.min() > tol * spread:
        return X, 0
    graph = nn.radius_neighbors_graph(X, radius=tol * spread, mode="connectivity")
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    return X[np.sort(first)], len(X) - len(first)


def intrinsic_dimension(
    X,
    method: str = "twonn",
    *,
    estimator: str = "mle",
    discard_fraction: float = 0.1,
    n1: int = 1,
    max_order: int = 64,
    metric: str = "euclidean",
    duplicate_tol: float = 1e-9,
    descriptor=None,
    pool: str = "mean",
    n_jobs: int = 1,
) -> IntrinsicDimension:
    """Estimate the intrinsic dimension of the rows of a feature matrix.

    Parameters
    ----------
    X
        Array-like (n_points, n_features), a scipy sparse matrix, or a list of
        :class:`ase.Atoms` with ``descriptor``.
    method
        ``"twonn"`` (default) or ``"gride"``.
    estimator
        TwoNN only: ``"mle"`` (maximum likelihood, default) or ``"fit"`` (the line fit of
        Facco et al., leaving out the largest ``discard_fraction`` of the ratios).
    discard_fraction
        TwoNN ``"fit"`` only; in [0, 1).
    n1
        GRIDE only: neighbour order of the reported ``dimension`` (``n2 = 2 n1``);
        ``n1 = 1`` is TwoNN's maximum-likelihood estimate.
    max_order
        GRIDE only: the largest neighbour order ``n2`` of the scale dependence
        (``n1 = 1, 2, 4, ...`` while ``2 n1 <= max_order``), as DADApy's ``range_max``.
    metric
        Distance between rows (any metric of :class:`sklearn.neighbors.NearestNeighbors`).
    duplicate_tol
        Rows closer than this, relative to the root-mean-square distance of the rows
        from their mean, count as duplicates and are kept once, with a warning: a zero
        distance has no ratio.
    descriptor, pool, n_jobs
        For structures: the descriptor (e.g. :class:`~ml4ms.descriptors.SOAP`), the
        pooling over atoms (``"mean"``, ``"sum"``, or ``"none"`` for one row per atom)
        and the threads of :class:`~ml4ms.descriptors.Featurizer`.

    Returns
    -------
    IntrinsicDimension
        ``dimension`` and ``error``; with GRIDE also ``orders``, ``scales``,
        ``dimensions`` and ``errors`` (the scale dependence).

    Raises
    ------
    ConfigError
        An unknown method or option, or fewer distinct points than the estimator needs
        (3 for TwoNN, ``2 n1 + 1`` for GRIDE).
    DataError
        Non-finite values, or a matrix that is not 2-D.

    Examples
    --------
    >>> import numpy as np
    >>> from ml4ms.analysis.intrinsic_dimension import intrinsic_dimension
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.random((2000, 2)) @ rng.normal(size=(2, 10))   # a 2-D plane in 10-D
    >>> round(intrinsic_dimension(plane).dimension)
    2
    """
    from sklearn.neighbors import NearestNeighbors

    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if not 0.0 <= discard_fraction < 1.0:
        raise ConfigError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    if isinstance(n1, bool) or not isinstance(n1, int | np.integer) or n1 < 1:
        raise ConfigError(f"n1 must be an integer >= 1, got {n1!r}")
    if isinstance(max_order, bool) or not isinstance(max_order, int | np.integer) or max_order < 2:
        raise ConfigError(f"max_order must be an integer >= 2, got {max_order!r}")
    X = _as_matrix(X, descriptor, pool, n_jobs)
    n_rows = len(X)
    X, n_near = _deduplicate(X, duplicate_tol, metric)
    n_dup = n_rows - len(X)
    if n_dup:
        warnings.warn(f"{n_dup} of {n_rows} rows duplicate another row (zero distance) and were left out"
                      + (f" ({n_near} of them closer than duplicate_tol={duplicate_tol})" if n_near else ""),
                      stacklevel=2)
    n = len(X)
    need = 3 if method == "twonn" else 2 * n1 + 1
    if n < need:
        extra = " (every row is the same: are all features constant?)" if n == 1 and n_rows > 1 else ""
        raise ConfigError(f"{method} with these options needs at least {need} distinct points, got {n}{extra}")

    if method == "twonn":
        k_max = 2
        orders = [1]
    else:
        top = min(max_order, n - 1)
        orders = [2**i for i in range(int(math.log2(top)))] if top >= 2 else []
        orders = [o for o in orders if 2 * o <= top]
        k_max = max(2 * n1, 2 * orders[-1] if orders else 2)
    dist, _ = NearestNeighbors(n_neighbors=k_max, metric=metric).fit(X).kneighbors(n_neighbors=k_max)
    r = np.concatenate([np.zeros((n, 1)), dist], axis=1)  # r[:, k] = distance to the k-th neighbour

    def log_ratios(a: int, b: int) -> tuple[np.ndarray, int]:
        with np.errstate(divide="ignore"):
            lm = np.log(r[:, b] / r[:, a])
        ok = lm > 1e-12
        return lm[ok], int((~ok).sum())

    def estimate(a: int) -> tuple[float, float, int]:
        lm, dropped = log_ratios(a, 2 * a)
        if len(lm) < 2:
            raise ConfigError(f"too few points with distinct neighbour distances of orders {a} and {2 * a}")
        if method == "twonn":
            d, err = twonn_mle(lm) if estimator == "mle" else twonn_fit(lm, discard_fraction)
        else:
            d, err = gride_mle(lm, a, 2 * a)
        return d, err, dropped

    options = {"metric": metric}
    if method == "twonn":
        d, err, n_eq = estimate(1)
        options.update(estimator=estimator, discard_fraction=discard_fraction if estimator == "fit" else None)
        result = IntrinsicDimension(method, d, err, n - n_eq, n_dup, n_eq, options=options)
    else:
        d, err, n_eq = estimate(n1)
        scaling = [estimate(o)[:2] for o in orders]
        scales = np.array([0.5 * (r[:, o] + r[:, 2 * o]).mean() for o in orders])
        options.update(n1=n1, max_order=max_order)
        result = IntrinsicDimension(method, d, err, n - n_eq, n_dup, n_eq, orders=np.array(orders),
                                    scales=scales, dimensions=np.array([s[0] for s in scaling]),
                                    errors=np.array([s[1] for s in scaling]), options=options)
    if n_eq:
        warnings.warn(f"{n_eq} points have equal neighbour distances (ratio 1, e.g. a perfect lattice) "
                      "and were left out of the estimate", stacklevel=2)
    return result


def scaling_plot(result: IntrinsicDimension, path, title: str | None = None):
    """The GRIDE scale dependence: dimension ±1 standard error against the scale (log axis)."""
    from ..report import _pyplot, _save_figure

    if result.scales is None:
        raise ConfigError("the result holds no scale dependence; estimate with method='gride'")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(result.scales, result.dimensions, yerr=result.errors, marker="o", capsize=3)
    for s, d, o in zip(result.scales, result.dimensions, result.orders):
        ax.annotate(f"n1={o}", (s, d), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    ax.set_xscale("log")
    ax.set_xlabel("scale: mean distance to neighbours n1, 2 n1")
    ax.set_ylabel("intrinsic dimension (GRIDE)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path
