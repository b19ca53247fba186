"""SOAP power spectrum as a differentiable torch module, number for number equal to DScribe's.

The Smooth Overlap of Atomic Positions (Bartók, Kondor, Csányi, Phys. Rev. B 87, 184115
(2013)) describes the environment of a centre by the rotation-invariant power spectrum of
its neighbour density. With ``rbf="gto"`` this module reproduces DScribe's ``SOAP``
(Himanen et al., Comput. Phys. Commun. 247, 106949 (2020)) -- the same argument names, the
same feature order and normalisation, the same numbers (tested to 1e-6 relative on
random periodic, triclinic, small-cell and molecular structures) -- so a DScribe user
switches by changing the import::

    from ml4ms.descriptors import SOAP        # was: from dscribe.descriptors import SOAP
    soap = SOAP(species=["Cu", "O"], r_cut=5.0, n_max=8, l_max=6, sigma=0.5, periodic=True)
    X = soap.create(atoms)                    # (n_atoms, F), DScribe's order

and, being a :class:`torch.nn.Module` on :class:`~ml4ms.data.graph.AtomicGraph`, it is
differentiable in positions and cell, so models built on it get forces and stresses from
autograd as a vector-Jacobian product (no descriptor Jacobian is ever stored)::

    graph = soap.graph(images)
    features = soap(graph)                    # (N, F) per atom

Definitions (what is computed, in DScribe's conventions)
---------------------------------------------------------
Neighbour density of centre i, one channel per species Z:
``ρ_i^Z(r) = Σ_{j ∈ Z} w(r_ij) exp(-|r - r_ij|² / (2σ²))``, the centre itself included
(its Gaussian sits at r = 0), with ``w`` the optional ``weighting`` (1 by default).
Coefficients ``c_nlm^Z = ∫ g_nl(r) Y_lm(r̂) ρ^Z(r) d³r`` with the radial basis of
:mod:`ml4ms.descriptors.radial` and real spherical harmonics
(:mod:`ml4ms.descriptors.spherical_harmonics`). Power spectrum::

    p_{n n' l}^{Z Z'} = π √(8 / (2l + 1)) Σ_m c_nlm^Z c_n'lm^Z'

kept for ``Z <= Z'`` (sorted atomic numbers) and, when ``Z = Z'``, ``n <= n'``. Feature
order: species pair, then l, then n, then n' -- DScribe's. No mapping of order or
normalisation is needed to compare with DScribe. Units: the features carry the units of
the density integrals (DScribe's); nothing is normalised to unit length.

Differences from DScribe (all deliberate)
-----------------------------------------
- ``rbf="polynomial"`` is not provided; ``rbf="gto_smooth"`` is the second basis (a C²
  cutoff at ``r_cut``, see :mod:`~ml4ms.descriptors.radial`).
- ``periodic=True`` with a structure whose ``pbc`` is all False describes it as
  isolated (DScribe raises when the cell is empty); a periodic direction needs a cell
  of non-zero volume (:class:`~ml4ms.errors.DataError` otherwise).
- :meth:`derivatives` is exact (autograd) for every setting, periodic ones included;
  DScribe falls back to finite differences for periodic systems.
- Cartesian ``centers`` outside the cell see every periodic image; DScribe's extended
  cell can miss some for such points (inside the cell the results agree).
- :meth:`derivatives` of an averaged descriptor for several systems has shape
  (n_systems, 1, n_atoms, 3, F), the single-system shape stacked.
- The input dictionaries (``weighting``, ``compression``) are copied, not modified.
- ``dtype="float32"`` computes in single precision (DScribe computes in double and
  casts the output); ``n_jobs`` uses threads, not processes.

Agreement with DScribe 2.1.2 (tests/descriptors/test_soap.py, 60 random structures and
every option): about 1e-11 of the largest feature; every entry within 1e-6 relative, or
within 1e-10 of the largest feature for the entries that cancel to nearly zero. The
basis coefficients are computed exactly as DScribe does (``scipy.linalg.sqrtm`` of
``scipy.linalg.inv`` of the overlap): the Löwdin coefficients are large and of alternating
sign, and another inversion routine changes the features at the 1e-9 level.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from ..data.graph import AtomicGraph
from ..data.neighbors import neighbor_list
from ..errors import DataError, UnknownElementError
from .base import Descriptor, EdgeJacobian, _chunks, atomic_numbers_of
from .radial import GTORadialBasis, SmoothGTORadialBasis
from .spherical_harmonics import L_MAX, block_factors, solid_harmonic_blocks

__all__ = ["SOAP"]

_WEIGHTING_FUNCTIONS = ("poly", "pow", "exp")
_COMPRESSION_MODES = ("off", "mu2", "mu1nu1", "crossover")
_AVERAGES = ("off", "inner", "outer")
_RBFS = ("gto", "gto_smooth")

#: Padded neighbour slots processed per chunk with one thread: keeps the per-edge work in
#: cache (chosen by timing 2,048 to 65,536 on the 500-atom Cu cell of
#: benchmarks/bench_soap.py).
CHUNK_SLOTS = 4096
#: The same with several intra-op threads: every operation is then a parallel region that
#: ends in a barrier, and on a machine where another process holds a core each barrier
#: waits for a time slice -- 4,096-slot chunks ran 50x slower with 2 threads than with 1
#: there, 65,536-slot chunks 2x slower. Fewer, larger operations bound that cost.
CHUNK_SLOTS_PARALLEL = 65536


@dataclass
class _Layout:
    """Where each (centre, channel) segment's neighbours go in the padded block layout.

    Neighbours are grouped by segment (centre x species channel) and laid out in blocks
    of ``size`` slots (a segment takes ``ceil(count / size)`` blocks, the rest is
    padding), so that the contraction over neighbours is one batched matrix product per l.
    """

    order: torch.Tensor | None  # permutation that sorts the edges by segment, or None
    slots: torch.Tensor  # (E,) padded slot of each (sorted) edge
    block_segment: torch.Tensor | None  # (n_blocks,) segment of each block; None = identity
    size: int  # slots per block
    n_blocks: int
    n_segments: int


def _block_layout(key: torch.Tensor, n_segments: int) -> _Layout:
    """Block layout for edges with segment ``key`` (any order)."""
    device = key.device
    order = None
    if key.numel() > 1 and not bool((key[1:] >= key[:-1]).all()):
        order = torch.argsort(key, stable=True)
        key = key[order]
    counts = torch.bincount(key, minlength=n_segments)
    present = counts[counts > 0]
    largest = int(present.max()) if present.numel() else 1
    # cost model: padded slots, plus a per-block price of batched products (~16 slots' work)
    best, best_cost = largest, None
    for size in sorted({largest, 64, 32, 16, 8, 4, 2, 1}, reverse=True):
        if size > largest:
            continue
        blocks = torch.div(present + size - 1, size, rounding_mode="floor")
        cost = int((blocks * size).sum()) + 16 * int(blocks.sum())
        if best_cost is None or cost < best_cost:
            best, best_cost = size, cost
    size = best
    blocks_per_segment = torch.div(counts + size - 1, size, rounding_mode="floor")
    n_blocks = int(blocks_per_segment.sum())
    segment_start = torch.cumsum(counts, 0) - counts
    block_start = torch.cumsum(blocks_per_segment, 0) - blocks_per_segment
    rank = torch.arange(key.numel(), device=device) - segment_start[key]
    slots = (block_start[key] + torch.div(rank, size, rounding_mode="floor")) * size + rank % size
    if n_blocks == n_segments and bool((blocks_per_segment == 1).all()):
        block_segment = None
    else:
        block_segment = torch.repeat_interleave(
            torch.arange(n_segments, device=device), blocks_per_segment
        )
    return _Layout(order, slots, block_segment, size, n_blocks, n_segments)


class SOAP(Descriptor):
    """Smooth Overlap of Atomic Positions power spectrum, DScribe-compatible, differentiable.

    Parameters
    ----------
    species
        Chemical symbols or atomic numbers of every element the descriptor will see
        (sorted internally by atomic number, which fixes the channel order).
    r_cut
        Radial cutoff, Å. For ``rbf="gto"`` (> 1 Å) neighbours count up to
        ``r_cut + σ √(-2 ln 1e-3)`` as in DScribe (6.858 Å for r_cut 5, σ 0.5); for
        ``"gto_smooth"`` up to ``r_cut``. May be None when ``weighting`` defines it
        (DScribe's rule: r0 for "poly", where the weight falls to ``threshold`` for
        "pow" and "exp").
    n_max
        Number of radial basis functions, >= 1.
    l_max
        Largest degree of the spherical harmonics, 0 <= l_max <= 20.
    sigma
        Standard deviation of the atomic Gaussians, Å (> 0).
    rbf
        ``"gto"``: DScribe's orthonormalised Gaussian-type orbitals (identical numbers).
        ``"gto_smooth"``: the same with a C² cutoff function over
        ``[r_cut - cutoff_width, r_cut]`` (continuous forces; fewer neighbours).
    weighting
        DScribe's dictionary: ``{"function": "poly" | "pow" | "exp", "r0", "c", "m", "d",
        "threshold", "w0"}`` (see DScribe's documentation); ``w0`` replaces the weight of
        an atom exactly at the centre. None: all weights 1.
    average
        ``"off"``: one row per centre. ``"inner"``: average the coefficients over the
        centres, then take the power spectrum. ``"outer"``: average the power spectra.
    compression
        DScribe's ``{"mode": "off" | "mu2" | "mu1nu1" | "crossover",
        "species_weighting": None | {species: weight}}`` (Darby, Kermode, Csányi, npj
        Comput. Mater. 8, 166 (2022)). None means ``{"mode": "off"}``.
    periodic
        True: use the periodic images along the directions where ``atoms.pbc`` is True.
        False: describe every structure as isolated, whatever its ``pbc`` (as DScribe).
    sparse
        :meth:`create` returns a ``sparse.COO`` array (needs the ``sparse`` package).
    dtype
        ``"float64"`` (default) or ``"float32"``: the precision of the computation.
    cutoff_width
        Width of the cutoff region of ``rbf="gto_smooth"``, Å (default 1.0).

    Attributes
    ----------
    cutoff : float
        Neighbour-list cutoff the graph must be built with, Å.
    basis : GTORadialBasis
        The radial basis (alphas, betas as DScribe's ``get_basis_gto``).

    Notes
    -----
    Cost: per neighbour pair, (l_max + 1) n_max exponentials and (l_max + 1)² solid
    harmonics (polynomials, no trigonometric function), then one batched matrix
    product per l contracts neighbours into coefficients; the power spectrum is a
    product of the coefficients per centre. Memory is linear in the number of pairs.

    Implementation: the neighbour pairs of each (centre, species) segment are laid out in
    padded blocks, the per-pair work (exponentials and solid harmonics, as rows of length
    "pairs") runs in cache-sized chunks, and the contraction over neighbours is a
    batched matrix product per l; everything is built from ``graph.edge_vectors`` so
    autograd gives forces and stresses (and second derivatives, for force training).

    Examples
    --------
    >>> from ase.build import bulk
    >>> soap = SOAP(species=["Cu"], r_cut=5.0, n_max=8, l_max=6, sigma=0.5, periodic=True)
    >>> soap.create(bulk("Cu", cubic=True)).shape
    (4, 252)
    >>> soap.get_location(("Cu", "Cu"))
    slice(0, 252, None)

    References
    ----------
    A. P. Bartók, R. Kondor, G. Csányi, Phys. Rev. B 87, 184115 (2013).
    L. Himanen et al., Comput. Phys. Commun. 247, 106949 (2020) (DScribe).
    M. A. Caro, Phys. Rev. B 100, 024112 (2019) ("poly" weighting).
    M. J. Willatt, F. Musil, M. Ceriotti, PCCP 20, 29661 (2018) ("pow" weighting).
    """

    def __init__(
        self,
        species: Sequence[int | str] | None = None,
        r_cut: float | None = None,
        n_max: int | None = None,
        l_max: int | None = None,
        sigma: float = 1.0,
        rbf: str = "gto",
        weighting: dict | None = None,
        average: str = "off",
        compression: dict | None = None,
        periodic: bool = False,
        sparse: bool = False,
        dtype: str | torch.dtype = "float64",
        *,
        cutoff_width: float | None = None,
    ) -> None:
        super().__init__()
        if species is None:
            raise ValueError("species is required: every element the descriptor will see")
        self.species = atomic_numbers_of(species)
        self.dtype = _parse_dtype(dtype)
        self.sigma = _positive_number(sigma, "sigma")
        if rbf == "polynomial":
            raise ValueError(
                "rbf='polynomial' (DScribe's numerically integrated polynomial basis) is not "
                "provided; use 'gto' (identical to DScribe's) or 'gto_smooth' (smooth cutoff)"
            )
        if rbf not in _RBFS:
            raise ValueError(f"rbf must be one of {_RBFS}, got {rbf!r}")
        self.rbf = rbf
        self.n_max = _integer(n_max, "n_max", low=1)
        self.l_max = _integer(l_max, "l_max", low=0, high=L_MAX)
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
        self.average = average
        self.periodic = bool(periodic)
        self.sparse = bool(sparse)
        self.weighting = _check_weighting(weighting)
        if r_cut is None:
            r_cut = _infer_r_cut(self.weighting)
            if r_cut is None:
                raise ValueError("r_cut is required (or a weighting function that defines it)")
        self.r_cut = _positive_number(r_cut, "r_cut")
        if self.r_cut <= 1.0:
            raise ValueError(
                f"r_cut must be larger than 1 Å for the GTO radial basis, got {self.r_cut}"
            )
        if rbf == "gto":
            if cutoff_width is not None:
                raise ValueError("cutoff_width applies to rbf='gto_smooth' only")
            self.basis = GTORadialBasis(self.r_cut, self.n_max, self.l_max, self.sigma)
        else:
            width = 1.0 if cutoff_width is None else _positive_number(cutoff_width, "cutoff_width")
            self.basis = SmoothGTORadialBasis(self.r_cut, self.n_max, self.l_max, self.sigma, width)
        self.cutoff_width = getattr(self.basis, "width", None)
        cutoff = self.basis.neighbor_cutoff
        if self.weighting.get("function") == "poly":  # zero weight beyond r0: fewer neighbours
            cutoff = min(cutoff, self.weighting["r0"])
        self.cutoff = float(cutoff)
        self.compression = _check_compression(compression, self.species)
        self._mode = self.compression["mode"]
        weights = self.compression.get("species_weighting")
        self._species_weights = (
            None if weights is None else [float(_lookup_weight(weights, z)) for z in self.species]
        )
        self._n_channels = 1 if self._mode == "mu2" else len(self.species)

        # constant tables, as buffers so that .to(device/dtype) moves them
        table = torch.full((len(chemical_symbols),), -1, dtype=torch.long)
        table[torch.tensor(self.species)] = torch.arange(len(self.species))
        self.register_buffer("_species_index", table, persistent=False)
        exponents, coefficients = self.basis.tensors(self.dtype)
        self.register_buffer("_radial_exponents", exponents, persistent=False)
        self.register_buffer("_radial_coefficients", coefficients, persistent=False)
        self.register_buffer(
            "_self_values",
            torch.as_tensor(self.basis.self_values(), dtype=self.dtype),
            persistent=False,
        )
        for l, f in enumerate(block_factors(self.l_max)):
            self.register_buffer(
                f"_factor{l}", torch.as_tensor(f, dtype=self.dtype), persistent=False
            )
        self.register_buffer(
            "_channel_weights",
            torch.as_tensor(
                self._species_weights
                if self._species_weights is not None
                else [1.0] * len(self.species),
                dtype=self.dtype,
            ),
            persistent=False,
        )
        index, prefactor, labels, locations = self._feature_tables()
        self.register_buffer("_feature_index", torch.as_tensor(index), persistent=False)
        self.register_buffer(
            "_feature_prefactor", torch.as_tensor(prefactor, dtype=self.dtype), persistent=False
        )
        self._labels = labels
        self._locations = locations

    # ------------------------------------------------------------------ contract
    @property
    def per_atom(self) -> bool:
        """True unless ``average`` is "inner" or "outer" (then one row per structure)."""
        return self.average == "off"

    def get_number_of_features(self) -> int:
        """Number of features F, as DScribe's ``get_number_of_features``."""
        return len(self._labels)

    def feature_labels(self) -> list[str]:
        """One label per column, e.g. ``"Cu-O n=0 n'=3 l=2"`` (DScribe's order)."""
        return list(self._labels)

    def get_location(self, species: Sequence[int | str]) -> slice:
        """The columns of a species pair, as DScribe's ``get_location``.

        Parameters
        ----------
        species
            Two chemical symbols or atomic numbers, in any order, e.g. ``("H", "O")``.

        Returns
        -------
        slice

        Raises
        ------
        ValueError
            Not a pair, an unknown element, or a cross-species pair under a compression
            mode that keeps none.
        """
        if isinstance(species, (str, int)) or len(species) != 2:
            raise ValueError("give a pair of chemical symbols or atomic numbers, e.g. ('H', 'O')")
        numbers = []
        for s in species:
            try:
                z = atomic_numbers_of([s])[0]
            except ValueError as error:
                raise ValueError(f"invalid chemical species: {s!r}") from error
            if z not in self.species:
                raise ValueError(
                    f"atomic number {z} ({chemical_symbols[z]}) was not specified in the species"
                )
            numbers.append(self.species.index(z))
        a, b = sorted(numbers)
        if self._mode == "mu2":
            return slice(0, self.get_number_of_features())
        if (a, b) not in self._locations:
            raise ValueError(
                f"compression mode {self._mode!r} keeps no cross-species features "
                f"({chemical_symbols[self.species[a]]}-{chemical_symbols[self.species[b]]})"
            )
        return self._locations[(a, b)]

    def extra_repr(self) -> str:
        symbols = ",".join(chemical_symbols[z] for z in self.species)
        return (
            f"species=[{symbols}], r_cut={self.r_cut}, n_max={self.n_max}, l_max={self.l_max}, "
            f"sigma={self.sigma}, rbf={self.rbf!r}, average={self.average!r}, "
            f"periodic={self.periodic}, cutoff={self.cutoff:.4g}"
        )

    # ------------------------------------------------------------------ feature tables
    def _feature_tables(self):
        """Gather index into the stacked products, prefactor, labels and pair locations."""
        n, n_l = self.n_max, self.l_max + 1
        symbols = [chemical_symbols[z] for z in self.species]
        index, prefactor, labels, locations = [], [], [], {}

        def pref(l):
            return math.pi * math.sqrt(8.0 / (2 * l + 1))

        if self._mode == "mu1nu1":
            rows, cols = len(self.species) * n, n
            for s in range(len(self.species)):
                start = len(index)
                for l in range(n_l):
                    for n1 in range(n):
                        for n2 in range(n):
                            index.append(l * rows * cols + (s * n + n1) * cols + n2)
                            prefactor.append(pref(l))
                            labels.append(f"{symbols[s]}-all n={n1} n'={n2} l={l}")
                locations[(s, s)] = slice(start, len(index))
        else:
            channels = self._n_channels
            size = channels * n
            for s1 in range(channels):
                for s2 in range(s1, channels if self._mode == "off" else s1 + 1):
                    start = len(index)
                    for l in range(n_l):
                        for n1 in range(n):
                            for n2 in range(n1 if s1 == s2 else 0, n):
                                index.append(l * size * size + (s1 * n + n1) * size + (s2 * n + n2))
                                prefactor.append(pref(l))
                                pair = (
                                    "" if self._mode == "mu2" else f"{symbols[s1]}-{symbols[s2]} "
                                )
                                labels.append(f"{pair}n={n1} n'={n2} l={l}")
                    locations[(s1, s2)] = slice(start, len(index))
        return np.asarray(index, dtype=np.int64), np.asarray(prefactor), labels, locations

    # ------------------------------------------------------------------ structures -> graph
    def check_structure(self, atoms: Atoms, index: int | None = None) -> None:
        """Reject what SOAP cannot describe: no atoms, NaN, unknown elements, empty cells."""
        super().check_structure(atoms, index)
        if self.periodic and atoms.pbc.any():
            cell = atoms.cell.array
            if (
                not np.isfinite(cell).all()
                or abs(np.linalg.det(cell)) < 1e-9 * max(1.0, np.abs(cell).max()) ** 3
            ):
                raise DataError(
                    "periodic=True needs a cell of non-zero volume along the periodic directions "
                    f"(pbc={atoms.pbc.tolist()})",
                    index=index,
                    field="cell",
                )

    # ------------------------------------------------------------------ forward
    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """SOAP features of a batch of structures.

        Parameters
        ----------
        graph
            Built with a cutoff >= :attr:`cutoff` (e.g. by :meth:`graph`); extra edges
            beyond :attr:`cutoff` are ignored, and so are periodic images when
            ``periodic`` is False.

        Returns
        -------
        Tensor
            (N, F) per atom when ``average="off"``, else (B, F) per structure; dtype of
            the descriptor. Differentiable in ``graph.positions`` and ``graph.cell``.
        """
        coefficients = self._graph_coefficients(graph)
        if self.average == "off":
            return self._power_spectrum(coefficients)
        return self._averaged(coefficients, graph.batch, graph.n_structures)

    def _averaged(
        self, coefficients: list[torch.Tensor], group: torch.Tensor, n_groups: int
    ) -> torch.Tensor:
        counts = torch.bincount(group, minlength=n_groups).clamp_min(1).to(coefficients[0].dtype)
        if self.average == "inner":
            means = [
                c.new_zeros((n_groups,) + c.shape[1:]).index_add(0, group, c)
                / counts.view(-1, 1, 1, 1)
                for c in coefficients
            ]
            return self._power_spectrum(means)
        features = self._power_spectrum(coefficients)
        return features.new_zeros(n_groups, features.shape[1]).index_add(
            0, group, features
        ) / counts.unsqueeze(1)

    def _check_graph(self, graph: AtomicGraph) -> torch.Tensor:
        """Species channel of each atom; raises for elements outside ``species``."""
        if graph.cutoff < self.cutoff * (1 - 1e-9):
            raise ValueError(
                f"the graph was built with cutoff {graph.cutoff:g} Å, but this SOAP needs "
                f"{self.cutoff:g} Å (build it with soap.graph(images))"
            )
        channel = self._species_index[graph.numbers]
        if bool((channel < 0).any()):
            unknown = sorted(set(graph.numbers[channel < 0].tolist()))
            names = ", ".join(
                chemical_symbols[z] if 0 < z < len(chemical_symbols) else str(z) for z in unknown
            )
            known = ", ".join(chemical_symbols[z] for z in self.species)
            raise UnknownElementError(
                f"element(s) {names} not in the descriptor's species ({known}); "
                "pass them in species=",
                field="numbers",
            )
        return channel

    def _graph_coefficients(
        self,
        graph: AtomicGraph,
        centers: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cell: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Coefficients of every atom (or of ``centers``, global atom indices) of the graph."""
        channel = self._check_graph(graph)
        n_atoms = graph.positions.shape[0]
        i, j, vectors = self._edges(graph, centers, positions, cell)
        if centers is None:
            centre, n_centres, self_channel = i, n_atoms, channel
        else:
            local = torch.full((n_atoms,), -1, dtype=torch.long, device=i.device)
            local[centers] = torch.arange(len(centers), device=i.device)
            centre, n_centres, self_channel = local[i], len(centers), channel[centers]
        return self._coefficients(vectors, centre, channel[j], n_centres, self_channel)

    def _edges(
        self,
        graph: AtomicGraph,
        centers: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cell: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centre, neighbour and vector of the edges this SOAP sees (inside its cutoff,
        periodic images only when ``periodic``, centres among ``centers``)."""
        n_atoms = graph.positions.shape[0]
        i, j = graph.edge_index
        if graph.n_structures == 1:  # one cell: a (3, 3) product instead of a per-edge gather
            positions = graph.positions if positions is None else positions
            cell = graph.cell if cell is None else cell
            vectors = positions[j] - positions[i] + graph.shifts.to(cell.dtype) @ cell[0]
        else:
            vectors = graph.edge_vectors(positions, cell)
        keep = None
        if not self.periodic and graph.shifts.numel() and bool((graph.shifts != 0).any()):
            keep = (graph.shifts == 0).all(dim=1)
        if graph.cutoff > self.cutoff * (1 + 1e-12):
            inside = (vectors.detach() ** 2).sum(1) < self.cutoff**2
            keep = inside if keep is None else keep & inside
        if centers is not None:
            selected = torch.zeros(n_atoms, dtype=torch.bool, device=i.device)
            selected[centers] = True
            keep = selected[i] if keep is None else keep & selected[i]
        if keep is not None:
            i, j, vectors = i[keep], j[keep], vectors[keep]
        return i, j, vectors

    # ------------------------------------------------------------------ edge Jacobian
    def edge_jacobian(self, graph: AtomicGraph, *, chunk_edges: int = 2048) -> EdgeJacobian:
        """Features and their exact derivatives with respect to every edge vector.

        What closed-form fits of potentials need: the force and virial rows of a model
        built on the features are sums over edges of ``gradient`` contracted with the
        model's derivative (see :class:`~ml4ms.descriptors.base.EdgeJacobian`).

        Each neighbour adds ``b_e = c(v_e)`` to its centre's coefficients, so ``db_e/dv_e``
        is a per-edge quantity (three forward-mode passes over all edges at once) and the
        power spectrum's derivative is ``db_e c_i^T + c_i db_e^T`` per l. Memory is
        ``E x 3 x F`` for the output plus a bounded working set (``chunk_edges``).

        Parameters
        ----------
        graph
            As for :meth:`forward`.
        chunk_edges
            Edges processed at once.

        Returns
        -------
        EdgeJacobian

        Raises
        ------
        ValueError
            For ``average`` other than "off" and compression "mu1nu1" or "crossover".
        """
        if self.average != "off":
            raise ValueError("edge_jacobian needs per-atom features (average='off')")
        if self._mode not in ("off", "mu2"):
            raise ValueError(f"edge_jacobian supports compression 'off' and 'mu2', not {self._mode!r}")
        channel = self._check_graph(graph)
        n_atoms = graph.positions.shape[0]
        with torch.no_grad():
            i, j, vectors = self._edges(graph)
            vectors = vectors.to(self.dtype)
            coefficients = self._coefficients(vectors, i, channel[j], n_atoms, channel)
            features = self._power_spectrum(coefficients)
            # an atom exactly on top of its centre has no direction: leave it to the self term
            parts = []
            for start in range(0, len(i), chunk_edges):
                stop = min(start + chunk_edges, len(i))
                parts.append(self._edge_gradient(vectors[start:stop], i[start:stop],
                                                 channel[j[start:stop]], coefficients))
            n_features = features.shape[1]
            gradient = torch.cat(parts) if parts else features.new_zeros(0, 3, n_features)
        return EdgeJacobian(features=features, centre=i, neighbour=j, vectors=vectors,
                            gradient=gradient)

    def _edge_expansion(self, vectors: torch.Tensor, neighbour_channel: torch.Tensor) -> torch.Tensor:
        """Each edge's own contribution to its centre's coefficients, flattened:
        (E, sum_l n (2l + 1)), blocks in order of l, each (n, 2l + 1) row-major."""
        x, y, z = vectors.unbind(1)
        r2 = x * x + y * y + z * z
        weight = (self._channel_weights[neighbour_channel] if self._species_weights is not None
                  else torch.ones_like(r2))
        weight = self._neighbour_weight(r2, weight)
        tensors = (self._radial_exponents, self._radial_coefficients)
        harmonics = solid_harmonic_blocks(x, y, z, r2, self.l_max, weight)
        radial = self.basis.evaluate(r2, tensors)
        blocks = []
        for l in range(self.l_max + 1):
            mixed = self.basis.mix(l, radial[l], tensors)  # (n, E): the mix is linear in the radial part
            angular = harmonics[l] * getattr(self, f"_factor{l}")[:, None]  # (2l + 1, E)
            blocks.append((mixed.T.unsqueeze(2) * angular.T.unsqueeze(1)).flatten(1))
        return torch.cat(blocks, 1)

    def _edge_gradient(self, vectors, centre, neighbour_channel, coefficients) -> torch.Tensor:
        """(E, 3, F) derivative of the centre's power spectrum with respect to each edge."""
        n, n_edges = self.n_max, vectors.shape[0]
        tangents = torch.eye(3, dtype=vectors.dtype, device=vectors.device)
        tangents = tangents[:, None, :].expand(3, n_edges, 3).contiguous()
        with warnings.catch_warnings():  # torch's forward-AD set-up warns about its own jit use
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            jac = torch.func.vmap(
                lambda t: torch.func.jvp(
                    lambda v: self._edge_expansion(v, neighbour_channel), (vectors,), (t,)
                )[1]
            )(tangents)  # (3, E, sum_l n (2l + 1))
        jac = jac.transpose(0, 1)
        channels = self._n_channels
        one_hot = None
        if channels > 1:
            one_hot = torch.nn.functional.one_hot(neighbour_channel, channels).to(vectors.dtype)
        products, offset = [], 0
        for l, c in enumerate(coefficients):
            width = n * (2 * l + 1)
            d = jac[:, :, offset:offset + width].reshape(n_edges, 3, n, 2 * l + 1)
            offset += width
            c_i = c[centre].reshape(n_edges, channels * n, 2 * l + 1)
            a = torch.bmm(d.reshape(n_edges, 3 * n, 2 * l + 1), c_i.transpose(1, 2))
            a = a.view(n_edges, 3, n, channels * n)
            if one_hot is not None:  # the edge moves the rows of its neighbour's channel only
                a = (a.unsqueeze(2) * one_hot[:, None, :, None, None]).reshape(
                    n_edges, 3, channels * n, channels * n)
            products.append(a + a.transpose(2, 3))
        stacked = torch.stack(products, 2).reshape(n_edges, 3, -1)
        return stacked.index_select(2, self._feature_index) * self._feature_prefactor

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this SOAP (JSON-serialisable)."""
        return {
            "species": list(self.species), "r_cut": self.r_cut, "n_max": self.n_max,
            "l_max": self.l_max, "sigma": self.sigma, "rbf": self.rbf,
            "weighting": dict(self.weighting) or None, "average": self.average,
            "compression": {k: v for k, v in self.compression.items()} if self.compression else None,
            "periodic": self.periodic, "dtype": str(self.dtype).removeprefix("torch."),
            **({"cutoff_width": self.cutoff_width} if self.rbf == "gto_smooth" else {}),
        }

    # ------------------------------------------------------------------ the kernel
    def _layout(self, centre: torch.Tensor, neighbour_channel: torch.Tensor, n_centres: int):
        """Segment keys and block layout (integer work, no gradient)."""
        channel = neighbour_channel if self._mode != "mu2" else torch.zeros_like(neighbour_channel)
        key = centre * self._n_channels + channel
        return _block_layout(key, n_centres * self._n_channels), neighbour_channel

    def _coefficients(
        self,
        vectors: torch.Tensor,
        centre: torch.Tensor,
        neighbour_channel: torch.Tensor,
        n_centres: int,
        self_channel: torch.Tensor | None,
        layout=None,
    ) -> list[torch.Tensor]:
        """Expansion coefficients ``c_nlm`` of each centre, DScribe's normalisation.

        Parameters
        ----------
        vectors
            (E, 3) neighbour minus centre, Å (differentiable).
        centre
            (E,) centre of each vector, in ``0..n_centres-1``.
        neighbour_channel
            (E,) species index of the neighbour.
        n_centres
            Number of centres.
        self_channel
            (n_centres,) species index of the atom at each centre (its own Gaussian is
            added), or None when the centres are not atoms (or the self term is already
            among ``vectors`` as a zero vector).
        layout
            Precomputed result of :meth:`_layout` for these edges.

        Returns
        -------
        list of Tensor
            Block l: (n_centres, n_channels, n_max, 2l + 1), m ordered as
            :func:`~ml4ms.descriptors.spherical_harmonics.block_factors`.
        """
        n, n_l, channels = self.n_max, self.l_max + 1, self._n_channels
        n_segments = n_centres * channels
        dtype, device = self._radial_exponents.dtype, self._radial_exponents.device
        vectors = vectors.to(dtype)
        if layout is None:
            layout = self._layout(centre, neighbour_channel, n_centres)
        layout, neighbour_channel = layout
        blocks_out: list[list[torch.Tensor]] = [[] for _ in range(n_l)]
        tensors = (self._radial_exponents, self._radial_coefficients)
        if vectors.shape[0]:
            if layout.order is not None:
                vectors = vectors[layout.order]
                neighbour_channel = neighbour_channel[layout.order]
            n_slots = layout.n_blocks * layout.size
            padded = vectors.new_zeros(3, n_slots).index_copy(1, layout.slots, vectors.T)
            mask = vectors.new_zeros(n_slots).index_fill(0, layout.slots, 1.0)
            if self._species_weights is not None:
                mask = mask.index_copy(0, layout.slots, self._channel_weights[neighbour_channel])
            chunk_slots = CHUNK_SLOTS if torch.get_num_threads() == 1 else CHUNK_SLOTS_PARALLEL
            # equal chunks near chunk_slots each: a 4,480-slot cell is one chunk, not 4,060 + 420
            n_chunks = max(1, round(n_slots / chunk_slots))
            per_chunk = -(-layout.n_blocks // n_chunks) * layout.size
            sizes = [min(per_chunk, n_slots - s) for s in range(0, n_slots, per_chunk)]
            for chunk, weight in zip(padded.split(sizes, dim=1), mask.split(sizes), strict=True):
                x, y, z = chunk.unbind(0)
                r2 = x * x + y * y + z * z
                weight = self._neighbour_weight(r2, weight)
                harmonics = solid_harmonic_blocks(x, y, z, r2, self.l_max, weight)
                radial = self.basis.evaluate(r2, tensors).unbind(0)
                n_blocks = chunk.shape[1] // layout.size
                for l in range(n_l):
                    r_l = radial[l].view(n, n_blocks, layout.size).permute(1, 0, 2)  # k = primitive
                    y_l = harmonics[l].view(2 * l + 1, n_blocks, layout.size).permute(1, 2, 0)
                    blocks_out[l].append(torch.bmm(r_l, y_l))
        out = []
        for l in range(n_l):
            parts = blocks_out[l]
            if not parts:
                c = torch.zeros(n_segments, n, 2 * l + 1, dtype=dtype, device=device)
            else:
                c = parts[0] if len(parts) == 1 else torch.cat(parts)
                if layout.block_segment is not None:
                    c = c.new_zeros(n_segments, n, 2 * l + 1).index_add(0, layout.block_segment, c)
            c = self.basis.mix(l, c, tensors).view(n_centres, channels, n, 2 * l + 1)
            if l == 0 and self_channel is not None and n_centres:
                c = c + self._self_term(self_channel, n_centres)
            out.append(c * getattr(self, f"_factor{l}"))
        return out

    def _self_term(self, self_channel: torch.Tensor, n_centres: int) -> torch.Tensor:
        """l = 0 coefficients of each centre's own Gaussian, (n_centres, channels, n, 1)."""
        weight = self._center_weight()
        channel = self_channel if self._mode != "mu2" else torch.zeros_like(self_channel)
        values = self._self_values * weight
        per_centre = values.unsqueeze(0) * self._channel_weights[self_channel].unsqueeze(1)
        term = per_centre.new_zeros(n_centres, self._n_channels, self.n_max)
        term[torch.arange(n_centres, device=term.device), channel] = per_centre
        return term.unsqueeze(-1)

    def _center_weight(self) -> float:
        w = self.weighting
        if "w0" in w:
            return w["w0"]
        if "function" in w:
            return float(_weight_function(torch.zeros(1, dtype=torch.float64), w))
        return 1.0

    def _neighbour_weight(self, r2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Slot weights (padding mask x species weights) times weighting and cutoff functions."""
        w = self.weighting
        if not w and not self.basis.smooth:
            return weight
        tiny = torch.finfo(r2.dtype).tiny
        r = torch.sqrt(torch.where(r2 > tiny, r2, torch.full_like(r2, tiny)))
        factor = _weight_function(r, w) if "function" in w else torch.ones_like(r)
        if "w0" in w:  # an atom exactly at the centre (DScribe tests r == 0)
            factor = torch.where(r2 == 0, torch.full_like(factor, w["w0"]), factor)
        cut = self.basis.cutoff(r)
        if cut is not None:
            factor = factor * cut
        return weight * factor

    def _power_spectrum(self, coefficients: list[torch.Tensor]) -> torch.Tensor:
        """Power spectrum in DScribe's order from per-l coefficient blocks."""
        if not coefficients:
            raise ValueError("no coefficients")
        products = []
        for c in coefficients:
            n_centres = c.shape[0]
            left = c.reshape(n_centres, -1, c.shape[-1])
            right = left if self._mode != "mu1nu1" else c.sum(1)
            products.append(torch.bmm(left, right.transpose(1, 2)))
        stacked = torch.stack(products, 1).reshape(products[0].shape[0], -1)
        return stacked.index_select(1, self._feature_index) * self._feature_prefactor

    # ------------------------------------------------------------------ DScribe-style API
    def create(
        self,
        system: Atoms | Sequence[Atoms],
        centers: Sequence | None = None,
        n_jobs: int = 1,
        only_physical_cores: bool = False,
        verbose: bool = False,
    ):
        """SOAP output as arrays, with DScribe's shapes and order.

        Parameters
        ----------
        system
            One :class:`ase.Atoms` or a list of them.
        centers
            Where to centre the environments: atom indices, or Cartesian positions
            (shape (k, 3), Å) that need not sit on atoms; for a list of systems, one
            such list per system (None entries mean every atom). Default: every atom.
        n_jobs
            Threads over structures; negative counts back from the CPU count (DScribe).
        only_physical_cores, verbose
            Accepted for DScribe compatibility; ignored.

        Returns
        -------
        ndarray or sparse.COO or list
            One system: (n_centers, F), or (F,) when averaged. Several: stacked to
            (n_systems, n_centers, F) / (n_systems, F) when all shapes agree, else a list.
        """
        single = isinstance(system, Atoms)
        images = [system] if single else list(system)
        if not images:
            raise ValueError("no structures given")
        if centers is None:
            center_lists = [None] * len(images)
        elif single:
            center_lists = [centers]
        else:
            center_lists = list(centers)
            if len(center_lists) != len(images):
                raise ValueError(
                    f"the given number of centers ({len(center_lists)}) does not match the "
                    f"number of systems ({len(images)})"
                )
        parsed = [
            self._parse_centers(a, c, k)
            for k, (a, c) in enumerate(zip(images, center_lists, strict=True))
        ]
        n_jobs = (os.cpu_count() or 1) + 1 + n_jobs if n_jobs < 0 else max(1, int(n_jobs))

        def compute(chunk: list[int]) -> list[np.ndarray]:
            with torch.no_grad():
                return [
                    r.detach().cpu().numpy()
                    for r in self._features_of(
                        [images[k] for k in chunk], [parsed[k] for k in chunk]
                    )
                ]

        chunks = _chunks(images, n_jobs)
        if n_jobs == 1:
            results = [r for chunk in chunks for r in compute(chunk)]
        else:
            with ThreadPoolExecutor(n_jobs) as pool:
                results = [r for part in pool.map(compute, chunks) for r in part]
        out = (
            results[0]
            if single
            else (np.stack(results) if len({r.shape for r in results}) == 1 else results)
        )
        return self._format(out)

    def _format(self, array):
        if not self.sparse:
            return array
        try:
            import sparse
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "sparse=True needs the 'sparse' package: pip install sparse"
            ) from error
        if isinstance(array, list):
            return [sparse.COO.from_numpy(a) for a in array]
        return sparse.COO.from_numpy(array)

    def _parse_centers(self, atoms: Atoms, centers, index: int):
        """None (every atom), ("index", int64 array) or ("position", (k, 3) array)."""
        self.check_structure(atoms, index)
        if centers is None:
            return None
        array = np.asarray(centers)
        if array.size == 0:
            raise ValueError(
                f"structure {index}: centers must be a non-empty list of indices or positions"
            )
        if array.dtype.kind in "iu" and array.ndim == 1:
            bad = (array < -len(atoms)) | (array >= len(atoms))
            if bad.any():
                raise IndexError(
                    f"structure {index}: center index {int(array[bad][0])} out of range "
                    f"for {len(atoms)} atoms"
                )
            return ("index", np.where(array < 0, array + len(atoms), array).astype(np.int64))
        if array.dtype.kind in "fiu" and array.ndim == 2 and array.shape[1] == 3:
            array = array.astype(np.float64)
            if not np.isfinite(array).all():
                raise DataError("center positions contain NaN or inf", index=index, field="centers")
            return ("position", array)
        raise ValueError(
            f"structure {index}: centers must be a 1-D list of atom indices or a (k, 3) list of "
            "Cartesian positions"
        )

    def _features_of(self, images: list[Atoms], specs: list) -> list[torch.Tensor]:
        """Features of each structure (rows of its centres, or its average)."""
        out: list[torch.Tensor | None] = [None] * len(images)
        batched = [k for k, s in enumerate(specs) if s is None or s[0] == "index"]
        if batched:
            sub = [images[k] for k in batched]
            graph = self.graph(sub)
            offsets = np.concatenate([[0], np.cumsum([len(a) for a in sub])])
            if all(specs[k] is None for k in batched):
                centers = None
                group = graph.batch
            else:
                parts = [
                    np.arange(len(images[k])) if specs[k] is None else specs[k][1] for k in batched
                ]
                centers = torch.as_tensor(
                    np.concatenate([p + offsets[m] for m, p in enumerate(parts)]),
                    device=graph.positions.device,
                )
                group = torch.as_tensor(np.repeat(np.arange(len(parts)), [len(p) for p in parts]))
            if centers is not None and len(torch.unique(centers)) != len(centers):
                # repeated centres: compute each unique one, then pick rows
                unique, inverse = torch.unique(centers, return_inverse=True)
                coefficients = [c[inverse] for c in self._graph_coefficients(graph, unique)]
            else:
                coefficients = self._graph_coefficients(graph, centers)
            if self.average == "off":
                features = self._power_spectrum(coefficients)
                counts = np.bincount(group.cpu().numpy(), minlength=len(batched))
                for m, rows in enumerate(torch.split(features, counts.tolist())):
                    out[batched[m]] = rows
            else:
                averaged = self._averaged(
                    coefficients, group.to(coefficients[0].device), len(batched)
                )
                for m in range(len(batched)):
                    out[batched[m]] = averaged[m]
        for k, spec in enumerate(specs):
            if spec is not None and spec[0] == "position":
                coefficients = self._point_coefficients(images[k], spec[1])
                if self.average == "off":
                    out[k] = self._power_spectrum(coefficients)
                else:
                    group = torch.zeros(
                        len(spec[1]), dtype=torch.long, device=coefficients[0].device
                    )
                    out[k] = self._averaged(coefficients, group, 1)[0]
        return out

    def _point_data(self, atoms: Atoms, points: np.ndarray):
        """Pairs (point, atom, shift) within the cutoff: ghost centres at arbitrary positions."""
        n_atoms = len(atoms)
        combined = np.concatenate([atoms.positions, points])
        pbc = atoms.pbc if self.periodic else np.zeros(3, bool)
        nl = neighbor_list(combined, atoms.cell.array, pbc, self.cutoff)
        keep = (nl.i >= n_atoms) & (nl.j < n_atoms)
        return nl.i[keep] - n_atoms, nl.j[keep], nl.shifts[keep]

    def _point_coefficients(
        self, atoms: Atoms, points: np.ndarray, positions: torch.Tensor | None = None
    ):
        centre, j, shifts = self._point_data(atoms, points)
        return self._point_expand(atoms, points, centre, j, shifts, positions)

    def _point_expand(self, atoms, points, centre, j, shifts, positions=None, layout=None):
        dtype = self.dtype
        if positions is None:
            positions = torch.as_tensor(atoms.positions, dtype=dtype)
        cell = torch.as_tensor(atoms.cell.array, dtype=dtype)
        vectors = (
            positions[torch.as_tensor(j)]
            - torch.as_tensor(points, dtype=dtype)[torch.as_tensor(centre)]
            + torch.as_tensor(shifts, dtype=dtype) @ cell
        )
        channel = self._species_index[torch.as_tensor(atoms.numbers)][torch.as_tensor(j)]
        return self._coefficients(
            vectors, torch.as_tensor(centre), channel, len(points), None, layout
        )

    # ------------------------------------------------------------------ derivatives
    def derivatives(
        self,
        system: Atoms | Sequence[Atoms],
        centers: Sequence | None = None,
        include: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
        method: str = "auto",
        return_descriptor: bool = True,
        attach: bool = False,
        n_jobs: int = 1,
        only_physical_cores: bool = False,
        verbose: bool = False,
    ):
        """Dense derivatives of the features with respect to atomic positions, DScribe's shapes.

        Exact (forward-mode automatic differentiation), for every setting, periodic
        systems included. Dense and memory-hungry: meant for small systems and for
        comparison with DScribe; a model should instead backpropagate through
        :meth:`forward` (one vector-Jacobian product, no Jacobian stored).

        Parameters
        ----------
        system
            One structure or a list of them.
        centers
            As in :meth:`create` (indices or Cartesian positions).
        include, exclude
            Indices of the atoms to differentiate with respect to (one of them at most;
            default all atoms).
        method
            ``"auto"``, ``"analytical"`` or ``"numerical"`` (DScribe's names); the result
            is always the exact derivative.
        return_descriptor
            Also return the features.
        attach
            True: a centre given as an atom index moves with that atom (the derivative a
            potential needs). False (DScribe's default): centres stay where they were.
        n_jobs, only_physical_cores, verbose
            Accepted for DScribe compatibility; structures are processed one by one.

        Returns
        -------
        derivatives : ndarray
            (n_centers, n_included, 3, F), or (1, n_included, 3, F) when averaged (as
            DScribe for one system); for several systems stacked along a first axis when
            shapes agree (else a list). Units: feature units per Å.
        descriptor : ndarray
            (n_centers, F), or (1, F) when averaged; only when ``return_descriptor``.
        """
        if method not in ("auto", "analytical", "numerical"):
            raise ValueError("method must be 'auto', 'analytical' or 'numerical'")
        if include is not None and exclude is not None:
            raise ValueError("give include or exclude, not both")
        single = isinstance(system, Atoms)
        images = [system] if single else list(system)
        center_lists = (
            [centers]
            if single
            else (list(centers) if centers is not None else [None] * len(images))
        )
        if len(center_lists) != len(images):
            raise ValueError("the given number of centers does not match the number of systems")

        def per_system(option, k):
            if option is None:
                return None
            option = list(option)
            if option and not isinstance(option[0], (int, np.integer)):
                return option[k]
            return option

        derivs, descs = [], []
        for k, atoms in enumerate(images):
            spec = self._parse_centers(atoms, center_lists[k], k)
            inc = per_system(include, k) if not single else include
            exc = per_system(exclude, k) if not single else exclude
            indices = np.arange(len(atoms))
            if inc is not None:
                indices = np.unique(np.asarray(inc, dtype=np.int64))
            elif exc is not None:
                indices = np.setdiff1d(indices, np.asarray(exc, dtype=np.int64))
            d, f = self._derivatives_single(atoms, spec, indices, attach)
            derivs.append(d)
            descs.append(f)
        if single:
            d_out, f_out = derivs[0], descs[0]
        else:
            d_out = np.stack(derivs) if len({d.shape for d in derivs}) == 1 else derivs
            f_out = np.stack(descs) if len({f.shape for f in descs}) == 1 else descs
        d_out, f_out = self._format(d_out), self._format(f_out)
        return (d_out, f_out) if return_descriptor else d_out

    def _derivatives_single(self, atoms: Atoms, spec, indices: np.ndarray, attach: bool):
        dtype = self.dtype
        positions = torch.as_tensor(atoms.positions, dtype=dtype)
        n_atoms = len(atoms)
        if spec is not None and spec[0] == "position":
            points = spec[1]
            centre, j, shifts = self._point_data(atoms, points)
            layout = self._layout(
                torch.as_tensor(centre),
                self._species_index[torch.as_tensor(atoms.numbers)][torch.as_tensor(j)],
                len(points),
            )

            def coefficients_of(p):
                return self._point_expand(atoms, points, centre, j, shifts, p, layout)
        else:
            centers = np.arange(n_atoms) if spec is None else spec[1]
            graph = self.graph([atoms])
            i_all, j_all = graph.edge_index
            keep = torch.isin(i_all, torch.as_tensor(np.unique(centers)))
            i_e, j_e, s_e = i_all[keep], j_all[keep], graph.shifts[keep]
            unique, inverse = np.unique(centers, return_inverse=True)
            local = torch.full((n_atoms,), -1, dtype=torch.long)
            local[torch.as_tensor(unique)] = torch.arange(len(unique))
            uniq_t = torch.as_tensor(unique)
            # the centre's own Gaussian as an explicit zero vector, so that it is differentiated
            centre = torch.cat([local[i_e], torch.arange(len(unique))])
            neighbours = torch.cat([j_e, uniq_t])
            channel = self._check_graph(graph)
            layout = self._layout(centre, channel[neighbours], len(unique))
            offsets = s_e @ graph.cell[0]
            zero = torch.zeros(len(unique), 3, dtype=dtype)
            inverse_t = torch.as_tensor(inverse.reshape(-1))

            def coefficients_of(p):
                anchor = p if attach else p.detach()
                vectors = torch.cat(
                    [p[j_e] - anchor[i_e] + offsets, p[uniq_t] - anchor[uniq_t] + zero]
                )
                c = self._coefficients(
                    vectors, centre, channel[neighbours], len(unique), None, layout
                )
                return [x[inverse_t] for x in c]

        def features_of(p):
            c = coefficients_of(p)
            if self.average == "off":
                return self._power_spectrum(c)
            group = torch.zeros(c[0].shape[0], dtype=torch.long)
            return self._averaged(c, group, 1)[0]

        with torch.no_grad():
            features = features_of(positions)
        n_features = features.shape[-1]
        tangents = torch.zeros(len(indices) * 3, n_atoms, 3, dtype=dtype)
        rows = torch.arange(len(indices) * 3)
        tangents[rows, torch.as_tensor(np.repeat(indices, 3)), rows % 3] = 1.0
        # one forward-mode pass holds ~ (l_max + 1)² + (l_max + 1) n_max rows of the padded
        # neighbour slots, plus the output: chunk the tangents to stay near 256 MB
        n_slots = layout[0].n_blocks * layout[0].size
        per_tangent = 8 * (
            4 * ((self.l_max + 1) ** 2 + (self.l_max + 1) * self.n_max) * n_slots
            + 4 * features.numel()
        )
        per = int(min(64, max(1, 2.5e8 // max(per_tangent, 1))))
        jvp = torch.func.vmap(lambda t: torch.func.jvp(features_of, (positions,), (t,))[1])
        with warnings.catch_warnings():  # torch's forward-AD set-up warns about its own jit use
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            parts = [jvp(tangents[s : s + per]) for s in range(0, len(tangents), per)]
        jac = torch.cat(parts) if parts else features.new_zeros((0,) + features.shape)
        jac = jac.reshape(len(indices), 3, *features.shape)
        if self.average == "off":
            out = jac.permute(2, 0, 1, 3)  # (centres, atoms, 3, F)
        else:  # DScribe's shapes for one averaged system: (1, atoms, 3, F) and (1, F)
            out = jac.unsqueeze(0)
            features = features.unsqueeze(0)
        out = out.reshape(*out.shape[:-1], n_features)
        return out.detach().cpu().numpy(), features.detach().cpu().numpy()


# ---------------------------------------------------------------------------- helpers
def _parse_dtype(dtype) -> torch.dtype:
    if dtype in ("float64", torch.float64, np.float64):
        return torch.float64
    if dtype in ("float32", torch.float32, np.float32):
        return torch.float32
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def _positive_number(value, name: str) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a number, got {value!r}") from error
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _integer(value, name: str, low: int, high: int | None = None) -> int:
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_weighting(weighting: dict | None) -> dict:
    """A validated copy of DScribe's weighting dictionary (the input is not modified)."""
    if not weighting:
        return {}
    if not isinstance(weighting, dict):
        raise TypeError(f"weighting must be a dict, got {type(weighting).__name__}")
    w = dict(weighting)
    unknown = set(w) - {"function", "r0", "c", "m", "d", "threshold", "w0"}
    if unknown:
        raise ValueError(f"unknown weighting entries: {sorted(unknown)}")
    if "w0" in w:
        if w["w0"] is None or not float(w["w0"]) >= 0:
            raise ValueError("weighting: define w0 >= 0")
        w["w0"] = float(w["w0"])
    function = w.get("function")
    if function is None:
        w.pop("function", None)
        return w
    if function not in _WEIGHTING_FUNCTIONS:
        raise ValueError(
            f"weighting function must be one of {_WEIGHTING_FUNCTIONS}, got {function!r}"
        )

    def need(key, condition, text):
        value = w.get(key)
        if value is None or not condition(float(value)):
            raise ValueError(f"weighting: define {key} {text} for function {function!r}")
        w[key] = float(value)

    need("r0", lambda v: v > 0, "> 0")
    need("c", lambda v: v >= 0, ">= 0")
    if function in ("poly", "pow"):
        need("m", lambda v: v >= 0, ">= 0")
    if function in ("pow", "exp"):
        need("d", lambda v: v >= 0, ">= 0")
        w["threshold"] = float(w.get("threshold", 1e-2))
        if not w["threshold"] > 0:
            raise ValueError("weighting: threshold must be > 0")
    return w


def _infer_r_cut(w: dict) -> float | None:
    """DScribe's rule for r_cut from the weighting when r_cut is not given."""
    function = w.get("function")
    if function == "poly":
        return w["r0"]
    if function == "pow":
        return w["r0"] * (w["c"] / w["threshold"] - w["d"]) ** (1 / w["m"])
    if function == "exp":
        return w["r0"] * math.log(w["c"] / w["threshold"] - w["d"])
    return None


def _weight_function(r: torch.Tensor, w: dict) -> torch.Tensor:
    """DScribe's weighting functions of the distance r (Å), differentiable."""
    function, r0, c = w["function"], w["r0"], w["c"]
    x = r / r0
    if function == "poly":
        inside = r <= r0
        base = 1 + 2 * x**3 - 3 * x**2
        safe = torch.where(inside, base, torch.ones_like(base)).clamp_min(0)
        return torch.where(inside, c * safe ** w["m"], torch.zeros_like(r))
    if function == "pow":
        return c / (w["d"] + x ** w["m"])
    return c / (w["d"] + torch.exp(-x))


def _check_compression(compression: dict | None, species: list[int]) -> dict:
    if compression is None:
        return {"mode": "off", "species_weighting": None}
    if not isinstance(compression, dict):
        raise TypeError(f"compression must be a dict, got {type(compression).__name__}")
    c = dict(compression)
    mode = c.get("mode", "off")
    if mode not in _COMPRESSION_MODES:
        raise ValueError(f"compression mode must be one of {_COMPRESSION_MODES}, got {mode!r}")
    c["mode"] = mode
    weights = c.get("species_weighting")
    if weights is not None:
        if not isinstance(weights, dict):
            raise ValueError(
                "compression species_weighting must be None or a dict {species: weight}"
            )
        keys = {atomic_numbers_of([k])[0] for k in weights}
        if keys != set(species) or len(weights) != len(species):
            raise ValueError(
                "compression species_weighting must have exactly one entry per species"
            )
    c["species_weighting"] = weights
    return c


def _lookup_weight(weights: dict, z: int) -> float:
    for key, value in weights.items():
        if atomic_numbers_of([key])[0] == z:
            return float(value)
    raise ValueError(f"no species weight for {chemical_symbols[z]}")
