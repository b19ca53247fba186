"""A small Gaussian-process regressor for Bayesian optimisation, with periodic dimensions.

The surrogate of :func:`ml4ms.bayes.bo.minimize`. Inputs are scaled to the unit box
given by ``bounds``; targets are standardised (zero mean, unit variance) before the fit
and restored on prediction. The kernel is a stationary one (Matérn 5/2, Matérn 3/2 or
squared exponential) of the distance

.. math::

    r^2 = \\sum_{i \\in \\text{box}} \\frac{(u_i - u'_i)^2}{\\ell_i^2}
        + \\sum_{j \\in \\text{periodic}} \\frac{4 \\sin^2(\\pi (u_j - u'_j) / p_j)}{\\ell_j^2},

where ``u`` are scaled coordinates and ``p_j`` the scaled period. The periodic term is the
chord length of the angle embedded on a circle, so the kernel is positive definite for
every choice and equals the exp-sine-squared kernel of MacKay for the squared
exponential. Hyper-parameters (one length scale per dimension, the signal variance and
the noise variance) maximise the log marginal likelihood, with analytic gradients and
random restarts; every solve goes through a Cholesky factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize as _scipy_minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError

KERNELS = ("matern52", "matern32", "rbf")
_SQRT3, _SQRT5 = np.sqrt(3.0), np.sqrt(5.0)
#: Bounds of the log hyper-parameters (scaled inputs, standardised targets).
_LOG_LENGTH = (np.log(1e-2), np.log(20.0))
_LOG_SIGNAL = (np.log(1e-2), np.log(1e2))


def periods_from(periodic, bounds: np.ndarray) -> np.ndarray:
    """Periods (input units) per dimension, NaN for non-periodic dimensions.

    ``periodic`` is None, a mapping ``{dimension: period}``, or a sequence with one entry
    per dimension: False/None (not periodic), True (period = the width of the bounds) or
    a positive number (the period).
    """
    d = len(bounds)
    periods = np.full(d, np.nan)
    if periodic is None:
        return periods
    if isinstance(periodic, Mapping):
        items = list(periodic.items())
    else:
        if isinstance(periodic, (str, bytes)) or not isinstance(periodic, Sequence | np.ndarray):
            raise ConfigError(f"periodic must be a sequence of {d} entries or a mapping {{dimension: period}}, "
                              f"got {periodic!r}")
        if len(periodic) != d:
            raise ConfigError(f"periodic has {len(periodic)} entries for {d} dimensions")
        items = list(enumerate(periodic))
    for dim, period in items:
        if not isinstance(dim, int | np.integer) or not 0 <= dim < d:
            raise ConfigError(f"periodic: dimension {dim!r} is not one of 0..{d - 1}")
        if period is None or period is False:
            continue
        if period is True:
            period = bounds[dim, 1] - bounds[dim, 0]
        try:
            period = float(period)
        except (TypeError, ValueError):
            raise ConfigError(f"periodic: the period of dimension {dim} must be a number, got {period!r}") from None
        if not np.isfinite(period) or period <= 0:
            raise ConfigError(f"periodic: the period of dimension {dim} must be positive and finite, got {period}")
        periods[dim] = period
    return periods


def _profile(kind: str, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance kernel k(r²) and its derivative dk/d(r²)."""
    if kind == "rbf":
        k = np.exp(-0.5 * r2)
        return k, -0.5 * k
    r = np.sqrt(np.maximum(r2, 0.0))
    if kind == "matern52":
        e = np.exp(-_SQRT5 * r)
        return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * (1.0 + _SQRT5 * r) * e
    e = np.exp(-_SQRT3 * r)  # matern32
    return (1.0 + _SQRT3 * r) * e, -1.5 * e


