"""The descriptor contract: a torch module on :class:`AtomicGraph`, with DScribe's ``create``.

Every descriptor maps a batch of structures to features, differentiably in positions
and cell, so that a model built on top gets forces and stresses from autograd as a
vector-Jacobian product (no descriptor Jacobian is ever stored)::

    features = descriptor(graph)       # (N, F) per atom, or (B, F) per structure

For users who want arrays, :meth:`Descriptor.create` takes ``ase.Atoms`` -- one or a
list -- and returns NumPy arrays with DScribe's shapes, so that switching from
DScribe is a change of import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from torch import nn

from ..data.graph import AtomicGraph, consecutive_batches
from ..data.neighbors import NeighborList, neighbor_list
from ..errors import DataError, UnknownElementError


def atomic_numbers_of(species: Sequence[int | str]) -> list[int]:
    """Sorted, unique atomic numbers of ``species`` given as symbols or numbers.

    Raises
    ------
    ValueError
        An unknown symbol, a number out of range, or an empty list.
    """
    numbers = set()
    for s in species:
        if isinstance(s, str):
            if s not in chemical_symbols[1:]:
                raise ValueError(f"unknown element symbol {s!r}")
            numbers.add(chemical_symbols.index(s))
        else:
            z = int(s)
            if not 0 < z < len(chemical_symbols):
                raise ValueError(f"atomic number out of range: {z}")
            numbers.add(z)
    if not numbers:
        raise ValueError("species must name at least one element")
    return sorted(numbers)


@dataclass
class EdgeJacobian:
    """Per-atom features and their derivatives with respect to each neighbour vector.

    A per-atom descriptor depends on the positions only through the vectors
    ``v_e = r_j - r_i + S @ cell`` from each centre ``i`` to its neighbours ``j``, so its
    Jacobian is block-sparse: ``gradient[e]`` is the derivative of the centre's features
    with respect to its own edge ``e``. Forces and virials of anything built on the
    features follow by summing over edges (memory linear in the number of atoms; the
    dense (atoms x atoms x 3 x F) Jacobian is never formed)::

        dX/dr_k = sum_{e: j(e)=k} g_e - sum_{e: i(e)=k} g_e,    W_ab = sum_e g_e,a v_e,b

    Attributes
    ----------
    features
        (N, F) features of every atom.
    centre, neighbour
        (E,) atom indices ``i`` and ``j`` of each edge (edges that the descriptor ignores,
        beyond its cutoff or periodic images of an aperiodic descriptor, are left out).
    vectors
        (E, 3) edge vectors, Å.
    gradient
        (E, 3, F): ``d features[centre[e]] / d vectors[e]``, feature units per Å.
    """

    features: torch.Tensor
    centre: torch.Tensor
    neighbour: torch.Tensor
    vectors: torch.Tensor
    gradient: torch.Tensor


class Descriptor(nn.Module):
    """Base class of descriptors.

    Subclasses set ``self.species`` (sorted atomic numbers, or None for any element),
    ``self.cutoff`` (the neighbour cutoff the graph must be built with, Å, or None for
    descriptors that need no neighbour list) and implement :meth:`forward`,
    :meth:`get_number_of_features`, :meth:`feature_labels` and the property
    :attr:`per_atom`.
    """

    species: list[int] | None = None
    cutoff: float | None = None
    #: False describes every structure as isolated, whatever its ``pbc`` (DScribe's default)
    periodic: bool = True
    #: floating-point dtype of the features
    dtype: torch.dtype = torch.float64

    @property
    def per_atom(self) -> bool:
        """True when :meth:`forward` returns one row per atom, False for one per structure."""
        raise NotImplementedError

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Features, shape (N, F) if :attr:`per_atom` else (B, F)."""
        raise NotImplementedError

    def get_number_of_features(self) -> int:
        """The number of features F."""
        raise NotImplementedError

    def edge_jacobian(self, graph: AtomicGraph) -> EdgeJacobian:
        """Features and their derivatives per edge (see :class:`EdgeJacobian`); for per-atom
        descriptors that provide it (closed-form fits of potentials need it)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide edge Jacobians")

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this descriptor (JSON-serialisable)."""
        raise NotImplementedError(f"{type(self).__name__} does not provide get_config")

    def feature_labels(self) -> list[str]:
        """One label per feature column, saying what it holds (species, n, l...)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ input checks
    def check_structure(self, atoms: Atoms, index: int | None = None) -> None:
        """Reject structures the descriptor cannot describe, naming the structure and field."""
        if len(atoms) == 0:
            raise DataError("the structure has no atoms", index=index, field="numbers")
        if not np.isfinite(atoms.positions).all():
            raise DataError("positions contain NaN or inf", index=index, field="positions")
        if self.species is not None:
            unknown = sorted(set(atoms.numbers.tolist()) - set(self.species))
            if unknown:
                known = ", ".join(chemical_symbols[z] for z in self.species)
                names = ", ".join(chemical_symbols[z] for z in unknown)
                raise UnknownElementError(
                    f"element(s) {names} not in the descriptor's species ({known}); "
                    "pass them in species=",
                    index=index, field="numbers",
                )

    def graph(
        self, images: Sequence[Atoms], *, device: torch.device | str | None = None, check: bool = True
    ) -> AtomicGraph:
        """Collate structures into the graph this descriptor needs (its cutoff, its dtype, and
        no periodic images when :attr:`periodic` is False)."""
        if isinstance(images, Atoms):
            images = [images]
        if check:
            for k, atoms in enumerate(images):
                self.check_structure(atoms, k)
        if self.cutoff is None:
            empty = NeighborList(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
            lists = [empty] * len(images)
            cutoff = 0.0
        else:
            cutoff = self.cutoff
            lists = [neighbor_list(a.positions, a.cell.array, a.pbc if self.periodic else False, cutoff,
                                   sort=False) for a in images]
        return AtomicGraph.from_atoms(images, cutoff, dtype=self.dtype, device=device,
                                      neighbor_lists=lists, labels=False)

    # ------------------------------------------------------------------ DScribe-style API
    def create(
        self,
        system: Atoms | Sequence[Atoms],
        centers: Sequence[int] | Sequence[Sequence[int]] | None = None,
        n_jobs: int = 1,
        only_physical_cores: bool = False,
        verbose: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Features as NumPy arrays, with DScribe's shapes.

        Parameters
        ----------
        system
            One structure or a list of them.
        centers
            Atom indices to describe (per-atom descriptors only); for a list of systems,
            one list of indices per system. Default: every atom.
        n_jobs
            Threads over structures (torch releases the GIL in its kernels); a negative
            number counts back from the number of CPUs, as in DScribe.
        only_physical_cores, verbose
            Accepted for DScribe compatibility; ignored.

        Returns
        -------
        ndarray or list of ndarray
            One system: (n_centers, F) per atom, (F,) per structure. Several systems: the
            stacked array (n_systems, n_centers, F) or (n_systems, F) when every system
            gives the same shape, else a list of per-system arrays.
        """
        single = isinstance(system, Atoms)
        images = [system] if single else list(system)
        if centers is not None and single:
            centers = [centers]
        if centers is not None and not self.per_atom:
            raise ValueError("centers= applies to per-atom descriptors only")
        if centers is not None and len(centers) != len(images):
            raise ValueError(f"got {len(centers)} lists of centers for {len(images)} systems")
        n_jobs = (os.cpu_count() or 1) + 1 + n_jobs if n_jobs < 0 else max(1, n_jobs)
        # Check every structure first, so that an error names its index in the caller's list.
        for k, atoms in enumerate(images):
            self.check_structure(atoms, None if single else k)

        def compute(chunk: list[int]) -> list[np.ndarray]:
            with torch.no_grad():
                features = self(self.graph([images[k] for k in chunk], check=False)).cpu().numpy()
            if not self.per_atom:
                return list(features)
            split = np.cumsum([len(images[k]) for k in chunk])[:-1]
            rows = np.split(features, split)
            if centers is not None:
                rows = [r[np.asarray(centers[k], dtype=np.int64)] for r, k in zip(rows, chunk)]
            return rows

        chunks = _chunks(images, n_jobs)
        if n_jobs == 1:
            results = [r for chunk in chunks for r in compute(chunk)]
        else:
            with ThreadPoolExecutor(n_jobs) as pool:
                results = [r for part in pool.map(compute, chunks) for r in part]
        if single:
            return results[0]
        if len({r.shape for r in results}) == 1:
            return np.stack(results)
        return results


def _chunks(images: Sequence[Atoms], n_parts: int, max_atoms: int = 4096) -> list[list[int]]:
    """Consecutive groups of structures, at most ``max_atoms`` each, at least ``n_parts`` groups."""
    sizes = [len(a) for a in images]
    return consecutive_batches(sizes, max(1, min(max_atoms, -(-sum(sizes) // n_parts))))
