"""A composition-only property network: self-attention over the elements of a compound.

A compound is a set of tokens, one per element, each an element vector plus an
encoding of the element's fraction (as CrabNet, Wang et al., npj Comput. Mater. 7, 77
(2021)). ``n_layers`` pre-norm transformer blocks let every element attend to the
others; the attention weights are multiplied by the key's fraction to a learned power
per head (Roost's weighted attention, Goodall and Lee, Nat. Commun. 11, 6280 (2020)),
and padding never takes part. A fraction-weighted and a plain mean of the final
tokens feed an MLP that predicts the target and the log of its error scale::

    x_i   = E(Z_i) + W [sin(pi k f_i), cos(pi k f_i), sin(pi k l_i), cos(pi k l_i)]_k
            with l_i = -log10(f_i) / 6 (the fraction on a log scale, clipped at 1e-6)
    a_hij = softmax_j(q_hi . k_hj / sqrt(d_h) + p_h log f_j)        padding masked
    x_i  += W_o concat_h sum_j a_hij v_hj ;  x_i += FFN(LN(x_i))
    y, s  = MLP([sum_i f_i LN(x_i), mean_i LN(x_i)])

The element vectors ``E`` start from standardised elemental properties
(:class:`~ml4ms.properties._torch_fit.ElementEmbedding`), so the network is a function
of the composition only and is invariant to the order in which elements are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch import nn

from ..descriptors.composition import composition_of
from ..errors import ConfigError, DataError
from .base import register_property_model
from ._torch_fit import ElementEmbedding, NetworkPropertyModel, PropertyData, initialise, mlp

__all__ = ["CompositionAttentionNet"]

_LOG_FLOOR = 6.0  # decades of fraction the log encoding resolves (1e-6 .. 1)


class _AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention with fraction-weighted keys, then a feed-forward block."""

    def __init__(self, dim: int, n_heads: int, hidden: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.power = nn.Parameter(torch.ones(n_heads))
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = mlp([dim, hidden, dim])

    def forward(self, x: torch.Tensor, log_fraction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, m, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.norm1(x)).view(b, m, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)  # (B, H, M, M)
        scores = scores + self.power.view(1, h, 1, 1) * log_fraction.view(b, 1, 1, m)
        scores = scores.masked_fill(~mask.view(b, 1, 1, m), float("-inf"))
        attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, m, d)
        x = x + self.out(attended)
        return x + self.ffn(self.norm2(x))


