"""The contract every property model follows, and the registry that model files use.

A property model maps a composition (a formula string, a ``{element: amount}`` mapping
or an ``ase.Atoms``) or a structure (an ``ase.Atoms``) to one number per input, and says
how sure it is. It is a scikit-learn regressor — hyper-parameters in ``__init__``,
fitted state in attributes with a trailing underscore, ``clone``, ``Pipeline`` and
``GridSearchCV`` work — with two additions:

- ``predict(X, return_std=True)`` returns ``(mean, sigma)``, as scikit-learn's Gaussian
  process does; ``sigma`` is calibrated (see :meth:`PropertyModel.calibrate`).
- ``get_state()`` / ``from_state()`` turn the fitted model into arrays plus JSON, so it
  can be written as a safetensors file (:mod:`ml4ms.properties.files`), never pickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ..errors import ConfigError

_REGISTRY: dict[str, type[PropertyModel]] = {}


def register_property_model(cls: type[PropertyModel]) -> type[PropertyModel]:
    """Class decorator: make ``cls`` loadable from model files by its ``registry_name``."""
    name = cls.registry_name
    if not name:
        raise TypeError(f"{cls.__name__} has no registry_name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"property model name {name!r} is already taken by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def property_model_class(name: str) -> type[PropertyModel]:
    """The registered property-model class called ``name``.

    Raises
    ------
    ConfigError
        No such model; the message lists the known ones.
    """
    from . import models  # noqa: F401  (registers the built-in models)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown property model {name!r}; known models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered_property_models() -> dict[str, type[PropertyModel]]:
    """All registered property models, by name."""
    from . import models  # noqa: F401

    return dict(_REGISTRY)


class PropertyModel(RegressorMixin, BaseEstimator):
    """Base class of property models (see the module docstring).

    Subclasses set ``registry_name`` and ``input_kind`` (``"composition"`` or
    ``"structure"``) and implement :meth:`fit`, :meth:`_predict` and the state pair.

    Attributes
    ----------
    uncertainty_scale_
        Factor applied to the raw predicted spread, fitted by :meth:`calibrate` (1.0
        until then).
    """

    registry_name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "composition"

    # -- to implement -----------------------------------------------------------------
    def fit(self, X: Sequence[Any], y: np.ndarray, **fit_params: Any) -> PropertyModel:
        """Fit to inputs ``X`` (formulas, compositions or ``ase.Atoms``) and targets ``y``
        (n,). Returns ``self``."""
        raise NotImplementedError

    def _predict(self, X: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, raw_sigma)``, each (n,), before calibration."""
        raise NotImplementedError

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted state as ``(arrays, json_state)``: named NumPy arrays and a
        JSON-serialisable dict. Together with ``get_params()`` they rebuild the model."""
        raise NotImplementedError

    def set_state(self, arrays: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (on an instance built from the params)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------
    def predict(self, X: Sequence[Any], return_std: bool = False):
        """Predicted values (n,), and with ``return_std`` their calibrated standard
        deviations (n,), in the unit of the training targets."""
        mean, sigma = self._predict(X)
        if return_std:
            return mean, sigma * getattr(self, "uncertainty_scale_", 1.0)
        return mean

    def calibrate(self, X: Sequence[Any], y: np.ndarray) -> float:
        """Fit one factor ``s`` so that ``s * sigma`` is calibrated on held-out ``(X, y)``:
        ``s`` makes the mean of ``(error / (s sigma))**2`` one. Returns ``s``."""
        mean, sigma = self._predict(X)
        self.uncertainty_scale_ = calibration_factor(np.asarray(y, float) - mean, sigma)
        return self.uncertainty_scale_

    @classmethod
    def from_state(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                   state: Mapping[str, Any]) -> PropertyModel:
        """Rebuild a fitted model from its params and :meth:`get_state`."""
        model = cls(**params)
        model.set_state(arrays, state)
        model.uncertainty_scale_ = float(state.get("uncertainty_scale", 1.0))
        return model


def calibration_factor(errors: np.ndarray, sigma: np.ndarray) -> float:
    """The factor ``s`` for which ``mean((errors / (s sigma))**2) == 1`` (1.0 when
    undefined: no finite, positive sigma)."""
    errors = np.asarray(errors, float)
    sigma = np.asarray(sigma, float)
    ok = np.isfinite(errors) & np.isfinite(sigma) & (sigma > 0)
    if not ok.any():
        return 1.0
    return float(np.sqrt(np.mean((errors[ok] / sigma[ok]) ** 2)))
