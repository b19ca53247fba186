"""Atom-centred symmetry functions (ACSF) of Behler and Parrinello, as DScribe defines them.

For a centre atom ``i`` with neighbours ``j, k`` within the cutoff ``r_c`` and the
cosine cutoff function

.. math::

    f_c(r) = \\tfrac12 \\left[\\cos(\\pi r / r_c) + 1\\right] \\quad (r < r_c), \\qquad 0 \\text{ else},

the functions are (Behler, J. Chem. Phys. 134, 074106 (2011))

.. math::

    G^1_i &= \\sum_j f_c(r_{ij}) \\\\
    G^2_i &= \\sum_j e^{-\\eta (r_{ij} - R_s)^2} f_c(r_{ij}) \\\\
    G^3_i &= \\sum_j \\cos(\\kappa r_{ij}) f_c(r_{ij}) \\\\
    G^4_i &= 2^{1-\\zeta} \\sum_{j<k} (1 + \\lambda \\cos\\theta_{ijk})^\\zeta
             e^{-\\eta (r_{ij}^2 + r_{ik}^2 + r_{jk}^2)} f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk}) \\\\
    G^5_i &= 2^{1-\\zeta} \\sum_{j<k} (1 + \\lambda \\cos\\theta_{ijk})^\\zeta
             e^{-\\eta (r_{ij}^2 + r_{ik}^2)} f_c(r_{ij}) f_c(r_{ik})

with the sums of G1-G3 resolved by the species of ``j`` and those of G4/G5 by the
unordered species pair of ``(j, k)``; each unordered pair of neighbours counts once
(DScribe's convention). Distances are in Å, ``eta`` in Å⁻², ``kappa`` in Å⁻¹, ``R_s``
in Å; ``zeta`` and ``lambda`` (±1) are dimensionless. The species of the centre is not
encoded, as in DScribe.

Feature order (DScribe 2.1's): for each neighbour species ``s`` in ascending atomic
number, ``[G1, G2 for each (eta, R_s), G3 for each kappa]``; then for each unordered
species pair ``(a, b)``, ``a >= b`` in species index, ordered ``(0,0), (1,0), (1,1),
(2,0), ...``, ``[G4 for each (eta, zeta, lambda), G5 for each (eta, zeta, lambda)]``.

Implementation: radial terms are computed per edge of the :class:`AtomicGraph` and
summed with ``index_add``; angular terms per triplet, a pair of edges sharing a centre,
built from the edge list with vectorised index arithmetic (memory linear in the number
of triplets). Everything is differentiable through :meth:`AtomicGraph.edge_vectors`, so
forces and stresses of a model built on ACSF come from autograd as a vector-Jacobian
product -- no descriptor Jacobian is materialised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from ase.data import chemical_symbols

from ..data.graph import AtomicGraph
from ..errors import ConfigError, DataError, UnknownElementError
from .base import Descriptor, atomic_numbers_of

__all__ = ["ACSF", "standard_acsf"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in _DTYPES.values():
        return value
    if isinstance(value, str) and value in _DTYPES:
        return _DTYPES[value]
    raise ConfigError(f"dtype must be 'float64' or 'float32', got {value!r}")


def _params(value, columns: int | None, name: str, names: str) -> np.ndarray:
    """Validate a parameter table: (n, columns) floats, or (n,) when ``columns`` is None."""
    if value is None:
        return np.zeros((0,) if columns is None else (0, columns))
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be numbers ({names}), got {value!r}") from err
    if array.size == 0:
        return np.zeros((0,) if columns is None else (0, columns))
    if columns is None:
        if array.ndim != 1:
            raise ConfigError(f"{name} must be a vector of {names}, got shape {array.shape}")
    elif array.ndim != 2 or array.shape[1] != columns:
        raise ConfigError(
            f"{name} must be a matrix with {columns} columns ({names}), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} contains NaN or inf: {array.tolist()}")
    return array


class ACSF(Descriptor):
    """Behler-Parrinello atom-centred symmetry functions, numerically equal to DScribe's.

    Parameters
    ----------
    species
        Elements that may occur, as symbols or atomic numbers (all structures that will
        ever be described, not only the present one).
    r_cut
        Cutoff radius of the cosine cutoff function, Å (> 0).
    g2_params
        Array-like of shape (n_g2, 2): ``(eta [Å⁻²], R_s [Å])`` of each G2 function.
    g3_params
        Array-like of shape (n_g3,): ``kappa`` [Å⁻¹] of each G3 function.
    g4_params
        Array-like of shape (n_g4, 3): ``(eta [Å⁻²], zeta, lambda)`` of each G4 function.
    g5_params
        Array-like of shape (n_g5, 3): ``(eta [Å⁻²], zeta, lambda)`` of each G5 function.
    periodic
        Respect the periodic boundary conditions of the structures. False (DScribe's
        default) treats every structure as an isolated cluster, even if its ``pbc`` is set.
    dtype
        ``"float64"`` (default) or ``"float32"``: the dtype of the features.

    Notes
    -----
    G1 (the cutoff-weighted coordination number) is always included, as in DScribe.
    The number of features is ``(1 + n_g2 + n_g3) * n_species + (n_g4 + n_g5) *
    n_species (n_species + 1) / 2``. The centre's own species is not encoded: a
    model usually keeps one network per central species (Behler-Parrinello).

    ``zeta`` should be >= 1 for the gradient to be finite at ``cos(theta) = -lambda``.

    References
    ----------
    J. Behler, "Atom-centered symmetry functions for constructing high-dimensional
    neural network potentials", J. Chem. Phys. 134, 074106 (2011).

    Examples
    --------
    >>> from ase.build import molecule
    >>> acsf = ACSF(["H", "O"], r_cut=6.0, g2_params=[[1.0, 1.0]], g4_params=[[0.01, 1, -1]])
    >>> acsf.create(molecule("H2O")).shape
    (3, 7)
    """

    def __init__(
        self,
        species: Sequence[int | str],
        r_cut: float,
        g2_params=None,
        g3_params=None,
        g4_params=None,
        g5_params=None,
        periodic: bool = False,
        dtype: str | torch.dtype = "float64",
    ) -> None:
        super().__init__()
        try:
            self.species = atomic_numbers_of(species)
        except ValueError as err:
            raise ConfigError(f"species: {err}") from err
        try:
            r_cut = float(r_cut)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"r_cut must be a number of Å, got {r_cut!r}") from err
        if not (r_cut > 0 and math.isfinite(r_cut)):
            raise ConfigError(f"r_cut must be a positive number of Å, got {r_cut}")
        self.r_cut = r_cut
        self.cutoff = r_cut
        self.periodic = bool(periodic)
        self.dtype = _dtype(dtype)
        self.g2_params = _params(g2_params, 2, "g2_params", "eta, R_s")
        self.g3_params = _params(g3_params, None, "g3_params", "kappa")
        self.g4_params = _params(g4_params, 3, "g4_params", "eta, zeta, lambda")
        self.g5_params = _params(g5_params, 3, "g5_params", "eta, zeta, lambda")
        for name, table in (("g2_params", self.g2_params), ("g4_params", self.g4_params),
                            ("g5_params", self.g5_params)):
            if (table[:, 0] < 0).any():
                raise ConfigError(f"{name}: eta must be >= 0, got {table[:, 0].tolist()}")
        for name, table in (("g4_params", self.g4_params), ("g5_params", self.g5_params)):
            if (table[:, 1] <= 0).any():
                raise ConfigError(f"{name}: zeta must be > 0, got {table[:, 1].tolist()}")

        n = len(self.species)
        self.n_species = n
        self.n_pairs = n * (n + 1) // 2
        self.n_radial = 1 + len(self.g2_params) + len(self.g3_params)
        self.n_angular = len(self.g4_params) + len(self.g5_params)
        index = torch.full((max(self.species) + 1,), -1, dtype=torch.long)
        index[torch.tensor(self.species)] = torch.arange(n)
        self.register_buffer("_species_index", index, persistent=False)
        # Angular terms: distinct (zeta, lambda) and eta values, and which each function uses.
        for g in ("g4", "g5"):
            table = getattr(self, f"{g}_params")
            zl, zl_index = np.unique(table[:, 1:], axis=0, return_inverse=True)
            eta, eta_index = np.unique(table[:, 0], return_inverse=True)
            self.register_buffer(f"_{g}_zeta", torch.tensor(zl[:, 0].copy()), persistent=False)
            self.register_buffer(f"_{g}_lambda", torch.tensor(zl[:, 1].copy()), persistent=False)
            self.register_buffer(f"_{g}_eta", torch.tensor(eta), persistent=False)
            self.register_buffer(f"_{g}_zl_index", torch.tensor(zl_index.reshape(-1)), persistent=False)
            self.register_buffer(f"_{g}_eta_index", torch.tensor(eta_index.reshape(-1)), persistent=False)
        self.register_buffer("_g2", torch.tensor(self.g2_params), persistent=False)
        self.register_buffer("_g3", torch.tensor(self.g3_params), persistent=False)

    # ------------------------------------------------------------------ contract
    @property
    def per_atom(self) -> bool:
        return True

    def get_number_of_features(self) -> int:
        return self.n_radial * self.n_species + self.n_angular * self.n_pairs

    def species_pairs(self) -> list[tuple[int, int]]:
        """Unordered species pairs (atomic numbers, lower first) in feature order."""
        return [(self.species[b], self.species[a]) for a in range(self.n_species) for b in range(a + 1)]

    def feature_labels(self) -> list[str]:
        labels = []
        for z in self.species:
            s = chemical_symbols[z]
            labels.append(f"G1 {s}")
            labels += [f"G2 {s} eta={eta:g} Rs={rs:g}" for eta, rs in self.g2_params]
            labels += [f"G3 {s} kappa={kappa:g}" for kappa in self.g3_params]
        for za, zb in self.species_pairs():
            pair = f"{chemical_symbols[za]}-{chemical_symbols[zb]}"
            for g in ("G4", "G5"):
                table = self.g4_params if g == "G4" else self.g5_params
                labels += [f"{g} {pair} eta={e:g} zeta={z:g} lambda={lam:g}" for e, z, lam in table]
        return labels

    def extra_repr(self) -> str:
        species = ", ".join(chemical_symbols[z] for z in self.species)
        return (f"species=[{species}], r_cut={self.r_cut:g}, n_g2={len(self.g2_params)}, "
                f"n_g3={len(self.g3_params)}, n_g4={len(self.g4_params)}, "
                f"n_g5={len(self.g5_params)}, periodic={self.periodic}")

    # ------------------------------------------------------------------ features
    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """ACSF of every atom of the batch.

        Parameters
        ----------
        graph
            Built with a cutoff >= ``r_cut`` (e.g. by :meth:`graph`). Set
            ``positions.requires_grad_()`` (or pass strained positions and cell with
            :meth:`AtomicGraph.replace`) to differentiate.

        Returns
        -------
        Tensor
            Shape (N, F), dtype of the graph's positions.
        """
        positions = graph.positions
        n_atoms = positions.shape[0]
        dtype = positions.dtype
        if graph.cutoff < self.r_cut:
            raise ValueError(f"the graph's cutoff ({graph.cutoff:g} Å) is smaller than r_cut "
                             f"({self.r_cut:g} Å)")
        species = self._species_of(graph)
        bad = ~torch.isfinite(positions).all(dim=1)
        if bool(bad.any()):
            atom = int(torch.nonzero(bad)[0, 0])
            raise DataError(f"positions contain NaN or inf (atom {atom})",
                            index=int(graph.batch[atom]), field="positions")

        i, j = graph.edge_index
        shifts = graph.shifts
        if not self.periodic and shifts.shape[0]:
            keep = (shifts == 0).all(dim=1)
            if not bool(keep.all()):
                i, j, shifts = i[keep], j[keep], shifts[keep]
        vectors = positions[j] - positions[i]
        if self.periodic and shifts.shape[0]:
            vectors = vectors + torch.einsum("ea,eab->eb", shifts, graph.cell[graph.batch[i]])
        # keep the edges inside r_cut (the graph may have been built with a larger cutoff)
        with torch.no_grad():
            inside = (vectors * vectors).sum(dim=1) < self.r_cut ** 2
        if not bool(inside.all()):
            i, j, vectors = i[inside], j[inside], vectors[inside]
        r = torch.linalg.vector_norm(vectors, dim=1)
        fc = 0.5 * (torch.cos(r * (math.pi / self.r_cut)) + 1.0)
        sj = species[j]

        # --- G1, G2, G3: one row per edge, summed per (centre, neighbour species)
        columns = [fc[:, None]]
        if len(self.g2_params):
            g2 = self._g2.to(dtype)
            columns.append(torch.exp(-g2[:, 0] * (r[:, None] - g2[:, 1]) ** 2) * fc[:, None])
        if len(self.g3_params):
            columns.append(torch.cos(r[:, None] * self._g3.to(dtype)) * fc[:, None])
        radial = torch.cat(columns, dim=1) if len(columns) > 1 else columns[0]
        out_radial = torch.zeros(n_atoms * self.n_species, self.n_radial, dtype=dtype,
                                 device=positions.device)
        out_radial = out_radial.index_add(0, i * self.n_species + sj, radial)
        out_radial = out_radial.reshape(n_atoms, self.n_species * self.n_radial)
        if not self.n_angular:
            return out_radial

        # --- G4, G5: one row per triplet (two edges sharing a centre), summed per
        # segment = (centre, unordered neighbour species pair)
        key = i * self.n_species + sj
        if key.shape[0] > 1 and bool((key[1:] < key[:-1]).any()):
            order = torch.argsort(key, stable=True)
            key, vectors, r, fc = key[order], vectors[order], r[order], fc[order]
        a, b, segment = _triplets(key, n_atoms, self.n_species)
        parts = []
        if len(self.g4_params):
            parts.append(self._angular(a, b, segment, vectors, r, fc, n_atoms, "g4"))
        if len(self.g5_params):
            parts.append(self._angular(a, b, segment, vectors, r, fc, n_atoms, "g5"))
        angular = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        return torch.cat([out_radial, angular.reshape(n_atoms, -1)], dim=1)

    def _species_of(self, graph: AtomicGraph) -> torch.Tensor:
        """Species index of every atom; an error naming the structure for unknown elements."""
        numbers = graph.numbers
        table = self._species_index.to(numbers.device)
        known = (numbers >= 0) & (numbers < table.shape[0])
        species = torch.where(known, table[numbers.clamp(0, table.shape[0] - 1)], -1)
        unknown = species < 0
        if bool(unknown.any()):
            atom = int(torch.nonzero(unknown)[0, 0])
            z = int(numbers[atom])
            name = chemical_symbols[z] if 0 < z < len(chemical_symbols) else str(z)
            known_names = ", ".join(chemical_symbols[s] for s in self.species)
            raise UnknownElementError(
                f"element {name} (atom {atom}) not in the descriptor's species ({known_names}); "
                "pass it in species=", index=int(graph.batch[atom]), field="numbers")
        return species

    def _angular(self, a, b, segment, vectors, r, fc, n_atoms: int, kind: str) -> torch.Tensor:
        """G4 or G5 summed per (centre, species pair): shape (N, n_pairs, n_kind)."""
        dtype = vectors.dtype
        ones = vectors.new_ones(3)  # row sums of (T, 3) as a matrix-vector product: faster
        if kind == "g4":
            # r_jk must be inside the cutoff too: drop the other triplets before the work
            with torch.no_grad():
                d = vectors.index_select(0, b) - vectors.index_select(0, a)
                inside = (d * d) @ ones < self.r_cut ** 2
            if not bool(inside.all()):
                a, b, segment = a[inside], b[inside], segment[inside]
        # one gather per side of the edge table [vector, r, f_c]
        table = torch.cat([vectors, r[:, None], fc[:, None]], dim=1)
        ta, tb = table.index_select(0, a), table.index_select(0, b)
        va, vb = ta[:, :3], tb[:, :3]
        ra, rb = ta[:, 3], tb[:, 3]
        cos = (((va * vb) @ ones) / (ra * rb)).clamp(-1.0, 1.0)
        radial_sq = ra * ra + rb * rb
        cut = ta[:, 4] * tb[:, 4]
        if kind == "g4":
            d = vb - va
            rjk_sq = (d * d) @ ones
            radial_sq = radial_sq + rjk_sq
            cut = cut * (0.5 * (torch.cos(torch.sqrt(rjk_sq) * (math.pi / self.r_cut)) + 1.0))
        zetas = getattr(self, f"_{kind}_zeta").tolist()
        lambdas = getattr(self, f"_{kind}_lambda").tolist()
        eta = getattr(self, f"_{kind}_eta").to(dtype)
        # (1 + lambda cos)^zeta for each distinct (zeta, lambda): (T, K); the factor
        # 2^(1-zeta) is applied to the sums, and powers of one base share their products
        columns = []
        for lam in sorted(set(lambdas)):
            base = 1.0 + lam * cos
            if abs(lam) > 1:
                base = base.clamp_min(0.0)
            wanted = [z for z, l_ in zip(zetas, lambdas) if l_ == lam]
            columns += list(zip([(z, lam) for z in wanted], _powers(base, wanted)))
        order = {key: k for k, key in enumerate(zip(zetas, lambdas))}
        columns.sort(key=lambda item: order[item[0]])
        angle = torch.stack([column for _, column in columns], dim=1)
        # exp(-eta sum r^2) times the cutoff functions for each distinct eta: (T, M)
        gauss = torch.exp(-eta * radial_sq[:, None]) * cut[:, None]
        sums = _segment_outer_sum(angle, gauss, segment, n_atoms * self.n_pairs)  # (S, K, M)
        scale = torch.tensor([2.0 ** (1.0 - z) for z in zetas], dtype=dtype, device=sums.device)
        sums = sums * scale[:, None]
        zl_index = getattr(self, f"_{kind}_zl_index")
        eta_index = getattr(self, f"_{kind}_eta_index")
        out = sums.reshape(sums.shape[0], -1)[:, zl_index * len(eta) + eta_index]
        return out.reshape(n_atoms, self.n_pairs, -1)


def _powers(x: torch.Tensor, exponents: list[float]) -> list[torch.Tensor]:
    """``[x ** z for z in exponents]``; integer ``1 <= z <= 64`` by shared repeated squaring.

    The squares ``x^2, x^4, ...`` are computed once for all exponents (for zeta in
    {1, 2, 4, 16}: four products in all), which is faster than ``pow`` and keeps the
    gradient exact at ``x = 0``.
    """
    squares = [x]
    out = []
    for z in exponents:
        if z != int(z) or not 1 <= z <= 64:
            out.append(torch.pow(x, z))
            continue
        n, bit, result = int(z), 0, None
        while n:
            if bit == len(squares):
                squares.append(squares[-1] * squares[-1])
            if n & 1:
                result = squares[bit] if result is None else result * squares[bit]
            n >>= 1
            bit += 1
        out.append(result)
    return out


def _triplets(key: torch.Tensor, n_atoms: int, n_species: int):
    """Pairs of edges sharing a centre, grouped by (centre, unordered neighbour-species pair).

    Parameters
    ----------
    key
        Tensor of shape (E,), int64, non-decreasing: ``centre * n_species + species`` of
        each edge's neighbour.
    n_atoms, n_species
        Number of atoms N and of species S.

    Returns
    -------
    a, b, segment
        Tensors of shape (T,), int64: the two edges of each triplet (each unordered pair
        of distinct edges once) and its segment ``centre * n_pairs + pair`` with
        ``pair = hi (hi + 1) / 2 + lo`` (``hi >= lo`` species indices), non-decreasing.
        Memory is linear in T.
    """
    device = key.device
    counts = torch.bincount(key, minlength=n_atoms * n_species)
    starts = (torch.cumsum(counts, 0) - counts).reshape(n_atoms, n_species)
    counts = counts.reshape(n_atoms, n_species)
    hi = torch.tensor([p for p in range(n_species) for _ in range(p + 1)], device=device)
    lo = torch.tensor([q for p in range(n_species) for q in range(p + 1)], device=device)
    same = hi == lo
    n_hi, n_lo = counts[:, hi], counts[:, lo]
    # a segment of one species with n edges has n (n - 1) / 2 pairs, else n_hi n_lo
    sizes = torch.where(same, n_hi * (n_hi - 1) // 2, n_hi * n_lo).reshape(-1)
    segment = torch.repeat_interleave(torch.arange(sizes.shape[0], device=device), sizes)
    rank = torch.arange(segment.shape[0], device=device) - (torch.cumsum(sizes, 0) - sizes)[segment]
    start_lo = starts[:, lo].reshape(-1)[segment]
    start_hi = starts[:, hi].reshape(-1)[segment]
    # same species: rank -> (p, q), p < q, rank = q (q - 1) / 2 + p; float root, exact fix-up
    q = torch.floor((1.0 + torch.sqrt(1.0 + 8.0 * rank.to(torch.float64))) / 2.0).to(torch.long)
    q = q - (q * (q - 1) // 2 > rank).long()
    q = q + ((q + 1) * q // 2 <= rank).long()
    p = rank - q * (q - 1) // 2
    if n_species == 1:
        return start_lo + p, start_hi + q, segment
    # different species: rank -> (row in the lo block, column in the hi block)
    width = n_hi.reshape(-1)[segment].clamp_min(1)
    is_same = same[torch.remainder(segment, hi.shape[0])]
    a = torch.where(is_same, start_lo + p, start_lo + torch.div(rank, width, rounding_mode="floor"))
    b = torch.where(is_same, start_hi + q, start_hi + torch.remainder(rank, width))
    return a, b, segment


def _segment_outer_sum(x: torch.Tensor, y: torch.Tensor, segment: torch.Tensor, n_segments: int):
    """``out[s] = sum over rows t of segment s of outer(x[t], y[t])``, shape (n_segments, K, M).

    ``segment`` must be non-decreasing. Rows are laid out in zero-padded blocks, one per
    segment, and reduced by batched matrix products, without materialising the (T, K, M)
    products. Segments are grouped by length (powers of two) and each group is padded
    only to its own longest segment, so the padded memory stays below about twice T.
    """
    n_rows, k_dim = x.shape
    m_dim = y.shape[1]
    out = x.new_zeros(n_segments, k_dim, m_dim)
    if n_rows == 0:
        return out + 0.0 * (x.sum() + y.sum())  # keeps the graph connected
    counts = torch.bincount(segment, minlength=n_segments)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n_rows, device=x.device) - start[segment]
    group = torch.ceil(torch.log2(counts.clamp_min(1).to(torch.float64))).to(torch.long)
    group = torch.where(counts > 0, group, -1)
    present = torch.unique(group)
    present = present[present >= 0].tolist()
    for g in present:
        members = torch.nonzero(group == g).reshape(-1)  # segments of this group, ascending
        width = int(counts[members].max())
        if len(present) == 1:
            rows = None
            seg_rows = segment
        else:
            rows = torch.nonzero((group == g)[segment]).reshape(-1)
            seg_rows = segment[rows]
        local = torch.zeros(n_segments, dtype=torch.long, device=x.device)
        local[members] = torch.arange(members.shape[0], device=x.device)
        slot = local[seg_rows] * width + (rank if rows is None else rank[rows])
        xs = x if rows is None else x[rows]
        ys = y if rows is None else y[rows]
        n_padded = members.shape[0] * width
        if slot.shape[0] == n_padded:  # no padding needed: the rows are already in place
            xp, yp = xs, ys
        else:
            xp = xs.new_zeros(n_padded, k_dim).index_copy(0, slot, xs)
            yp = ys.new_zeros(n_padded, m_dim).index_copy(0, slot, ys)
        block = torch.bmm(xp.reshape(-1, width, k_dim).transpose(1, 2), yp.reshape(-1, width, m_dim))
        out = out.index_copy(0, members, block)
    return out


def standard_acsf(
    species: Sequence[int | str],
    r_cut: float,
    n_radial: int = 16,
    n_angular: int = 4,
    zetas: Sequence[float] = (1.0, 2.0, 4.0, 16.0),
    lambdas: Sequence[float] = (-1.0, 1.0),
    r_min: float = 0.5,
    angular: str = "g4",
    periodic: bool = False,
    dtype: str | torch.dtype = "float64",
) -> ACSF:
    """A standard, general-purpose ACSF set: shifted radial and centred angular Gaussians.

    Radial (G2): ``n_radial`` Gaussians with centres ``R_s`` evenly spaced from ``r_min``
    with step ``d = (r_cut - r_min) / n_radial`` (the last centre is ``r_cut - d``), each
    of width ``sigma = d``, i.e. ``eta = 1 / (2 d^2)``: neighbouring Gaussians cross at
    ``exp(-1/8)`` of their peak, so every distance in ``[r_min, r_cut)`` is resolved
    (the "shifted" grid of Gastegger et al. and of SchNet-style smearing).

    Angular (G4, or G5 with ``angular="g5"``): ``n_angular`` centred Gaussians (``R_s = 0``)
    with ``eta_m = (n_angular^(m / n_angular) / r_cut)^2``, ``m = 0..n_angular-1``
    (Imbalzano et al.'s "centred" grid: widths from ``r_cut`` down to
    ``r_cut / n_angular^((n-1)/n)``), each combined with every ``zeta`` in ``zetas`` and
    ``lambda`` in ``lambdas``; G4 parameters are ordered ``(zeta, lambda)``-major, ``eta``
    fastest.

    With the defaults and one element this gives ``1 + 16 + 4 * 4 * 2 = 49`` functions
    (G1, 16 G2, 32 G4); with ``S`` elements, ``17 S + 32 S (S + 1) / 2``.

    Parameters
    ----------
    species
        Elements, as symbols or atomic numbers.
    r_cut
        Cutoff radius, Å.
    n_radial
        Number of G2 functions per neighbour species (>= 1).
    n_angular
        Number of angular ``eta`` values (>= 1).
    zetas
        Angular resolutions ``zeta`` (>= 1).
    lambdas
        Signs ``lambda`` (each +1 or -1).
    r_min
        Smallest G2 centre, Å (0 <= r_min < r_cut).
    angular
        ``"g4"`` (default), ``"g5"`` or ``"none"``.
    periodic, dtype
        As in :class:`ACSF`.

    Returns
    -------
    ACSF

    References
    ----------
    J. Behler, J. Chem. Phys. 134, 074106 (2011);
    M. Gastegger, L. Schwiedrzik, M. Bittermann, F. Berzsenyi, P. Marquetand,
    J. Chem. Phys. 148, 241709 (2018);
    G. Imbalzano, A. Anelli, D. Giofré, S. Klees, J. Behler, M. Ceriotti,
    J. Chem. Phys. 148, 241730 (2018).
    """
    r_cut = float(r_cut)
    if not (r_cut > 0 and math.isfinite(r_cut)):
        raise ConfigError(f"r_cut must be a positive number of Å, got {r_cut}")
    if int(n_radial) < 1 or int(n_angular) < 1:
        raise ConfigError(f"n_radial and n_angular must be >= 1, got {n_radial}, {n_angular}")
    if not 0 <= r_min < r_cut:
        raise ConfigError(f"r_min must be in [0, r_cut), got {r_min}")
    if angular not in ("g4", "g5", "none"):
        raise ConfigError(f"angular must be 'g4', 'g5' or 'none', got {angular!r}")
    if any(lam not in (-1, 1) for lam in lambdas):
        raise ConfigError(f"lambdas must be +1 or -1, got {list(lambdas)}")
    if any(z < 1 for z in zetas):
        raise ConfigError(f"zetas must be >= 1, got {list(zetas)}")
    step = (r_cut - r_min) / int(n_radial)
    centres = r_min + step * np.arange(int(n_radial))
    g2 = np.stack([np.full(int(n_radial), 1.0 / (2.0 * step**2)), centres], axis=1)
    n = int(n_angular)
    etas = (n ** (np.arange(n) / n) / r_cut) ** 2
    g_angular = np.array([[eta, z, lam] for z in zetas for lam in lambdas for eta in etas])
    return ACSF(
        species,
        r_cut,
        g2_params=g2,
        g4_params=g_angular if angular == "g4" else None,
        g5_params=g_angular if angular == "g5" else None,
        periodic=periodic,
        dtype=dtype,
    )
