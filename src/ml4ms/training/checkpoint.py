"""Training checkpoints: everything a resumed run needs, in safetensors + JSON (no pickle).

A checkpoint holds the model's weights, the moving average of the weights, the best
weights so far, the optimiser's moment estimates and the trainer's bookkeeping (epoch,
position within the epoch, step, learning-rate schedule, early-stopping counter,
history). With these, and the batch order being a function of (seed, epoch), a resumed
run repeats exactly the arithmetic of an uninterrupted one: the weights agree bit for bit.

Layout of the safetensors file: tensors named ``model/<name>``, ``ema/<name>``,
``best/<name>`` and ``optimizer/<parameter index>/<key>``; its metadata key ``"ml4ms"``
holds the JSON document (``state``, the optimiser's ``param_groups``, the model's class
and configuration, the ml4ms version).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._files import atomic_path
from .._version import __version__
from ..errors import ModelFileError

FORMAT_VERSION = 1
_KEY = "ml4ms"


def _flatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{name}": t.detach().cpu().contiguous().clone() for name, t in tensors.items()}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: dict[str, torch.Tensor] | None,
    best: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
    model_info: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (a killed write leaves the previous one intact)."""
    tensors = _flatten("model", model.state_dict())
    if ema is not None:
        tensors.update(_flatten("ema", ema))
    if best is not None:
        tensors.update(_flatten("best", best))
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous().clone()
    header = {
        "format_version": FORMAT_VERSION,
        "ml4ms_version": __version__,
        "model": model_info,
        "state": state,
        "param_groups": optimizer_state["param_groups"],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(header)})
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint: ``{"model", "ema", "best": state dicts or None, "optimizer": an
    optimiser state dict, "state", "model_info": dicts}``.

    Raises
    ------
    ModelFileError
        The file is missing, not a safetensors file, or not an ml4ms checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("no such checkpoint", path=path)
    try:  # one pass over the file: tensors and header together
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})[_KEY])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as error:
        raise ModelFileError(f"not an ml4ms training checkpoint ({error})", path=path) from None
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "best": {}}
    optimizer_state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        kind, _, rest = name.partition("/")
        if kind == "optimizer":
            index, _, key = rest.partition("/")
            optimizer_state.setdefault(int(index), {})[key] = tensor
        else:
            parts[kind][rest] = tensor
    return {
        "model": parts["model"],
        "ema": parts["ema"] or None,
        "best": parts["best"] or None,
        "optimizer": {"state": optimizer_state, "param_groups": header["param_groups"]},
        "state": header["state"],
        "model_info": header["model"],
    }
