"""Prior distributions of ABC parameters: plain objects with ``sample`` and ``logpdf``.

Each one-dimensional prior (:class:`Uniform`, :class:`Normal`, :class:`LogUniform`,
:class:`LogNormal`, :class:`Beta`) stores its arguments and checks them when it is used
or when a :class:`JointPrior` names it, so that a bad value is reported with the
parameter it belongs to::

    >>> prior = JointPrior({"D": Uniform(0.2, 0.6), "r0": Normal(2.9, 0.1)})
    >>> prior.sample(4, np.random.default_rng(0)).shape
    (4, 2)

A :class:`JointPrior` is the product of independent one-dimensional priors; its
``sample(n, rng)`` returns an ``(n, d)`` array whose columns follow ``names`` and its
``logpdf(x)`` takes ``(n, d)`` (or ``(d,)``) and returns ``(n,)`` (``-inf`` outside the
support).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import special

from ..errors import ConfigError


class Prior:
    """A one-dimensional prior. Subclasses set ``_params`` and implement the four hooks."""

    _params: tuple[str, ...] = ()

    def validate(self, name: str | None = None) -> Prior:
        """Check the arguments; a :class:`~ml4ms.errors.ConfigError` naming ``name`` if bad."""
        for key in self._params:
            value = getattr(self, key)
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
                    or not math.isfinite(float(value)):
                raise ConfigError(f"{self._where(name)}: {key} must be a finite number, got {value!r}")
        problem = self._check()
        if problem:
            raise ConfigError(f"{self._where(name)}: {problem}")
        return self

    def _where(self, name: str | None) -> str:
        text = f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._params)})"
        return text if name is None else f"prior of {name!r} {text}"

    def _check(self) -> str | None:
        return None

    @property
    def support(self) -> tuple[float, float]:
        """``(low, high)`` bounds of the support (``±inf`` when unbounded)."""
        return (-math.inf, math.inf)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws, shape ``(n,)``."""
        self.validate()
        return np.asarray(self._sample(int(n), rng), dtype=float)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density at ``x`` (any shape); ``-inf`` outside the support."""
        self.validate()
        x = np.asarray(x, dtype=float)
        low, high = self.support
        inside = (x >= low) & (x <= high) & np.isfinite(x)
        out = np.full(x.shape, -np.inf)
        if inside.any():
            with np.errstate(divide="ignore"):
                out[inside] = self._logpdf(x[inside])
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"distribution": name, **arguments}``, the form :func:`prior_from_spec` reads."""
        return {"distribution": type(self).__name__.lower(), **{k: float(getattr(self, k)) for k in self._params}}

    def __repr__(self) -> str:
        return self._where(None)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(getattr(self, k) == getattr(other, k) for k in self._params)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(getattr(self, k) for k in self._params)))

    # hooks
    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _logpdf(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Uniform(Prior):
    """Uniform on ``[low, high]`` (``low < high``)."""

    _params = ("low", "high")

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    def _check(self) -> str | None:
        if not self.low < self.high:
            return f"low ({self.low}) must be less than high ({self.high})"
        return None

    @property
    def support(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def _sample(self, n, rng):
        return rng.uniform(self.low, self.high, n)

    def _logpdf(self, x):
        return np.full(x.shape, -math.log(self.high - self.low))


class Normal(Prior):
    """Normal with mean ``mu`` and standard deviation ``sigma > 0``."""

    _params = ("mu", "sigma")

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu = mu
        self.sigma = sigma

    def _check(self) -> str | None:
        return None if self.sigma > 0 else f"sigma must be positive, got {self.sigma}"

    def _sample(self, n, rng):
        return rng.normal(self.mu, self.sigma, n)

    def _logpdf(self, x):
        z = (x - self.mu) / self.sigma
        return -0.5 * z * z - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)


class LogUniform(Prior):
    """Uniform in ``log x`` on ``[low, high]`` (``0 < low < high``): scale parameters."""

    _params = ("low", "high")

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    def _check(self) -> str | None:
        if not self.low > 0:
            return f"low must be positive, got {self.low}"
        if not self.low < self.high:
            return f"low ({self.low}) must be less than high ({self.high})"
        return None

    @property
    def support(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def _sample(self, n, rng):
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), n))

    def _logpdf(self, x):
        return -np.log(x) - math.log(math.log(self.high / self.low))


class LogNormal(Prior):
    """``log x`` normal with mean ``mu`` and standard deviation ``sigma > 0``."""

    _params = ("mu", "sigma")

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu = mu
        self.sigma = sigma

    def _check(self) -> str | None:
        return None if self.sigma > 0 else f"sigma must be positive, got {self.sigma}"

    @property
    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)

    def _sample(self, n, rng):
        return np.exp(rng.normal(self.mu, self.sigma, n))

    def _logpdf(self, x):
        safe = np.where(x > 0, x, 1.0)
        z = (np.log(safe) - self.mu) / self.sigma
        out = -0.5 * z * z - np.log(safe) - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)
        return np.where(x > 0, out, -np.inf)


