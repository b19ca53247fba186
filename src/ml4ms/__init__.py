"""ml4ms: machine learning for materials science.

From atomic structures with ab initio labels to descriptors, regression models and
machine-learned interatomic potentials with error bars, used through ASE.

>>> import ml4ms
>>> model = ml4ms.load("model.ml4ms")            # doctest: +SKIP
>>> atoms.calc = ml4ms.simulate.Calculator(model)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from ._allocator import tune_malloc as _tune_malloc
from ._version import __version__

_tune_malloc()  # process-wide malloc settings for eager torch; see ml4ms._allocator

__all__ = ["__version__", "load", "save"]

_SUBMODULES = {"config", "data", "descriptors", "errors", "keys", "models", "report", "serialization",
               "simulate", "testing", "training"}


def save(model, path, **kwargs):
    """Write a model file; see :func:`ml4ms.serialization.save`."""
    from .serialization import save as _save

    return _save(model, path, **kwargs)


def load(path, **kwargs):
    """Read a model file; see :func:`ml4ms.serialization.load`."""
    from .serialization import load as _load

    return _load(path, **kwargs)


def __getattr__(name: str) -> Any:
    # Submodules load on first use so that `import ml4ms` (and the CLI's --help) stay fast.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ml4ms' has no attribute {name!r}")
