"""Property-model files: the same safetensors + JSON container as potentials, never pickle.

The header holds ``"kind": "property-model"``, the model's registry name, its
hyper-parameters (``config``), its JSON state, the target's name and unit, the input
kind and the metrics; the tensors hold its arrays. Loading looks the class up in
ml4ms's registry, so no code is read from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..errors import ModelFileError
from ..serialization import FORMAT_VERSION, read_file, write_file
from .base import PropertyModel, property_model_class

KIND = "property-model"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_property_model(
    model: PropertyModel,
    path: str | os.PathLike,
    *,
    target: str | None = None,
    unit: str | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted property model to ``path`` atomically.

    Parameters
    ----------
    model
        A fitted :class:`~ml4ms.properties.base.PropertyModel`.
    target, unit
        What the model predicts and in which unit (e.g. ``"gap_expt"``, ``"eV"``).
    metrics, extra
        JSON-serialisable metrics (e.g. cross-validation scores) and further metadata.
    """
    arrays, state = model.get_state()
    state = dict(state)
    state["uncertainty_scale"] = float(getattr(model, "uncertainty_scale_", 1.0))
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    header = {
        "format_version": FORMAT_VERSION,
        "ml4ms_version": __version__,
        "kind": KIND,
        "class": type(model).registry_name,
        "config": _jsonable(model.get_params(deep=False)),
        "state": _jsonable(state),
        "input_kind": model.input_kind,
        "target": target,
        "unit": unit,
        "metrics": _jsonable(metrics or {}),
        "extra": _jsonable(extra or {}),
    }
    return write_file(path, tensors, header)


def load_property_model(path: str | os.PathLike) -> PropertyModel:
    """Rebuild a property model written by :func:`save_property_model`.

    The file header is available as ``model.file_header_``.

    Raises
    ------
    ModelFileError
        Unreadable or modified file, not a property model (e.g. a potential), or an
        unknown model class.
    """
    header, tensors = read_file(path, required=("class", "config", "state"))
    if header.get("kind") != KIND:
        raise ModelFileError("not a property model (is it a potential? use `ml4ms eval`)", path=path)
    try:
        cls = property_model_class(str(header["class"]))
    except Exception as exc:  # ConfigError: unknown class
        raise ModelFileError(str(exc), path=path) from None
    arrays = {name: t.numpy() for name, t in tensors.items()}
    try:
        model = cls.from_state(header["config"], arrays, header["state"])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"cannot rebuild {header['class']} from the file ({exc})", path=path) from None
    model.file_header_ = header
    return model
