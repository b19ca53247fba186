"""A crystal-graph network for structure -> property (CGCNN-style).

Each atom is a node with an element vector; each pair within ``cutoff`` (periodic
images included, from :func:`ml4ms.data.neighbors.neighbor_list`, the neighbour list of
:class:`~ml4ms.data.graph.AtomicGraph`) is an edge described by Gaussians of its length.
``n_layers`` gated convolutions (Xie and Grossman, "Crystal graph convolutional neural
networks", Phys. Rev. Lett. 120, 145301 (2018), eq. 5) update the atoms::

    z_ij = W_i h_i + W_j h_j + W_e g(r_ij)                       (2F channels)
    h_i <- softplus(h_i + LN(sum_j sigmoid(z_ij^gate) * softplus(z_ij^core) * c(r_ij)))

with ``g`` the Gaussian expansion of the distance (``n_gaussians`` centres on
[0, cutoff]) and ``c(r) = (1 + cos(pi r / cutoff)) / 2`` a smooth cutoff, so the output
is continuous when an atom crosses the cutoff. Two departures from CGCNN: every
neighbour within the cutoff counts (CGCNN keeps the nearest 12, whose choice among
ties breaks the invariance to the choice of supercell), and layer normalisation
replaces batch normalisation (which makes a prediction depend on the rest of its batch).
The atoms' final vectors are pooled per structure (``"mean"``: an intensive target, the
same for any supercell; ``"sum"``: extensive) and an MLP predicts the target and the log
of its error scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch import nn

from ..data.neighbors import neighbor_list
from ..descriptors.elements import N_ROWS
from ..errors import ConfigError, DataError, UnknownElementError
from .base import register_property_model
from ._torch_fit import ElementEmbedding, NetworkPropertyModel, PropertyData, initialise, mlp

__all__ = ["CrystalGraphNet"]


class _GatedConvolution(nn.Module):
    def __init__(self, channels: int, n_gaussians: int) -> None:
        super().__init__()
        self.channels = channels
        self.nodes = nn.Linear(channels, 4 * channels)
        self.edges = nn.Linear(n_gaussians, 2 * channels, bias=False)
        self.norm = nn.LayerNorm(channels)

    def forward(self, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor, basis: torch.Tensor,
                envelope: torch.Tensor) -> torch.Tensor:
        f = self.channels
        a = self.nodes(h)  # the centre's and the neighbour's parts of z, computed per atom
        z = a[i, : 2 * f] + a[j, 2 * f :] + self.edges(basis)
        gate, core = z.chunk(2, dim=1)
        messages = torch.sigmoid(gate) * nn.functional.softplus(core) * envelope.unsqueeze(1)
        summed = torch.zeros_like(h).index_add_(0, i, messages)
        return nn.functional.softplus(h + self.norm(summed))


class _CrystalGraphNetwork(nn.Module):
    def __init__(self, channels: int, n_layers: int, n_gaussians: int, cutoff: float, readout_hidden: int,
                 pooling: str) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.pooling = pooling
        self.embedding = ElementEmbedding(channels)
        self.register_buffer("centres", torch.linspace(0.0, cutoff, n_gaussians, dtype=torch.float64))
        self.width = float(cutoff) / (n_gaussians - 1)
        self.convolutions = nn.ModuleList(_GatedConvolution(channels, n_gaussians) for _ in range(n_layers))
        self.head = mlp([channels, readout_hidden, readout_hidden, 2])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        numbers, i, j, r, owner = batch["numbers"], batch["i"], batch["j"], batch["r"], batch["structure"]
        n_structures = int(batch["n_structures"])
        basis = torch.exp(-((r.unsqueeze(1) - self.centres.to(r.dtype)) / self.width) ** 2)
        envelope = 0.5 * (1.0 + torch.cos(torch.pi * r / self.cutoff)) * (r < self.cutoff)
        h = self.embedding(numbers)
        for convolution in self.convolutions:
            h = convolution(h, i, j, basis, envelope)
        pooled = torch.zeros((n_structures, h.shape[1]), dtype=h.dtype, device=h.device).index_add_(0, owner, h)
        if self.pooling == "mean":
            counts = torch.bincount(owner, minlength=n_structures).to(h.dtype)
            pooled = pooled / counts.unsqueeze(1)
        return self.head(pooled)


@register_property_model
class CrystalGraphNet(NetworkPropertyModel):
    """Structure -> property with gated graph convolutions on the periodic neighbour graph.

    Parameters
    ----------
    cutoff
        Neighbour cutoff, Å.
    channels
        Width of the atom vectors.
    n_layers
        Gated convolutions.
    n_gaussians
        Gaussians that expand an edge's length on [0, cutoff].
    readout_hidden
        Width of the two hidden layers of the output MLP.
    pooling
        ``"mean"`` over the atoms of a structure (an intensive target, e.g. eV/atom; the
        same for every supercell) or ``"sum"`` (an extensive one, e.g. eV per cell).
    n_models, loss, epochs, batch_size, lr, weight_decay, validation_fraction, patience, \