class GaussianProcess(RegressorMixin, BaseEstimator):
    """Gaussian-process regression with box and periodic dimensions.

    Parameters
    ----------
    bounds
        Array-like (d, 2) of lower and upper bounds used to scale the inputs to the unit
        box; None scales by the range of the training inputs.
    periodic
        Which dimensions are periodic, and their periods in input units (see
        :func:`periods_from`); None for none.
    kernel
        ``"matern52"`` (default), ``"matern32"`` or ``"rbf"`` (squared exponential).
    noise
        Noise variance in units of the target variance (targets are standardised); None
        (default) fits it in ``[noise_floor, 1]``.
    noise_floor
        Smallest noise variance (standardised units); keeps the Cholesky factor well
        conditioned for noise-free objectives.
    length_scale_prior
        ``(median, log_sd)`` of a log-normal prior on each length scale (scaled units:
        fractions of the box; for periodic dimensions the chord ``2 sin(pi du / p)``
        runs from 0 to 2): the hyper-parameters are then the maximum a posteriori,
        which keeps them sane when there are few points. None for plain maximum
        likelihood.
    n_restarts
        Random restarts of the marginal-likelihood optimisation, beyond the first start
        (the previous fit's hyper-parameters when refitting, or a default).
    random_state
        Seed or :class:`numpy.random.Generator` of the restarts.

    Attributes
    ----------
    length_scales_ : ndarray (d,)
        Fitted length scales, in units of the scaled inputs (fractions of the box).
    signal_variance_, noise_variance_ : float
        Fitted variances, in units of the target variance.
    log_marginal_likelihood_ : float
        At the fitted hyper-parameters (standardised targets), plus the log prior of
        the length scales when there is one.
    """

    def __init__(self, bounds=None, periodic=None, kernel: str = "matern52", noise: float | None = None,
                 noise_floor: float = 1e-6, length_scale_prior: tuple[float, float] | None = (0.5, 1.0),
                 n_restarts: int = 3, random_state=None) -> None:
        self.bounds = bounds
        self.periodic = periodic
        self.kernel = kernel
        self.noise = noise
        self.noise_floor = noise_floor
        self.length_scale_prior = length_scale_prior
        self.n_restarts = n_restarts
        self.random_state = random_state

    # ------------------------------------------------------------------ scaling
    def _setup(self, X: np.ndarray) -> None:
        if self.kernel not in KERNELS:
            raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.bounds is None:
            low, high = X.min(axis=0), X.max(axis=0)
            high = np.where(high > low, high, low + 1.0)
            bounds = np.stack([low, high], axis=1)
        else:
            bounds = np.asarray(self.bounds, dtype=float).reshape(-1, 2)
        if bounds.shape[0] != X.shape[1]:
            raise ConfigError(f"bounds has {bounds.shape[0]} dimensions, the inputs {X.shape[1]}")
        self.bounds_ = bounds
        self.width_ = bounds[:, 1] - bounds[:, 0]
        periods = periods_from(self.periodic, bounds)
        self.periodic_mask_ = np.isfinite(periods)
        self.scaled_periods_ = np.where(self.periodic_mask_, periods / self.width_, 1.0)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=float) - self.bounds_[:, 0]) / self.width_

    # ------------------------------------------------------------------ kernel
    def _components(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Per-dimension squared distances q (na, nb, d): Δ² or 4 sin²(πΔ/p)."""
        diff = A[:, None, :] - B[None, :, :]
        q = diff**2
        if self.periodic_mask_.any():
            s = np.sin(np.pi * diff[..., self.periodic_mask_] / self.scaled_periods_[self.periodic_mask_])
            q[..., self.periodic_mask_] = 4.0 * s**2
        return q

    def _dq_du(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """dq/dA (na, nb, d)."""
        diff = A[:, None, :] - B[None, :, :]
        dq = 2.0 * diff
        if self.periodic_mask_.any():
            p = self.scaled_periods_[self.periodic_mask_]
            dq[..., self.periodic_mask_] = (4.0 * np.pi / p) * np.sin(2.0 * np.pi * diff[..., self.periodic_mask_] / p)
        return dq

    @staticmethod
    def _unpack(theta: np.ndarray, d: int) -> tuple[np.ndarray, float, float]:
        return np.exp(theta[:d]), float(np.exp(theta[d])), float(np.exp(theta[d + 1]))

    def _nll(self, theta: np.ndarray, q: np.ndarray, y: np.ndarray, fit_noise: bool) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood and its gradient in the log hyper-parameters."""
        d = q.shape[-1]
        if not fit_noise:
            theta = np.append(theta, np.log(self.noise))
        ell, s2, noise = self._unpack(theta, d)
        r2 = q @ (1.0 / ell**2)
        k, dk = _profile(self.kernel, r2)
        n = len(y)
        K = s2 * k + (noise + 1e-10) * np.eye(n)
        try:
            L = cholesky(K, lower=True)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros(len(theta) - (0 if fit_noise else 1))
        alpha = cho_solve((L, True), y)
        nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * np.log(2 * np.pi)
        # d nll / d theta = -0.5 tr((alpha alpha^T - K^-1) dK/dtheta)
        W = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n))
        grad = np.empty(d + 2)
        # dK/dlog(ell_i) = s2 dk/dr2 * dr2/dlog(ell_i) = s2 dk * (-2 q_i / ell_i^2)
        grad[:d] = 0.5 * np.einsum("ab,abi->i", W * (s2 * dk), 2.0 * q / ell**2)
        grad[d] = -0.5 * np.sum(W * (s2 * k))
        grad[d + 1] = -0.5 * noise * np.trace(W)
        if self.length_scale_prior is not None:  # - log of a log-normal prior on each length scale
            median, sd = self.length_scale_prior
            u = (theta[:d] - np.log(median)) / sd
            nll += 0.5 * float(u @ u)
            grad[:d] += u / sd
        return float(nll), (grad if fit_noise else grad[:-1])

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y) -> GaussianProcess:
        """Fit to inputs X (n, d) and targets y (n,), choosing hyper-parameters by maximum likelihood."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        if X.ndim != 2 or len(X) != len(y) or len(y) < 1:
            raise ConfigError(f"expected X of shape (n, d) and y of shape (n,), got {X.shape} and {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ConfigError("the training inputs and targets must be finite")
        self._setup(X)
        rng = np.random.default_rng(self.random_state)
        d = X.shape[1]
        U = self._scale(X)
        self.y_mean_ = float(y.mean())
        self.y_std_ = float(y.std()) if len(y) > 1 and y.std() > 0 else 1.0
        z = (y - self.y_mean_) / self.y_std_
        q = self._components(U, U)
        fit_noise = self.noise is None
        if self.length_scale_prior is not None and not (
                len(self.length_scale_prior) == 2 and min(self.length_scale_prior) > 0):
            raise ConfigError(f"length_scale_prior must be (median > 0, log_sd > 0), got {self.length_scale_prior!r}")
        if not fit_noise and not (np.isfinite(self.noise) and self.noise > 0):
            raise ConfigError(f"noise must be a positive variance or None, got {self.noise!r}")
        box = [_LOG_LENGTH] * d + [_LOG_SIGNAL]
        if fit_noise:
            box.append((np.log(self.noise_floor), 0.0))
        box_arr = np.array(box)
        starts = []
        previous = getattr(self, "theta_", None)
        if previous is not None and len(previous) == len(box):
            starts.append(previous)
        default = [np.log(0.3)] * d + [0.0] + ([np.log(max(1e-4, self.noise_floor))] if fit_noise else [])
        starts.append(np.array(default))
        for _ in range(self.n_restarts):
            starts.append(rng.uniform(box_arr[:, 0], box_arr[:, 1]))
        best = None
        for start in starts:
            res = _scipy_minimize(self._nll, np.clip(start, box_arr[:, 0], box_arr[:, 1]), args=(q, z, fit_noise),
                                  jac=True, method="L-BFGS-B", bounds=box)
            if best is None or res.fun < best.fun:
                best = res
        theta = best.x
        self.theta_ = theta
        full = theta if fit_noise else np.append(theta, np.log(self.noise))
        self.length_scales_, self.signal_variance_, self.noise_variance_ = self._unpack(full, d)
        self.log_marginal_likelihood_ = -float(best.fun)
        self._condition(U, z)
        return self

    def _condition(self, U: np.ndarray, z: np.ndarray) -> None:
        """Factorise the kernel matrix of scaled inputs U and standardised targets z."""
        n = len(z)
        K = self._k(U, U)[0] + self.noise_variance_ * np.eye(n)
        jitter = 1e-10
        while True:
            try:
                self.L_ = cholesky(K + jitter * np.eye(n), lower=True)
                break
            except np.linalg.LinAlgError:
                jitter *= 10.0
                if jitter > 1e-2:
                    raise
        self.U_, self.z_ = U, z
        self.alpha_ = cho_solve((self.L_, True), z)

    def condition_on(self, X, y) -> GaussianProcess:
        """Condition on new data with the current hyper-parameters (no refit): a copy.

        Used for kriging-believer batches, where the believed values are the model's
        own predictions.
        """
        check_is_fitted(self, "alpha_")
        import copy

        new = copy.copy(self)
        U = np.vstack([self.U_, self._scale(np.atleast_2d(X))])
        z = np.concatenate([self.z_, (np.ravel(y) - self.y_mean_) / self.y_std_])
        new._condition(U, z)
        return new

    def _k(self, A: np.ndarray, B: np.ndarray, grad: bool = False):
        q = self._components(A, B)
        r2 = q @ (1.0 / self.length_scales_**2)
        k, dk = _profile(self.kernel, r2)
        K = self.signal_variance_ * k
        if not grad:
            return K, None
        # dK/dA_i = s2 dk/dr2 * dq_i/dA_i / ell_i^2, shape (na, nb, d)
        dK = self.signal_variance_ * dk[..., None] * self._dq_du(A, B) / self.length_scales_**2
        return K, dK

    def _predict_scaled(self, U: np.ndarray, grad: bool = False):
        """Standardised mean and std at scaled inputs, with gradients in U if asked."""
        Ks, dKs = self._k(U, self.U_, grad=grad)
        mean = Ks @ self.alpha_
        v = solve_triangular(self.L_, Ks.T, lower=True)
        var = np.maximum(self.signal_variance_ - np.sum(v * v, axis=0), 1e-12)
        std = np.sqrt(var)
        if not grad:
            return mean, std, None, None
        dmean = np.einsum("abi,b->ai", dKs, self.alpha_)
        # d var / dU = -2 v^T L^-1 dk
        w = cho_solve((self.L_, True), Ks.T)  # (n, m) = K^-1 k*
        dvar = -2.0 * np.einsum("abi,ba->ai", dKs, w)
        dstd = dvar / (2.0 * std[:, None])
        return mean, std, dmean, dstd

    def predict(self, X, return_std: bool = False):
        """Posterior mean (and standard deviation) of the latent function at X (m, d).

        The standard deviation excludes the fitted noise: it is the uncertainty of the
        function value, in the units of the targets.
        """
        check_is_fitted(self, "alpha_")
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != len(self.bounds_):
            raise ConfigError(f"expected inputs with {len(self.bounds_)} columns, got {X.shape[1]}")
        mean, std, _, _ = self._predict_scaled(self._scale(X))
        mean = mean * self.y_std_ + self.y_mean_
        return (mean, std * self.y_std_) if return_std else mean
