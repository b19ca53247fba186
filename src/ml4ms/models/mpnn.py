"""An equivariant message-passing neural-network potential in the style of PaiNN.

Every atom ``i`` carries scalar features ``s_i`` (F channels, invariant) and vector
features ``v_i`` (3 x F, rotating with the structure). Each of ``n_layers``
interaction layers applies a *message* block, which gathers information from the
neighbours ``j`` within the cutoff, and an *update* block, which mixes scalars and
vectors on the atom itself (Schütt, Unke and Gastegger, "Equivariant message passing
for the prediction of tensorial properties and molecular spectra", ICML 2021,
arXiv:2102.03150, equations 7-9)::

    message:  x_ij  = phi(s_j) * W(r_ij)                       split into x_s, x_vv, x_vr
              s_i  += sum_j x_s
              v_i  += sum_j v_j * x_vv + x_vr * r_ij / |r_ij|
    update:   a     = MLP([s_i, ||V v_i||])                     split into a_vv, a_sv, a_ss
              v_i  += a_vv * (U v_i)
              s_i  += a_sv * <U v_i, V v_i> + a_ss

``W(r)`` is a linear map of a sine (Bessel) radial basis ``sin(n pi r / r_c) / r``
multiplied by a polynomial envelope that vanishes at ``r_c`` with its first and second
derivatives, so energies and forces are continuous when an atom crosses the cutoff.
A per-atom MLP reads the energy out of the final scalars. One departure from the paper:
the gate sees the smooth ``||x|| = sqrt(1 + |x|^2) - 1`` instead of the norm ``|x|``,
whose kink at zero makes forces jump at symmetric geometries (see :class:`_Update`).

Units are ASE's: positions and cutoff in Å, energies in eV. Shapes below use ``N``
atoms, ``E`` directed edges, ``F`` channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data.graph import AtomicGraph
from ..errors import ConfigError
from .base import AtomisticModel, typical_atomic_energy_scale
from .repulsion import build_repulsion

if TYPE_CHECKING:
    from ..data.dataset import AtomsDataset

__all__ = ["PRESETS", "EquivariantMPNN"]

#: Constructor arguments of three model sizes, from quick experiments to production.
PRESETS: dict[str, dict[str, Any]] = {
    "small": {"channels": 32, "n_layers": 2, "n_radial": 8, "readout_hidden": 16},
    "medium": {"channels": 64, "n_layers": 3, "n_radial": 8, "readout_hidden": 32},
    "large": {"channels": 128, "n_layers": 4, "n_radial": 16, "readout_hidden": 64},
}

#: Bytes of the largest per-edge temporary, (edges in a chunk) x 3F x itemsize.
EDGE_CHUNK_BYTES = 2 * 2**20


class _ShiftedSoftplus(nn.Module):
    """``softplus(x) - log 2``: SchNet's activation, zero at zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


_ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "ssp": _ShiftedSoftplus}


