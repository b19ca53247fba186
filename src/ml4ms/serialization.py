"""Model files: safetensors weights with a JSON header; never pickle.

A ``.ml4ms`` file *is* a safetensors file. Its tensors are the model's state dict; its
string metadata holds one JSON document under the key ``"ml4ms"``::

    {
      "format_version": 1,
      "ml4ms_version": "0.1.0",
      "class": "LennardJones",
      "config": {...},                 # constructor arguments
      "elements": ["Cu"],              # or null for element-agnostic models
      "cutoff": 5.0,                   # Å
      "units": {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3"},
      "reference_energies": {"Cu": -3.7},   # eV, per element
      "training_data_hash": "sha256:...",   # or null
      "metrics": {...},
      "sha256": "..."                  # over this header and the tensors
    }

Anyone can read the header without ml4ms (``safetensors.safe_open(...).metadata()``),
and loading executes no code from the file: the class is looked up in ml4ms's own
registry and rebuilt from ``config``. The checksum covers the header as well as the
weights, so an edited configuration is caught like an edited weight (a checksum is no
signature: it detects corruption and careless edits, not a deliberate forgery).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._files import atomic_path
from ._version import __version__
from .errors import ModelFileError
from .models.base import AtomisticModel, model_class

FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3"}
_MAGIC_KEY = "ml4ms"


def _digest(header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    body = {k: v for k, v in header.items() if k != "sha256"}
    digest.update(json.dumps(body, sort_keys=True, ensure_ascii=False).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save(
    model: AtomisticModel,
    path: str | os.PathLike,
    *,
    metrics: dict[str, Any] | None = None,
    training_data_hash: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a model file, atomically.

    Parameters
    ----------
    model
        The model to save.
    path
        Destination; the suffix ``.ml4ms`` is conventional, not required.
    metrics
        Test or validation metrics to record (JSON-serialisable).
    training_data_hash
        A hash of the training data (see :meth:`ml4ms.data.AtomsDataset.hash`).
    extra
        Any further JSON-serialisable metadata (e.g. the training configuration).

    Returns
    -------
    Path
        The path written.
    """
    tensors = dict(model.state_dict())
    header = {
        "format_version": FORMAT_VERSION,
        "ml4ms_version": __version__,
        "class": type(model).registry_name or type(model).__name__,
        "config": model.config,
        "elements": model.elements,
        "cutoff": model.cutoff,
        "dtype": str(model.reference_energies.dtype).removeprefix("torch."),
        "units": UNITS,
        "reference_energies": model.get_reference_energies(),
        "training_data_hash": training_data_hash,
        "metrics": metrics or {},
        "extra": extra or {},
    }
    return write_file(path, tensors, header)


def write_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> Path:
    """Write ``tensors`` with the JSON ``header`` (plus its checksum) as one safetensors file,
    atomically. Every ml4ms file format (potentials, property models) goes through here.

    ``header`` must be JSON-serialisable and should carry ``format_version``,
    ``ml4ms_version`` and ``class``; ``sha256`` is added over the header and the tensors.
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = dict(header)
    header["sha256"] = _digest(header, tensors)
    text = json.dumps(header, ensure_ascii=False)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_MAGIC_KEY: text})
    return path


def read_file(path: str | os.PathLike, *, required: tuple[str, ...] = ("class", "config"),
              map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header and tensors of a file written by :func:`write_file`, checksum verified.

    Raises
    ------
    ModelFileError
        Missing, unreadable or modified file, a header without the ``required`` keys,
        or a newer format version.
    """
    header = read_header(path, required=required)
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"the weights cannot be read ({exc})", path=path) from None
    if _digest(header, tensors) != header["sha256"]:
        raise ModelFileError("the header and weights do not match their checksum: the file was modified",
                             path=path)
    return header, tensors


def read_header(path: str | os.PathLike, *,
                required: tuple[str, ...] = ("class", "config", "cutoff")) -> dict[str, Any]:
    """The JSON header of a model file, without building the model.

    Raises
    ------
    ModelFileError
        The file is missing, not a safetensors file, has no ml4ms header, or was
        written by a newer, unknown format version.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError("no such model file", path=path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"not a readable model file ({exc})", path=path) from None
    if _MAGIC_KEY not in metadata:
        raise ModelFileError("a safetensors file without an ml4ms header", path=path)
    try:
        header = json.loads(metadata[_MAGIC_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"the ml4ms header is not valid JSON ({exc})", path=path) from None
    if not isinstance(header, dict):
        raise ModelFileError("the ml4ms header is not a JSON object", path=path)
    version = header.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError("the header has no format_version", path=path)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"model file format version {version} is newer than this ml4ms ({__version__}) "
            f"reads (up to {FORMAT_VERSION}); upgrade ml4ms to load it",
            path=path,
        )
    missing = [key for key in (*required, "sha256") if key not in header]
    if missing:
        raise ModelFileError(f"the header lacks {', '.join(missing)}", path=path)
    return header


def load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> AtomisticModel:
    """Rebuild a model from a file written by :func:`save`.

    The model is returned in eval mode, in the dtype it was saved in. Its file header
    is available as ``model.file_header``.

    Raises
    ------
    ModelFileError
        Unreadable, truncated or tampered file (weights not matching their checksum),
        unknown model class, or a newer format version.
    """
    header, tensors = read_file(path, required=("class", "config", "cutoff"), map_location=map_location)
    try:
        cls = model_class(str(header["class"]))
    except KeyError as exc:
        raise ModelFileError(str(exc.args[0]), path=path) from None
    try:
        if not isinstance(header["config"], dict):
            raise TypeError("config is not a JSON object")
        model = cls(**header["config"])
        model.load_state_dict(tensors, strict=True)
        model.to(getattr(torch, header.get("dtype", "float64")))
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelFileError(f"cannot rebuild {header['class']} from the file ({exc})", path=path) from None
    model.file_header = header
    return model.eval()
