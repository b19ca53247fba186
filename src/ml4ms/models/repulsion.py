"""Screened nuclear repulsion (Ziegler–Biersack–Littmark) as a fixed baseline of network potentials.

A network trained on near-equilibrium data has never seen two atoms closer than the
hottest training frame brought them, and nothing stops it from predicting attraction
there: a hot MD run then collapses two atoms onto each other. Adding the ZBL universal
repulsion (J. F. Ziegler, J. P. Biersack, U. Littmark, *The Stopping and Range of Ions in
Solids*, Pergamon 1985), switched off smoothly below the covalent bond length, makes
every short contact repulsive whatever the network learned; the network fits what is left,
as MACE and NequIP do with their ZBL option.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """ZBL pair repulsion, switched off between ``inner`` and ``outer`` times the sum of the
    two atoms' covalent radii (ASE's table), with a C² step; per-atom energies (eV).

    Parameters
    ----------
    species
        Atomic numbers the model knows.
    cutoff
        The model's cutoff, Å: the switching never extends past it.
    inner, outer
        Start and end of the switch as fractions of the covalent-radius sum (defaults 0.6
        and 1.0: for Cu–Cu, 1.58 Å to 2.64 Å, below the 2.55 Å bond of the crystal only
        at the inner end, so the network corrects the tail near equilibrium).

    Notes
    -----
    ``E = Σ_pairs s(r) Z_i Z_j e² / (4π ε0 r) φ(r / a)``, half to each atom, with
    ``s = 1 - t³ (10 - 15 t + 6 t²)``, ``t = clip((r - r_in) / (r_out - r_in), 0, 1)``.
    """

    def __init__(self, species: Sequence[int], cutoff: float, inner: float = 0.6, outer: float = 1.0) -> None:
        super().__init__()
        from ase.data import covalent_radii

        if not 0 < inner < outer:
            raise ValueError(f"need 0 < inner < outer, got inner={inner}, outer={outer}")
        self.inner, self.outer = float(inner), float(outer)
        radii = torch.zeros(int(max(species)) + 1, dtype=torch.float64)
        for z in species:
            radii[int(z)] = float(covalent_radii[int(z)])
        self.register_buffer("radii", radii, persistent=False)
        self.cutoff = float(cutoff)

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Per-atom repulsion energies, shape (N,), eV (differentiable in positions and cell)."""
        i, j = graph.edge_index
        vectors = graph.edge_vectors()
        r = torch.linalg.vector_norm(vectors, dim=1)
        z_i, z_j = graph.numbers[i], graph.numbers[j]
        radii = self.radii.to(r.dtype)
        reach = radii[z_i] + radii[z_j]
        r_out = torch.clamp(self.outer * reach, max=self.cutoff)
        r_in = torch.minimum(self.inner * reach, 0.999 * r_out)
        close = r < r_out
        r, r_in, r_out = r[close], r_in[close], r_out[close]
        switch = smooth_step_down((r - r_in) / (r_out - r_in))
        # each ordered pair is listed twice (i->j and j->i): half of the pair energy per listing
        pair = 0.5 * switch * zbl_pair_energy(r, z_i[close], z_j[close])
        out = torch.zeros(graph.positions.shape[0], dtype=r.dtype, device=r.device)
        return out.index_add(0, i[close], pair)

    def extra_repr(self) -> str:
        return f"inner={self.inner:g}, outer={self.outer:g}"


#: Names accepted by the ``repulsion`` argument of the network potentials.
REPULSIONS = ("zbl",)


def build_repulsion(name: str | None, species: Sequence[int], cutoff: float) -> ZBLRepulsion | None:
    """The repulsion a network's ``repulsion`` argument names (None: none)."""
    from ..errors import ConfigError

    if name is None:
        return None
    if name not in REPULSIONS:
        raise ConfigError(f"repulsion must be one of {', '.join(REPULSIONS)} or null; got {name!r}")
    return ZBLRepulsion(species, cutoff)