class Beta(Prior):
    """Beta with shapes ``a > 0`` and ``b > 0`` on ``[0, 1]``."""

    _params = ("a", "b")

    def __init__(self, a: float, b: float) -> None:
        self.a = a
        self.b = b

    def _check(self) -> str | None:
        if not (self.a > 0 and self.b > 0):
            return f"a and b must be positive, got a={self.a}, b={self.b}"
        return None

    @property
    def support(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def _sample(self, n, rng):
        return rng.beta(self.a, self.b, n)

    def _logpdf(self, x):
        with np.errstate(divide="ignore"):
            return special.xlog1py(self.b - 1, -x) + special.xlogy(self.a - 1, x) - special.betaln(self.a, self.b)


#: Distribution names accepted by :func:`prior_from_spec`.
PRIORS: dict[str, type[Prior]] = {
    "uniform": Uniform, "normal": Normal, "loguniform": LogUniform, "lognormal": LogNormal, "beta": Beta,
}


def prior_from_spec(spec: Prior | Mapping[str, Any] | list | tuple, name: str | None = None) -> Prior:
    """A prior from ``{"distribution": "uniform", "low": 0, "high": 1}``, ``{"uniform": [0, 1]}``
    or ``["uniform", 0, 1]``; a :class:`Prior` is returned (validated) as it is.

    Raises
    ------
    ConfigError
        Unknown distribution, missing or unknown arguments, or invalid values; the
        message names the parameter ``name``.
    """
    where = "prior" if name is None else f"priors.{name}"
    if isinstance(spec, Prior):
        return spec.validate(name)
    if isinstance(spec, Mapping) and "distribution" in spec:
        kind, arguments = str(spec["distribution"]).lower(), {k: v for k, v in spec.items() if k != "distribution"}
    elif isinstance(spec, Mapping) and len(spec) == 1:
        kind, values = next(iter(spec.items()))
        kind = str(kind).lower()
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"{where}: expected {{{kind}: [arguments...]}}, got {dict(spec)!r}")
        arguments = list(values)
    elif isinstance(spec, (list, tuple)) and spec:
        kind, arguments = str(spec[0]).lower(), list(spec[1:])
    else:
        raise ConfigError(f"{where}: expected {{distribution: NAME, ...arguments}}, {{NAME: [arguments]}} "
                          f"or [NAME, arguments...]; got {spec!r}")
    if kind not in PRIORS:
        raise ConfigError(f"{where}: distribution must be one of {', '.join(PRIORS)}; got {kind!r}")
    cls = PRIORS[kind]
    if isinstance(arguments, list):
        if len(arguments) != len(cls._params):
            raise ConfigError(f"{where}: {kind} takes {len(cls._params)} arguments "
                              f"({', '.join(cls._params)}), got {len(arguments)}")
        arguments = dict(zip(cls._params, arguments))
    unknown = sorted(set(arguments) - set(cls._params))
    missing = [k for k in cls._params if k not in arguments]
    if unknown or missing:
        raise ConfigError(f"{where}: {kind} takes {', '.join(cls._params)}"
                          + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                          + (f"; missing: {', '.join(missing)}" if missing else ""))
    return cls(**arguments).validate(name)


class JointPrior:
    """Independent one-dimensional priors, one per named parameter.

    Parameters
    ----------
    priors
        ``{name: prior}`` in parameter order; a prior may be a :class:`Prior` or a
        specification :func:`prior_from_spec` reads.

    Raises
    ------
    ConfigError
        No parameters, or an invalid prior (the message names the parameter).
    """

    def __init__(self, priors: Mapping[str, Prior | Mapping[str, Any] | list]) -> None:
        if not isinstance(priors, Mapping) or not priors:
            raise ConfigError("priors: expected a non-empty mapping {name: prior}")
        self.priors = {str(name): prior_from_spec(spec, str(name)) for name, spec in priors.items()}

    @property
    def names(self) -> list[str]:
        """Parameter names, in column order."""
        return list(self.priors)

    @property
    def dim(self) -> int:
        return len(self.priors)

    @property
    def bounds(self) -> np.ndarray:
        """``(d, 2)`` support bounds (``±inf`` where unbounded)."""
        return np.array([p.support for p in self.priors.values()], dtype=float)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, d)`` independent draws; columns follow :attr:`names`."""
        return np.column_stack([p.sample(n, rng) for p in self.priors.values()]).reshape(int(n), self.dim)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Joint log density of ``x`` of shape ``(n, d)`` (or ``(d,)``): ``(n,)`` (or a scalar)."""
        x = np.asarray(x, dtype=float)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != self.dim:
            raise ConfigError(f"expected {self.dim} parameters ({', '.join(self.names)}), got {x.shape[1]}")
        out = np.sum([p.logpdf(x[:, k]) for k, p in enumerate(self.priors.values())], axis=0)
        return out[0] if single else out

    def as_dict(self, x: np.ndarray) -> dict[str, float]:
        """One parameter vector ``(d,)`` as ``{name: value}``."""
        return {name: float(v) for name, v in zip(self.names, np.asarray(x, dtype=float))}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self.priors.items()}

    def __repr__(self) -> str:
        return f"JointPrior({self.priors!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JointPrior) and self.priors == other.priors
