"""Distances between simulated and observed summary statistics.

A distance is a plain object called as ``distance(simulated, observed)`` with
``simulated`` of shape ``(n, k)`` and ``observed`` of shape ``(k,)``; it returns ``(n,)``.
Summary statistics usually have different units (Å, eV, GPa), so the distances can be
*calibrated* on prior-predictive simulations: :meth:`Distance.fit` receives the
statistics simulated from the prior (the first population of an ABC run) and sets the
fitted state ``scale_`` (or ``precision_``), which then stays fixed for the whole run.

- :class:`Euclidean` with ``scale=None`` (raw), a fixed scale per statistic, or
  ``"mad"`` / ``"std"``: each statistic divided by its prior-predictive median absolute
  deviation (robust, as ABCpy and abc-tools usually do) or standard deviation.
- :class:`Mahalanobis`: whitened by the inverse prior-predictive covariance (or a given one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError


class Distance:
    """Base class: calibration (optional) and a vectorised call."""

    #: Whether :meth:`fit` must see prior-predictive statistics before the first call.
    needs_fit: bool = False

    def fit(self, statistics: np.ndarray) -> Distance:
        """Calibrate on prior-predictive statistics ``(m, k)``; returns ``self``."""
        return self

    def __call__(self, simulated: np.ndarray, observed: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """Fitted state as JSON-able data (checkpoints)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> Distance:
        return self


def _scaled_difference(simulated: np.ndarray, observed: np.ndarray) -> np.ndarray:
    simulated = np.atleast_2d(np.asarray(simulated, dtype=float))
    observed = np.asarray(observed, dtype=float).ravel()
    if simulated.shape[1] != observed.size:
        raise ConfigError(f"the observed data hold {observed.size} summary statistics but the simulations "
                          f"{simulated.shape[1]}")
    return simulated - observed


class Euclidean(Distance):
    """Euclidean distance of (optionally scaled) summary statistics.

    Parameters
    ----------
    scale
        ``None``: raw statistics. A number or a ``(k,)`` array: each statistic is divided
        by it (e.g. the measurement error of each observed value). ``"mad"``: divided by
        the median absolute deviation of the prior-predictive statistics (robust to
        outlying simulations). ``"std"``: by their standard deviation.

    Attributes
    ----------
    scale_ : ndarray of shape (k,)
        The scales in use, once known (after :meth:`fit` for ``"mad"`` / ``"std"``).
    """

    def __init__(self, scale: float | np.ndarray | str | None = None) -> None:
        self.scale = scale

    @property
    def needs_fit(self) -> bool:  # type: ignore[override]
        return isinstance(self.scale, str) and not hasattr(self, "scale_")

    def fit(self, statistics: np.ndarray) -> Euclidean:
        if not isinstance(self.scale, str):
            return self
        x = np.atleast_2d(np.asarray(statistics, dtype=float))
        if self.scale == "mad":
            scale = 1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)
        elif self.scale == "std":
            scale = np.std(x, axis=0)
        else:
            raise ConfigError(f"distance.scale must be a number, a list, 'mad' or 'std'; got {self.scale!r}")
        # A statistic constant over the prior predictive carries no information: unit scale.
        fallback = np.where(np.abs(np.median(x, axis=0)) > 0, np.abs(np.median(x, axis=0)), 1.0)
        self.scale_ = np.where(scale > 0, scale, fallback)
        return self

    def _scale(self, k: int) -> np.ndarray:
        if hasattr(self, "scale_"):
            return self.scale_
        if self.scale is None:
            return np.ones(k)
        if isinstance(self.scale, str):
            raise ConfigError(f"Euclidean(scale={self.scale!r}) must be fitted on prior-predictive statistics "
                              "first (ABC runs do this with their first population)")
        scale = np.broadcast_to(np.asarray(self.scale, dtype=float), (k,))
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ConfigError(f"distance.scale must be positive and finite, got {self.scale!r}")
        return scale

    def __call__(self, simulated: np.ndarray, observed: np.ndarray) -> np.ndarray:
        diff = _scaled_difference(simulated, observed)
        return np.sqrt(np.sum((diff / self._scale(diff.shape[1])) ** 2, axis=1))

    def get_state(self) -> dict[str, Any]:
        return {"scale_": self.scale_.tolist()} if hasattr(self, "scale_") else {}

    def set_state(self, state: Mapping[str, Any]) -> Euclidean:
        if "scale_" in state:
            self.scale_ = np.asarray(state["scale_"], dtype=float)
        return self

    def __repr__(self) -> str:
        return f"Euclidean(scale={self.scale!r})"


