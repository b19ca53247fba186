"""Exponential moving average of a model's weights (Polyak averaging).

Validation and the final model use the averaged weights: they are smoother than the
last optimiser step and typically a little more accurate, which is why MACE, NequIP and
SchNetPack all train this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class ExponentialMovingAverage:
    """Shadow copy ``w_ema <- d w_ema + (1 - d) w`` of every parameter.

    The decay warms up as ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    that the first steps, far from the final weights, are forgotten quickly.

    Parameters
    ----------
    model
        The model whose parameters are averaged.
    decay
        The long-run decay ``d`` in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current parameters into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            self.shadow[name].mul_(d).add_(p.detach(), alpha=1 - d)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Evaluate ``model`` with the averaged weights, then put its own weights back."""
        saved = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(saved[name])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averages."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    def state(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load(self, shadow: dict[str, torch.Tensor], updates: int) -> None:
        for name, tensor in shadow.items():
            self.shadow[name] = tensor.to(device=self.shadow[name].device, dtype=self.shadow[name].dtype)
        self.updates = int(updates)