class _CompositionNetwork(nn.Module):
    def __init__(self, d_model: int, n_heads: int, n_layers: int, n_frequencies: int, readout_hidden: int) -> None:
        super().__init__()
        self.embedding = ElementEmbedding(d_model)
        self.register_buffer("frequencies", math.pi * torch.arange(1, n_frequencies + 1, dtype=torch.float64))
        self.fraction = nn.Linear(4 * n_frequencies, d_model, bias=False)
        self.blocks = nn.ModuleList(_AttentionBlock(d_model, n_heads, 2 * d_model) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = mlp([2 * d_model, readout_hidden, readout_hidden, 2])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        numbers, fraction, mask = batch["numbers"], batch["fraction"], batch["mask"]
        dtype = self.fraction.weight.dtype
        safe = torch.where(mask, fraction, torch.ones_like(fraction))
        log_fraction = torch.log(safe.clamp_min(10.0**-_LOG_FLOOR))
        log_scaled = -log_fraction / (_LOG_FLOOR * math.log(10.0))  # 0 (pure) .. 1 (1e-6)
        angles_f = fraction.unsqueeze(-1) * self.frequencies.to(dtype)
        angles_l = log_scaled.unsqueeze(-1) * self.frequencies.to(dtype)
        encoding = torch.cat([angles_f.sin(), angles_f.cos(), angles_l.sin(), angles_l.cos()], dim=-1)
        x = self.embedding(numbers) + self.fraction(encoding)
        log_fraction = torch.where(mask, log_fraction, torch.zeros_like(log_fraction))
        for block in self.blocks:
            x = block(x, log_fraction, mask)
        x = self.norm(x)
        weights = mask.to(dtype)
        mean = (x * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True)
        weighted = (x * (fraction * weights).unsqueeze(-1)).sum(1)
        return self.head(torch.cat([weighted, mean], dim=-1))


@register_property_model
class CompositionAttentionNet(NetworkPropertyModel):
    """Composition -> property with attention over element tokens (CrabNet/Roost style).

    Parameters
    ----------
    d_model
        Width of the element tokens.
    n_heads
        Attention heads per layer (must divide ``d_model``).
    n_layers
        Attention blocks.
    n_frequencies
        Sine/cosine pairs that encode the fraction and its logarithm.
    readout_hidden
        Width of the two hidden layers of the output MLP.
    n_models
        Ensemble members, trained with seeds ``seed, seed + 1, ...``; their spread adds
        to the error bar.
    loss
        ``"laplace"`` (CrabNet's robust L1 with a predicted error, default),
        ``"gaussian"``, ``"l1"`` or ``"mse"`` (see :mod:`ml4ms.properties._torch_fit`).
    epochs, batch_size, lr, weight_decay, patience, ema_decay, clip_grad_norm
        Training settings of :class:`~ml4ms.config.TrainConfig` (patience: early
        stopping in epochs without validation improvement; None trains all epochs).
    validation_fraction
        Share of the training data held out (seeded) for the schedule, early stopping
        and the choice of the best weights; 0 uses the training loss.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    device
        ``"auto"`` (a GPU when present), ``"cpu"``, ``"cuda"``, ...
    seed
        Seed of the initial weights, the validation split and the batch order.
    target_min
        Lower bound of the target (e.g. 0 for band gaps): predictions are clipped to it.
    train_options
        Further :class:`~ml4ms.config.TrainConfig` fields (``lr_patience``,
        ``lr_factor``, ``min_lr``, ``checkpoint_every``, ``time_limit_min``, ...).
    progress
        Show the trainer's progress bar and a line per epoch.
    n_threads
        Torch threads during ``fit`` and ``predict`` (restored afterwards); None keeps
        torch's setting. One thread is often fastest for these small tensors.

    Notes
    -----
    Inputs are formulas (``"Fe2O3"``, ``"Cu1.8S1"``), mappings element -> amount or
    ``ase.Atoms`` (whose atoms are counted); amounts are normalised to fractions.
    ``fit`` takes ``directory=`` (checkpoints and metrics), ``resume=True`` and
    ``X_val``/``y_val`` (see :meth:`NetworkPropertyModel.fit`).

    Examples
    --------
    >>> model = CompositionAttentionNet(epochs=200, target_min=0.0)      # doctest: +SKIP
    >>> model.fit(["GaAs", "Si", "NaCl"], [1.42, 1.12, 8.5])             # doctest: +SKIP
    >>> mean, sigma = model.predict(["GaP"], return_std=True)            # doctest: +SKIP
    """

    registry_name = "composition-net"
    input_kind = "composition"

    def __init__(
        self,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 3,
        n_frequencies: int = 16,
        readout_hidden: int = 256,
        n_models: int = 1,
        loss: str = "laplace",
        epochs: int = 300,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int | None = 40,
        ema_decay: float | None = 0.99,
        clip_grad_norm: float | None = 10.0,
        dtype: str = "float32",
        device: str = "auto",
        seed: int = 0,
        target_min: float | None = None,
        train_options: dict[str, Any] | None = None,
        progress: bool = False,
        n_threads: int | None = None,
    ) -> None:
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.n_frequencies = n_frequencies
        self.readout_hidden = readout_hidden
        self.n_models = n_models
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.ema_decay = ema_decay
        self.clip_grad_norm = clip_grad_norm
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self.target_min = target_min
        self.train_options = train_options
        self.progress = progress
        self.n_threads = n_threads

    def _check_params(self) -> None:
        super()._check_params()
        if int(self.d_model) % int(self.n_heads):
            raise ConfigError(f"CompositionAttentionNet: n_heads ({self.n_heads}) must divide "
                              f"d_model ({self.d_model})")

    def _network(self, seed: int) -> nn.Module:
        network = _CompositionNetwork(int(self.d_model), int(self.n_heads), int(self.n_layers),
                                      int(self.n_frequencies), int(self.readout_hidden))
        initialise(network, seed)
        return network

    def _featurize(self, X: Sequence[Any]) -> tuple[list[Any], list[int]]:
        if isinstance(X, (str, bytes, Mapping, Atoms)):
            raise DataError("X must be a list of compositions (formulas, mappings or ase.Atoms), "
                            f"not one {type(X).__name__}", field="X")
        items = []
        for index, item in enumerate(X):
            composition = composition_of(item, index=index)
            numbers = np.fromiter(composition.keys(), dtype=np.int64, count=len(composition))
            amounts = np.fromiter(composition.values(), dtype=np.float64, count=len(composition))
            items.append((numbers, amounts / amounts.sum()))
        return items, [1] * len(items)

    def _collate(self, data: PropertyData, indices: Sequence[int], dtype: torch.dtype,
                 device: torch.device) -> dict[str, torch.Tensor]:
        chosen = [data.items[k] for k in indices]
        width = max(len(z) for z, _ in chosen)
        numbers = np.zeros((len(chosen), width), dtype=np.int64)
        fraction = np.zeros((len(chosen), width))
        lengths = np.array([len(z) for z, _ in chosen])
        mask = np.arange(width)[None, :] < lengths[:, None]
        numbers[mask] = np.concatenate([z for z, _ in chosen])
        fraction[mask] = np.concatenate([f for _, f in chosen])
        return {"numbers": torch.as_tensor(numbers, device=device),
                "fraction": torch.as_tensor(fraction, dtype=dtype, device=device),
                "mask": torch.as_tensor(mask, device=device)}