ema_decay, clip_grad_norm, dtype, device, seed, target_min, train_options, progress, n_threads
        As for :class:`~ml4ms.properties.composition_net.CompositionAttentionNet`.

    Notes
    -----
    Inputs are :class:`ase.Atoms` (periodic or not); the target is per structure, in the
    user's unit, exactly as given (e.g. eV per cell: use ``pooling="sum"`` for a total
    of cells of different sizes). ``fit`` takes ``directory=``, ``resume=True`` and
    ``X_val``/``y_val``.

    Examples
    --------
    >>> model = CrystalGraphNet(cutoff=5.0, epochs=100)                  # doctest: +SKIP
    >>> model.fit(structures, formation_energies)                         # doctest: +SKIP
    >>> mean, sigma = model.predict(new_structures, return_std=True)      # doctest: +SKIP
    """

    registry_name = "crystal-graph"
    input_kind = "structure"

    def __init__(
        self,
        cutoff: float = 5.0,
        channels: int = 64,
        n_layers: int = 3,
        n_gaussians: int = 32,
        readout_hidden: int = 128,
        pooling: str = "mean",
        n_models: int = 1,
        loss: str = "laplace",
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int | None = 30,
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
        self.cutoff = cutoff
        self.channels = channels
        self.n_layers = n_layers
        self.n_gaussians = n_gaussians
        self.readout_hidden = readout_hidden
        self.pooling = pooling
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
        if self.pooling not in ("mean", "sum"):
            raise ConfigError(f"CrystalGraphNet: pooling must be 'mean' or 'sum', got {self.pooling!r}")
        if not float(self.cutoff) > 0:
            raise ConfigError(f"CrystalGraphNet: cutoff must be positive, got {self.cutoff}")
        if int(self.n_gaussians) < 2:
            raise ConfigError(f"CrystalGraphNet: n_gaussians must be >= 2, got {self.n_gaussians}")

    def _network(self, seed: int) -> nn.Module:
        network = _CrystalGraphNetwork(int(self.channels), int(self.n_layers), int(self.n_gaussians),
                                       float(self.cutoff), int(self.readout_hidden), str(self.pooling))
        initialise(network, seed)
        return network

    def _featurize(self, X: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Per structure: atomic numbers (n,), edge centres and neighbours (E,) and lengths (E,), Å."""
        if isinstance(X, (Atoms, str, Mapping)):
            raise DataError("X must be a list of ase.Atoms, not one " + type(X).__name__, field="X")
        items = []
        for index, atoms in enumerate(X):
            if not isinstance(atoms, Atoms):
                raise DataError(f"expected an ase.Atoms, got {type(atoms).__name__}", index=index, field="X")
            if len(atoms) == 0:
                raise DataError("the structure has no atoms", index=index, field="numbers")
            numbers = np.asarray(atoms.numbers, dtype=np.int64)
            if not ((numbers > 0) & (numbers < N_ROWS)).all():
                raise UnknownElementError(f"atomic numbers {sorted(set(numbers[(numbers <= 0) | (numbers >= N_ROWS)]))}"
                                          " are not elements", index=index, field="numbers")
            try:
                pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, float(self.cutoff))
            except DataError as exc:
                raise DataError(exc.message, index=index, field=exc.field) from None
            r = np.linalg.norm(pairs.vectors(atoms.positions, atoms.cell.array), axis=1)
            items.append((numbers, pairs.i.astype(np.int64), pairs.j.astype(np.int64), r))
        return items, [len(item[0]) for item in items]

    def _collate(self, data: PropertyData, indices: Sequence[int], dtype: torch.dtype,
                 device: torch.device) -> dict[str, torch.Tensor]:
        chosen = [data.items[k] for k in indices]
        counts = np.array([len(item[0]) for item in chosen])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_edges = np.array([len(item[1]) for item in chosen])
        shift = np.repeat(offsets, n_edges)
        return {
            "numbers": torch.as_tensor(np.concatenate([item[0] for item in chosen]), device=device),
            "i": torch.as_tensor(np.concatenate([item[1] for item in chosen]) + shift, device=device),
            "j": torch.as_tensor(np.concatenate([item[2] for item in chosen]) + shift, device=device),
            "r": torch.as_tensor(np.concatenate([item[3] for item in chosen]), dtype=dtype, device=device),
            "structure": torch.as_tensor(np.repeat(np.arange(len(chosen)), counts), device=device),
            "n_structures": torch.tensor(len(chosen)),
        }
