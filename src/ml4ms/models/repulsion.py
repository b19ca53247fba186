"""Screened nuclear repulsion (Ziegler–Biersack–Littmark) as a fixed baseline of network potentials.

A network trained on near-equilibrium data has never seen two atoms closer than the
hottest training frame brought them, and nothing stops it from predicting attraction
there: a hot MD run then collapses two atoms onto each other. Adding the ZBL universal
repulsion (J. F. Ziegler, J. P. Biersack, U. Littmark, *The Stopping and Range of Ions in
Solids*, Pergamon 1985), switched off smoothly below the covalent bond length, makes
every short contact repulsive whatever the network learned; the network fits what is left,
as MACE and NequIP do with their ZBL option. The switch window of each element pair is
placed below the shortest distance of that pair in the training data, so the network never
has to cancel the repulsion on its own data (:meth:`ZBLRepulsion.fit_range`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data.graph import AtomicGraph
from ..descriptors.radial import smooth_step_down

#: e²/(4π ε0), eV Å.
COULOMB = 14.399645
#: Screening length a = A0 / (Z_i^0.23 + Z_j^0.23), Å.
A0 = 0.46850
#: Universal screening function φ(x) = Σ c_k exp(-d_k x).
SCREENING_C = (0.18175, 0.50986, 0.28022, 0.02817)
SCREENING_D = (3.19980, 0.94229, 0.40290, 0.20162)


def zbl_pair_energy(r: torch.Tensor, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
    """Unswitched ZBL energy of pairs at distance ``r`` (Å) with atomic numbers ``z_i``, ``z_j``: eV."""
    z_i, z_j = z_i.to(r.dtype), z_j.to(r.dtype)
    x = r * (z_i**0.23 + z_j**0.23) / A0
    phi = sum(c * torch.exp(-d * x) for c, d in zip(SCREENING_C, SCREENING_D))
    return COULOMB * z_i * z_j / r * phi


class ZBLRepulsion(nn.Module):
    """ZBL pair repulsion, switched off with a C² step over a window per element pair;
    per-atom energies (eV).

    Until :meth:`fit_range` sees training data, the window of a pair runs from ``inner``
    to ``outer`` times the sum of the two covalent radii (ASE's table). After it, with
    ``range="data"`` (the default), the window of each pair that occurs in the data ends
    at the shortest distance of that pair in the data (or at the end of the covalent
    window, if that comes first) and starts at ``data_inner`` times it: the repulsion is
    exactly zero on every training structure and owns only distances the data never
    reached.

    Parameters
    ----------
    species
        Atomic numbers the model knows.
    cutoff
        The model's cutoff, Å: the switching never extends past it.
    inner, outer
        Covalent window, as fractions of the covalent-radius sum (0.6 and 1.0: 1.58 to
        2.64 Å for Cu–Cu).
    range
        ``"data"``: :meth:`fit_range` moves the window below the training data;
        ``"covalent"``: the covalent window is kept.
    data_inner
        Start of a data window as a fraction of its end (0.75: full repulsion from
        1.61 Å for copper data whose closest pair is 2.15 Å).

    Notes
    -----
    ``E = Σ_pairs s(r) Z_i Z_j e² / (4π ε0 r) φ(r / a)``, half to each atom, with
    ``s = 1 - t³ (10 - 15 t + 6 t²)``, ``t = clip((r - r_in) / (r_out - r_in), 0, 1)``.
    The windows are buffers (``window_inner``, ``window_outer``, Å, indexed by the two
    atomic numbers), so model files and checkpoints carry them.

    Why the data window is the default: with the covalent window, the copper bond (2.55 Å)
    lies inside the switch (up to 2.64 Å), so the network must cancel the repulsion across
    its own data; a BPNN trained so for four minutes on EMT copper extrapolated that
    cancellation into an attraction at 1.9 Å and its 1200 K run diverged (step 191).
    """

    def __init__(self, species: Sequence[int], cutoff: float, inner: float = 0.6, outer: float = 1.0,
                 range: str = "data", data_inner: float = 0.75) -> None:
        super().__init__()
        from ..errors import ConfigError

        if not 0 < inner < outer:
            raise ValueError(f"need 0 < inner < outer, got inner={inner}, outer={outer}")
        if range not in RANGES:
            raise ConfigError(f"repulsion range must be one of {', '.join(RANGES)}; got {range!r}")
        if not 0 < data_inner < 1:
            raise ValueError(f"need 0 < data_inner < 1, got {data_inner}")
        self.inner, self.outer, self.range, self.data_inner = float(inner), float(outer), range, float(data_inner)
        self.cutoff = float(cutoff)
        self.species = sorted(int(z) for z in species)
        window_inner, window_outer = self._covalent_window()
        self.register_buffer("window_outer", window_outer)
        self.register_buffer("window_inner", window_inner)

    def _covalent_window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inner, outer) switch radii from the covalent radii, Å, indexed by two atomic numbers."""
        from ase.data import covalent_radii

        radii = torch.zeros(max(self.species) + 1, dtype=torch.float64)
        for z in self.species:
            radii[z] = float(covalent_radii[z])
        reach = radii[:, None] + radii[None, :]
        outer = torch.clamp(self.outer * reach, max=self.cutoff)
        return torch.minimum(self.inner * reach, 0.999 * outer), outer

    @torch.no_grad()
    def fit_range(self, data, batch_size: int = 16) -> dict[str, tuple[float, float]]:
        """Place the window of every pair found in ``data`` below its shortest distance there.

        Does nothing with ``range="covalent"``. The window ends at the pair's shortest
        distance or at the end of its covalent window, whichever is shorter, and starts at
        ``data_inner`` times that. Pairs that never come within the cutoff keep their
        covalent window.

        Parameters
        ----------
        data
            Training structures (:class:`~ml4ms.data.dataset.AtomsDataset`).
        batch_size
            Structures per neighbour-list batch.

        Returns
        -------
        dict
            ``{"Cu-Cu": (r_in, r_out), ...}`` in Å, for the pairs that moved.
        """
        from ase.data import chemical_symbols

        if self.range != "data":
            return {}
        size = self.window_outer.shape[0]
        shortest = torch.full((size * size,), math.inf, dtype=torch.float64)
        for graph in data.graphs(self.cutoff, batch_size=batch_size, dtype=torch.float64):
            i, j = graph.edge_index
            if i.numel() == 0:
                continue
            r = torch.linalg.vector_norm(graph.edge_vectors(), dim=1).cpu()
            z_i, z_j = graph.numbers[i].cpu(), graph.numbers[j].cpu()
            known = (z_i < size) & (z_j < size)  # other elements: the model's own check reports them
            shortest.scatter_reduce_(0, (z_i * size + z_j)[known], r[known], reduce="amin")
        shortest = shortest.view(size, size)
        found = torch.isfinite(shortest)
        covalent_inner, covalent_outer = self._covalent_window()
        # never past the covalent window: a pair the data only shows far apart (two
        # cations 4 Å apart) gets no wall where chemistry, not the nuclei, decides
        outer = torch.where(found, torch.minimum(shortest, covalent_outer), covalent_outer)
        inner = torch.where(found, self.data_inner * outer, covalent_inner)
        self.window_outer.copy_(outer.to(self.window_outer))
        self.window_inner.copy_(inner.to(self.window_inner))
        return {f"{chemical_symbols[a]}-{chemical_symbols[b]}": (float(inner[a, b]), float(outer[a, b]))
                for a, b in torch.nonzero(found).tolist() if a <= b}

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Per-atom repulsion energies, shape (N,), eV (differentiable in positions and cell)."""
        i, j = graph.edge_index
        vectors = graph.edge_vectors()
        r = torch.linalg.vector_norm(vectors, dim=1)
        z_i, z_j = graph.numbers[i], graph.numbers[j]
        r_out = self.window_outer.to(r.dtype)[z_i, z_j]
        r_in = self.window_inner.to(r.dtype)[z_i, z_j]
        close = r < r_out
        r, r_in, r_out = r[close], r_in[close], r_out[close]
        switch = smooth_step_down((r - r_in) / (r_out - r_in))
        # each ordered pair is listed twice (i->j and j->i): half of the pair energy per listing
        pair = 0.5 * switch * zbl_pair_energy(r, z_i[close], z_j[close])
        out = torch.zeros(graph.positions.shape[0], dtype=r.dtype, device=r.device)
        return out.index_add(0, i[close], pair)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # files written before the windows were buffers keep the covalent window they were trained with
        if prefix + "window_outer" not in state_dict and prefix + "window_inner" not in state_dict:
            inner, outer = self._covalent_window()
            state_dict[prefix + "window_inner"] = inner.to(self.window_inner)
            state_dict[prefix + "window_outer"] = outer.to(self.window_outer)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def get_config(self) -> str | dict[str, Any]:
        """``"zbl"`` for the defaults, else the options that differ from them."""
        options = {k: v for k, v in (("inner", self.inner), ("outer", self.outer), ("range", self.range),
                                     ("data_inner", self.data_inner)) if v != _DEFAULTS[k]}
        return "zbl" if not options else {"type": "zbl", **options}

    def extra_repr(self) -> str:
        return f"range={self.range}, inner={self.inner:g}, outer={self.outer:g}, data_inner={self.data_inner:g}"


#: Names accepted by the ``repulsion`` argument of the network potentials.
REPULSIONS = ("zbl",)
#: How the switch window of :class:`ZBLRepulsion` is chosen.
RANGES = ("data", "covalent")
_DEFAULTS = {"inner": 0.6, "outer": 1.0, "range": "data", "data_inner": 0.75}


def build_repulsion(spec: str | dict | None, species: Sequence[int], cutoff: float) -> ZBLRepulsion | None:
    """The repulsion a network's ``repulsion`` argument names (None: none).

    ``spec`` is ``"zbl"`` or ``{"type": "zbl", "range": "data" | "covalent", "inner": ...,
    "outer": ..., "data_inner": ...}`` (see :class:`ZBLRepulsion`).
    """
    from ..errors import ConfigError

    if spec is None:
        return None
    options = dict(spec) if isinstance(spec, dict) else {"type": spec}
    name = options.pop("type", None)
    if name not in REPULSIONS:
        raise ConfigError(f"repulsion must be one of {', '.join(REPULSIONS)} or null; got {name!r}")
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown repulsion option(s) {', '.join(unknown)}; known: {', '.join(_DEFAULTS)}")
    try:
        return ZBLRepulsion(species, cutoff, **options)
    except ValueError as error:
        raise ConfigError(f"repulsion: {error}") from None
