"""Gaussian-process regression on feature vectors, stored as arrays.

:class:`GaussianProcess` holds what prediction needs — standardised training inputs,
``alpha = (K + noise I)^{-1} y``, the Cholesky factor of ``K + noise I`` and the
hyper-parameters — so a fitted model is written as arrays, never pickled. The kernel is
``amplitude * exp(-|x - x'|^2 / (2 length_scale^2))`` on standardised features. Kernel
ridge regression is the same posterior mean with fixed hyper-parameters, so
:func:`fit_gp` serves both: with ``optimize=True`` the hyper-parameters maximise the
marginal likelihood (scikit-learn's optimiser); otherwise they are used as given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular

_NAMES = ("x_train", "alpha", "cholesky", "x_mean", "x_scale", "hyper")


class GaussianProcess:
    """A fitted GP (see the module docstring); ``predict`` gives the mean and the
    predictive standard deviation of a new observation (noise included)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        for name in _NAMES:
            setattr(self, name, np.asarray(arrays[name], np.float64))
        amplitude, length_scale, noise, y_mean, y_scale = self.hyper
        self.amplitude, self.length_scale, self.noise = float(amplitude), float(length_scale), float(noise)
        self.y_mean, self.y_scale = float(y_mean), float(y_scale)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + n: getattr(self, n) for n in _NAMES}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "") -> GaussianProcess:
        return cls({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
        return self.amplitude * np.exp(-np.maximum(sq, 0.0) / (2.0 * self.length_scale**2))

    def standardize(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float64) - self.x_mean) / self.x_scale

    def predict(self, X: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n,) and standard deviation (n,) in the unit of the targets."""
        Z = self.standardize(X)
        mean = np.empty(len(Z))
        std = np.empty(len(Z))
        for start in range(0, len(Z), chunk):
            K = self._kernel(Z[start:start + chunk], self.x_train)
            mean[start:start + chunk] = K @ self.alpha
            v = solve_triangular(self.cholesky, K.T, lower=True, check_finite=False)
            var = self.amplitude + self.noise - (v**2).sum(0)
            std[start:start + chunk] = np.sqrt(np.maximum(var, 1e-12 * self.amplitude))
        return mean * self.y_scale + self.y_mean, std * self.y_scale


def fit_gp(X: np.ndarray, y: np.ndarray, *, amplitude: float = 1.0, length_scale: float | None = None,
           noise: float = 0.1, optimize: bool = True, seed: int = 0) -> GaussianProcess:
    """Fit a GP (or, with ``optimize=False``, kernel ridge regression with its posterior).

    Parameters
    ----------
    X, y
        Features (n, F) and targets (n,).
    amplitude, length_scale, noise
        Kernel variance and length scale (in standardised feature units; default
        ``sqrt(F)``) and noise variance, relative to the standardised targets. Starting
        values when ``optimize``.
    optimize
        Maximise the log marginal likelihood over the three hyper-parameters.
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    x_mean = X.mean(0)
    x_scale = X.std(0)
    x_scale = np.where(x_scale > 1e-12, x_scale, 1.0)
    Z = (X - x_mean) / x_scale
    y_mean, y_scale = float(y.mean()), float(y.std()) or 1.0
    t = (y - y_mean) / y_scale
    length_scale = float(np.sqrt(X.shape[1])) if length_scale is None else float(length_scale)
    if optimize:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = (ConstantKernel(amplitude, (1e-3, 1e3)) * RBF(length_scale, (1e-2, 1e4))
                  + WhiteKernel(noise, (1e-6, 1e1)))
        gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=seed).fit(Z, t)
        params = gp.kernel_.get_params()
        amplitude = float(params["k1__k1__constant_value"])
        length_scale = float(params["k1__k2__length_scale"])
        noise = float(params["k2__noise_level"])
    model = GaussianProcess({
        "x_train": Z, "alpha": np.zeros(len(Z)), "cholesky": np.eye(1), "x_mean": x_mean,
        "x_scale": x_scale, "hyper": np.array([amplitude, length_scale, noise, y_mean, y_scale]),
    })
    K = model._kernel(Z, Z)
    K[np.diag_indices_from(K)] += noise
    L = cholesky(K, lower=True, check_finite=False)
    model.cholesky = L
    model.alpha = cho_solve((L, True), t, check_finite=False)
    return model