class Mahalanobis(Distance):
    """Mahalanobis distance ``sqrt(d^T C^-1 d)`` of the summary statistics.

    Parameters
    ----------
    cov
        ``(k, k)`` covariance; ``None`` estimates it from the prior-predictive
        statistics given to :meth:`fit`.

    Attributes
    ----------
    precision_ : ndarray of shape (k, k)
        The inverse covariance in use.
    """

    def __init__(self, cov: np.ndarray | None = None) -> None:
        self.cov = cov

    @property
    def needs_fit(self) -> bool:  # type: ignore[override]
        return self.cov is None and not hasattr(self, "precision_")

    def fit(self, statistics: np.ndarray) -> Mahalanobis:
        if self.cov is not None:
            return self
        x = np.atleast_2d(np.asarray(statistics, dtype=float))
        if x.shape[0] < x.shape[1] + 1:
            raise ConfigError(f"Mahalanobis needs more prior-predictive simulations ({x.shape[0]}) than "
                              f"summary statistics ({x.shape[1]})")
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        self.precision_ = self._invert(cov)
        return self

    @staticmethod
    def _invert(cov: np.ndarray) -> np.ndarray:
        cov = np.atleast_2d(np.asarray(cov, dtype=float))
        if cov.shape[0] != cov.shape[1] or not np.isfinite(cov).all():
            raise ConfigError(f"distance.cov must be a finite square matrix, got shape {cov.shape}")
        # Constant statistics would make the covariance singular: regularise its diagonal.
        jitter = 1e-12 * max(float(np.trace(cov)) / len(cov), 1e-300)
        return np.linalg.pinv(cov + jitter * np.eye(len(cov)), hermitian=True)

    def __call__(self, simulated: np.ndarray, observed: np.ndarray) -> np.ndarray:
        diff = _scaled_difference(simulated, observed)
        if not hasattr(self, "precision_"):
            if self.cov is None:
                raise ConfigError("Mahalanobis() must be fitted on prior-predictive statistics first")
            self.precision_ = self._invert(self.cov)
        if self.precision_.shape[0] != diff.shape[1]:
            raise ConfigError(f"distance.cov is {self.precision_.shape[0]}x{self.precision_.shape[0]} but there "
                              f"are {diff.shape[1]} summary statistics")
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, self.precision_, diff), 0.0))

    def get_state(self) -> dict[str, Any]:
        return {"precision_": self.precision_.tolist()} if hasattr(self, "precision_") else {}

    def set_state(self, state: Mapping[str, Any]) -> Mahalanobis:
        if "precision_" in state:
            self.precision_ = np.asarray(state["precision_"], dtype=float)
        return self

    def __repr__(self) -> str:
        return "Mahalanobis()" if self.cov is None else "Mahalanobis(cov=...)"


#: Distance names accepted by :func:`distance_from_spec`.
DISTANCES = {"euclidean": Euclidean, "mahalanobis": Mahalanobis}


def distance_from_spec(spec: Distance | str | Mapping[str, Any] | None) -> Distance:
    """A distance from ``"euclidean"``, ``{"type": "euclidean", "scale": "mad"}`` or
    ``{"type": "mahalanobis"}``; ``None`` gives ``Euclidean(scale="mad")``."""
    if spec is None:
        return Euclidean(scale="mad")
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        spec = {"type": spec}
    options = dict(spec)
    kind = str(options.pop("type", "")).lower()
    if kind not in DISTANCES:
        raise ConfigError(f"distance.type must be one of {', '.join(DISTANCES)}; got {kind or 'nothing'!r}")
    try:
        return DISTANCES[kind](**options)
    except TypeError as exc:
        raise ConfigError(f"distance ({kind}): {exc}") from None