class _Linear(nn.Module):
    """``x W^T + b`` with float64 parameters left uninitialised.

    ``nn.Linear`` initialises itself from the global RNG; the model draws its weights
    from its own seeded generator instead (:meth:`EquivariantMPNN._init_weights`).
    """

    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in, dtype=torch.float64))
        self.bias = nn.Parameter(torch.empty(n_out, dtype=torch.float64)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def _mlp(
    n_in: int, n_hidden: int, n_out: int, activation: str, out_bias: bool = True
) -> nn.Sequential:
    return nn.Sequential(
        _Linear(n_in, n_hidden), _ACTIVATIONS[activation](), _Linear(n_hidden, n_out, out_bias)
    )


class _Message(nn.Module):
    """PaiNN's message block: continuous-filter convolution of scalars and vectors.

    Edges are processed in chunks (see :data:`EDGE_CHUNK_BYTES`); the per-edge work
    is gathers, elementwise products and scatter-adds, all linear in the number of edges.
    """

    def __init__(self, channels: int, n_basis: int, activation: str) -> None:
        super().__init__()
        self.channels = channels
        self.phi = _mlp(channels, channels, 3 * channels, activation)
        # (basis, [s | vv | vr] x channel): a linear map of the enveloped radial basis,
        # whose last function is the envelope alone (the filter's bias).
        self.filter_weight = nn.Parameter(torch.empty(n_basis, 3 * channels, dtype=torch.float64))

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        edges: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.channels
        n = s.shape[0]
        # phi acts on atoms, not edges: N rows through the MLP instead of E (~40x fewer);
        # likewise phi_vv(s_j) multiplies v_j before the gather.
        phi_s, phi_vv, phi_vr = self.phi(s).split(f, dim=1)
        u = None if v is None else v * phi_vv.unsqueeze(1)  # v is None in the first layer: 0
        ds = s.new_zeros((n, f))
        dv = s.new_zeros((n, 3, f))
        for i, j, unit, basis in edges:
            w_s, w_vv, w_vr = (basis @ self.filter_weight).split(f, dim=1)
            ds = ds.index_add(0, i, phi_s.index_select(0, j) * w_s)
            x_vr = phi_vr.index_select(0, j) * w_vr
            dv_edge = x_vr.unsqueeze(1) * unit.unsqueeze(2)
            if u is not None:
                dv_edge = torch.addcmul(dv_edge, u.index_select(0, j), w_vv.unsqueeze(1))
            dv = dv.index_add(0, i, dv_edge)
        return ds, dv


class _Update(nn.Module):
    """PaiNN's update block: gated mixing of scalar and vector features on each atom."""

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.channels = channels
        # U and V in one matmul; no bias, which would break equivariance of the vectors.
        self.uv = _Linear(channels, 2 * channels, bias=False)
        self.gate = _mlp(2 * channels, channels, 3 * channels, activation)

    def forward(self, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.channels
        uv = self.uv(v)
        u, w = uv[..., :f], uv[..., f:]
        # PaiNN gates with |V v|, a cone at V v = 0: its gradient flips sign there, so forces
        # jump where a vector feature passes through zero, as it does at (and near)
        # symmetric geometries. sqrt(1 + |V v|^2) - 1 is smooth everywhere, ~|V v|^2 / 2 near
        # zero and ~|V v| far from it, and needs no epsilon against NaN gradients.
        norm = torch.sqrt(1.0 + (w * w).sum(1)) - 1.0
        a = self.gate(torch.cat([s, norm], dim=1))
        a_vv, a_sv, a_ss = a[:, :f], a[:, f : 2 * f], a[:, 2 * f :]
        ds = a_sv * (u * w).sum(1) + a_ss
        dv = a_vv.unsqueeze(1) * u
        return ds, dv


class EquivariantMPNN(AtomisticModel):
    """PaiNN-style equivariant message-passing potential.

    Per-atom energies are ``E_i = scale * y(s_i) + shift + E0[Z_i]`` where ``y`` is the
    readout MLP of the final scalar features; E0, fitted by least squares to the training
    energies, is a per-element offset, and a lone atom's energy is whatever the network
    gives. With ``anchor_isolated_atom`` the readout of an isolated atom's features is
    subtracted, ``E_i = scale * (y(s_i) - y(s_iso[Z_i])) + shift + E0[Z_i]``, so that an
    atom without neighbours has energy exactly ``E0 + shift``: right when E0 are
    isolated-atom energies, wrong when they are fitted to condensed structures (the
    network must then bring a lone atom back to the bulk energy, which drags the energies
    of under-coordinated atoms, such as surface atoms, towards the bulk's). Forces and
    stresses come from autograd in :class:`~ml4ms.models.base.AtomisticModel`.

    Parameters
    ----------
    species
        Elements the model knows (symbols or atomic numbers).
    cutoff
        Radial cutoff ``r_c``, Å. Edges at or beyond it contribute exactly nothing.
    channels
        Number ``F`` of scalar channels, also of vector channels.
    n_layers
        Number of interaction (message + update) layers; the receptive field is
        ``n_layers * cutoff``.
    n_radial
        Number of sine radial basis functions ``sin(n pi r / r_c) / r``, n = 1..n_radial.
    readout_hidden
        Width of the hidden layer of the per-atom energy readout.
    envelope_exponent
        Exponent ``p`` of the polynomial envelope
        ``1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2)``, ``d = r / r_c``
        (DimeNet's, without its ``1/d``): 1 at r = 0, 0 at r_c with vanishing first and
        second derivatives.
    activation
        ``"silu"`` (PaiNN's), ``"tanh"`` or ``"ssp"`` (shifted softplus).
    seed
        Seed of the weight initialisation (a local generator; the global RNG is untouched).
    atomic_energy_scale
        Scale of the readout, eV; set from the data by :meth:`initialize`.
    atomic_energy_shift
        Added to every atom's energy, eV; :meth:`initialize` sets it to 0 (E0 carries
        the mean).
    repulsion
        ``"zbl"`` adds the Ziegler–Biersack–Littmark screened nuclear repulsion, switched off
        smoothly below the shortest distance of each element pair in the training data
        (set by :meth:`initialize`; :class:`~ml4ms.models.repulsion.ZBLRepulsion`), so that
        close contacts the training data never showed stay repulsive in hot MD; the network
        learns the rest. A dict ``{"type": "zbl", ...}`` passes options (e.g.
        ``"range": "covalent"``). None (default): no baseline.
    anchor_isolated_atom
        Pin an isolated atom's energy to ``E0 + shift`` (see above). False (default) for
        E0 fitted to the training data; True for E0 set to isolated-atom energies.
        Model files written before this option load anchored, as they were trained.

    Attributes
    ----------
    embedding
        (n_species, F) initial scalar features of each element.
    atomic_energy_scale, atomic_energy_shift
        0-d buffers, eV; saved with the weights.

    Notes
    -----
    Parameters are created in float64 whatever torch's default dtype;
    ``model.to(torch.float32)`` gives a float32 model (evaluate it on float32 graphs).

    The cost is linear in the number of edges and dominated by per-edge memory traffic:
    per layer, gathers of two (E, F) neighbour scalars and of the (E, 3, F) neighbour
    vectors, elementwise products with the filters and scatter-adds onto the centres.
    The MLP ``phi`` and the product ``phi_vv(s_j) v_j`` are evaluated per atom, before
    the gather. Edges go through in chunks of :data:`EDGE_CHUNK_BYTES`, which keeps the
    temporaries in cache and avoids page faults on large fresh allocations.

    References
    ----------
    K. T. Schütt, O. T. Unke, M. Gastegger, "Equivariant message passing for the
    prediction of tensorial properties and molecular spectra", ICML 2021.
    """

    def __init__(
        self,
        species: Sequence[int | str],
        cutoff: float = 5.0,
        channels: int = 64,
        n_layers: int = 3,
        n_radial: int = 8,
        readout_hidden: int = 32,
        envelope_exponent: int = 5,
        activation: str = "silu",
        seed: int = 0,
        atomic_energy_scale: float = 1.0,
        atomic_energy_shift: float = 0.0,
        repulsion: str | dict | None = None,
        anchor_isolated_atom: bool = False,
    ) -> None:
        if species is None or len(species) == 0:
            raise ConfigError("EquivariantMPNN needs a non-empty list of species")
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {', '.join(_ACTIVATIONS)}; got {activation!r}"
            )
        for name, value in (
            ("channels", channels),
            ("n_layers", n_layers),
            ("n_radial", n_radial),
            ("readout_hidden", readout_hidden),
            ("envelope_exponent", envelope_exponent),
        ):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        super().__init__(cutoff=cutoff, species=species)
        self.repulsion = build_repulsion(repulsion, self.species, self.cutoff)
        self._register_isolated_anchor(anchor_isolated_atom)
        self.channels = int(channels)
        self.n_layers = int(n_layers)
        self.n_radial = int(n_radial)
        self.readout_hidden = int(readout_hidden)
        self.envelope_exponent = int(envelope_exponent)
        self.activation = activation
        self.seed = int(seed)

        self.register_buffer(
            "frequencies",
            torch.arange(1, self.n_radial + 1, dtype=torch.float64) * (math.pi / self.cutoff),
            persistent=False,
        )
        self.register_buffer(
            "atomic_energy_scale", torch.tensor(float(atomic_energy_scale), dtype=torch.float64)
        )
        self.register_buffer(
            "atomic_energy_shift", torch.tensor(float(atomic_energy_shift), dtype=torch.float64)
        )

        f = self.channels
        self.embedding = nn.Parameter(torch.empty(len(self.species), f, dtype=torch.float64))
        self.messages = nn.ModuleList(
            _Message(f, self.n_radial + 1, activation) for _ in range(self.n_layers)
        )
        self.updates = nn.ModuleList(_Update(f, activation) for _ in range(self.n_layers))
        # no output bias: the isolated-atom energy is subtracted, which would cancel it
        self.readout = _mlp(f, self.readout_hidden, 1, activation, out_bias=False)
        self._init_weights()

    # ------------------------------------------------------------------ set-up
    @torch.no_grad()
    def _init_weights(self) -> None:
        """Xavier-uniform weights, zero biases, unit-normal embedding, all from ``seed``."""
        generator = torch.Generator().manual_seed(self.seed)
        self.embedding.copy_(
            torch.randn(self.embedding.shape, generator=generator, dtype=torch.float64)
        )
        for module in self.modules():
            if isinstance(module, _Linear):
                fan_out, fan_in = module.weight.shape
                module.weight.copy_(_xavier(module.weight.shape, fan_in, fan_out, generator))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, _Message):
                # as the Linear(n_radial, 3F) of PaiNN's filter network, with a zero bias row
                weight = module.filter_weight
                n_radial = weight.shape[0] - 1
                weight.zero_()
                weight[:n_radial] = _xavier(
                    (n_radial, weight.shape[1]), n_radial, weight.shape[1], generator
                )

    def get_config(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff,
            "channels": self.channels,
            "n_layers": self.n_layers,
            "n_radial": self.n_radial,
            "readout_hidden": self.readout_hidden,
            "envelope_exponent": self.envelope_exponent,
            "activation": self.activation,
            "seed": self.seed,
            # current values, so that a model rebuilt from its config alone has them too;
            # a file also carries them as buffers, which agree
            "atomic_energy_scale": float(self.atomic_energy_scale),
            "atomic_energy_shift": float(self.atomic_energy_shift),
            "repulsion": None if self.repulsion is None else self.repulsion.get_config(),
            "anchor_isolated_atom": self.anchor_isolated_atom,
        }

    def initialize(self, data: AtomsDataset) -> None:
        """Set the energy scale from ``data``, then E0 by least squares (see the base class).

        The scale is the RMS force component of the training labels, eV/Å, read as eV
        (per atom and per Å of typical displacement, as MACE and NequIP do); without
        forces, the standard deviation of the per-atom energies left after a composition
        fit of E0, eV; 1 when neither is available or both vanish. The shift is set to 0.
        E0 is fitted last, to what the network with this scale leaves of the energies.
        """
        scale = typical_atomic_energy_scale(data)
        with torch.no_grad():
            self.atomic_energy_scale.fill_(scale)
            self.atomic_energy_shift.fill_(0.0)
        # after the scale, which moves the atomic energies E0 is fitted to
        super().initialize(data)

    # ------------------------------------------------------------------ evaluation
    def _basis(self, r: torch.Tensor) -> torch.Tensor:
        """(E, n_radial + 1): ``sin(n pi r / r_c) / r`` times the envelope, then the envelope.

        The filters are linear in these, so every filter -- the constant term included --
        vanishes at the cutoff with the envelope: exactly 0 for r >= cutoff.
        """
        envelope = _envelope(r / self.cutoff, self.envelope_exponent).unsqueeze(1)
        sines = torch.sin(r.unsqueeze(1) * self.frequencies.to(r.dtype))
        return torch.cat([sines * (envelope / r.unsqueeze(1)), envelope], dim=1)

    def _interact(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        edges: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for message, update in zip(self.messages, self.updates, strict=True):
            if edges:
                ds, dv = message(s, v, edges)
                s = s + ds
                v = dv if v is None else v + dv
            if v is None:  # no edges at all: the vectors stay zero
                v = s.new_zeros((s.shape[0], 3, self.channels))
            ds, dv = update(s, v)
            s, v = s + ds, v + dv
        return s, v

    def features(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Final scalar and vector features of every atom.

        Parameters
        ----------
        graph
            The structures; geometry is taken from ``graph.edge_vectors()``.

        Returns
        -------
        s : torch.Tensor
            (N, F), invariant under rotations, translations and permutations of equal atoms.
        v : torch.Tensor
            (N, 3, F), equivariant: rotating the structure by ``R`` (positions ``R r``)
            maps ``v[n, :, f]`` to ``R @ v[n, :, f]``.
        """
        self.check_elements(graph)
        dtype = self.embedding.dtype
        s = self.embedding[self.species_index[graph.numbers]]
        vectors = graph.edge_vectors().to(dtype)
        i, j = graph.edge_index[0], graph.edge_index[1]
        if graph.cutoff > self.cutoff:
            # A graph built for a longer cutoff (a larger model's, a shared cache) carries
            # edges that would contribute zero at full cost: drop them.
            inside = (vectors * vectors).sum(1) < self.cutoff**2
            if not bool(inside.all()):
                keep = torch.nonzero(inside).squeeze(1)
                vectors, i, j = vectors[keep], i[keep], j[keep]
        r = torch.linalg.vector_norm(vectors, dim=1)
        unit = vectors / r.unsqueeze(1)
        basis = self._basis(r)
        # Chunks keep every per-edge temporary small: large fresh allocations cost page
        # faults, and small ones stay in cache between the elementwise passes.
        size = max(1, EDGE_CHUNK_BYTES // (3 * self.channels * vectors.element_size()))
        edges = [
            (i[k : k + size], j[k : k + size], unit[k : k + size], basis[k : k + size])
            for k in range(0, len(i), size)
        ]
        return self._interact(s, None, edges)

    def _isolated_scalars(self) -> torch.Tensor:
        """(n_species, F) final scalar features of an isolated atom of each element."""
        s, _ = self._interact(self.embedding, None, [])
        return s

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        """Per-atom energies without E0, shape (N,), eV."""
        s, _ = self.features(graph)
        y = self.readout(s).squeeze(1)
        if self.anchor_isolated_atom:
            channel = self.species_index[graph.numbers]
            y = y - self.readout(self._isolated_scalars()).squeeze(1)[channel]
        scale = self.atomic_energy_scale.to(y.dtype)
        shift = self.atomic_energy_shift.to(y.dtype)
        out = scale * y + shift
        return out if self.repulsion is None else out + self.repulsion(graph).to(out.dtype)


def _xavier(
    shape: Sequence[int], fan_in: int, fan_out: int, generator: torch.Generator
) -> torch.Tensor:
    """Glorot-uniform float64 weights drawn from ``generator``."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (2.0 * torch.rand(tuple(shape), generator=generator, dtype=torch.float64) - 1.0) * bound


def _envelope(d: torch.Tensor, p: int) -> torch.Tensor:
    """DimeNet's polynomial envelope of ``d = r / r_c`` without its ``1/d``; 0 for d >= 1.

    ``1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2)``: 1 at d = 0, and at d = 1
    it and its first two derivatives vanish (forces continuous, curvature too).
    """
    dp = d**p
    envelope = (
        1.0 - 0.5 * (p + 1) * (p + 2) * dp + p * (p + 2) * dp * d - 0.5 * p * (p + 1) * dp * d * d
    )
    return torch.where(d < 1.0, envelope, torch.zeros_like(envelope))
