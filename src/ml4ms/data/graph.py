"""AtomicGraph: a batch of structures as torch tensors, the input of every model.

A batch of ``B`` structures with ``N`` atoms in all and ``E`` directed edges is stored
flat, as PyTorch Geometric and MACE do: atoms of all structures are concatenated and
``batch`` says which structure each atom belongs to. Edges come from one neighbour
list per structure (:func:`ml4ms.data.neighbors.neighbor_list`) and are kept as integer
image shifts, not as vectors, so that edge vectors can be recomputed -- differentiably
-- from positions and cell whenever they are strained or moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from .. import keys
from .neighbors import NeighborList, neighbor_list


@dataclass
class AtomicGraph:
    """A batch of atomic structures.

    Attributes
    ----------
    positions
        Tensor of shape (N, 3), Å.
    numbers
        Tensor of shape (N,), int64: atomic numbers.
    cell
        Tensor of shape (B, 3, 3), Å; rows are lattice vectors (zeros for isolated systems).
    pbc
        Tensor of shape (B, 3), bool.
    batch
        Tensor of shape (N,), int64: the structure of each atom, in ``0..B-1``.
    edge_index
        Tensor of shape (2, E), int64: ``edge_index[0]`` is the centre ``i`` and
        ``edge_index[1]`` the neighbour ``j`` (global atom indices). Both directions are listed.
    shifts
        Tensor of shape (E, 3), same dtype as ``positions``: image shift of ``j`` in lattice
        vectors, so that the edge vector is ``positions[j] - positions[i] + shifts @ cell``.
    cutoff
        Cutoff radius used to build the edges, Å.
    energy
        Tensor of shape (B,), eV, or None. Entries without a label are NaN.
    forces
        Tensor of shape (N, 3), eV/Å, or None. Rows without a label are NaN.
    stress
        Tensor of shape (B, 3, 3), eV/Å³ (ASE sign, positive = tensile), or None.
        Entries without a label are NaN.
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    cutoff: float
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    @property
    def n_structures(self) -> int:
        """Number of structures B in the batch."""
        return int(self.cell.shape[0])

    @property
    def n_atoms(self) -> torch.Tensor:
        """Tensor of shape (B,), int64: the number of atoms of each structure."""
        return torch.bincount(self.batch, minlength=self.n_structures)

    def edge_vectors(
        self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Edge vectors ``r_j - r_i + S @ cell``, shape (E, 3), Å.

        ``positions`` and ``cell`` default to the graph's own; pass strained or
        gradient-tracking copies to differentiate through them.
        """
        positions = self.positions if positions is None else positions
        cell = self.cell if cell is None else cell
        i, j = self.edge_index
        offsets = torch.einsum("ea,eab->eb", self.shifts, cell[self.batch[i]])
        return positions[j] - positions[i] + offsets

    def volumes(self) -> torch.Tensor:
        """Cell volumes, shape (B,), Å³ (the absolute determinant; 0 for isolated systems)."""
        return torch.linalg.det(self.cell).abs()

    def replace(self, **changes) -> AtomicGraph:
        """A shallow copy with some fields replaced (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomicGraph:
        """Move to ``device``; cast floating-point fields to ``dtype``."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                cast = dtype if (dtype is not None and value.is_floating_point()) else None
                changes[field.name] = value.to(device=device, dtype=cast)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_atoms(
        cls,
        images: Atoms | Sequence[Atoms],
        cutoff: float,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        neighbor_lists: Sequence[NeighborList] | None = None,
        labels: bool = True,
    ) -> AtomicGraph:
        """Collate structures into one graph.

        Parameters
        ----------
        images
            One :class:`ase.Atoms` or a sequence of them. Labels are taken from
            ``info["energy"]``, ``arrays["forces"]`` and ``info["stress"]`` (Voigt-6 or
            3x3, eV/Å³) when any structure has them.
        cutoff
            Neighbour cutoff, Å.
        dtype
            Floating-point dtype of positions, cell, shifts and labels.
        device
            Where the tensors go.
        neighbor_lists
            Precomputed neighbour lists (one per structure, for this cutoff), e.g. from
            a dataset's cache; computed when omitted.
        labels
            Collate the labels; False leaves them None (a calculator must not read
            labels the atoms happen to carry).

        Returns
        -------
        AtomicGraph
        """
        if isinstance(images, Atoms):
            images = [images]
        if neighbor_lists is None:
            neighbor_lists = [
                neighbor_list(a.positions, a.cell.array, a.pbc, cutoff) for a in images
            ]
        counts = np.array([len(a) for a in images], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_edges = np.array([len(nl.i) for nl in neighbor_lists], dtype=np.int64)

        positions = np.concatenate([a.positions for a in images]) if len(images) else np.zeros((0, 3))
        numbers = np.concatenate([a.numbers for a in images]) if len(images) else np.zeros(0, int)
        cell = np.stack([a.cell.array for a in images]) if len(images) else np.zeros((0, 3, 3))
        pbc = np.stack([a.pbc for a in images]) if len(images) else np.zeros((0, 3), bool)
        batch = np.repeat(np.arange(len(images)), counts)
        edge_offsets = np.repeat(offsets, n_edges)
        if n_edges.sum():
            i = np.concatenate([nl.i for nl in neighbor_lists]) + edge_offsets
            j = np.concatenate([nl.j for nl in neighbor_lists]) + edge_offsets
            shifts = np.concatenate([nl.shifts for nl in neighbor_lists])
        else:
            i = j = np.zeros(0, dtype=np.int64)
            shifts = np.zeros((0, 3))

        def tensor(x, float_=True):
            return torch.as_tensor(np.asarray(x), dtype=dtype if float_ else None, device=device)

        energy, forces, stress = _collate_labels(images) if labels else (None, None, None)
        return cls(
            positions=tensor(positions),
            numbers=torch.as_tensor(numbers, dtype=torch.int64, device=device),
            cell=tensor(cell),
            pbc=torch.as_tensor(pbc, dtype=torch.bool, device=device),
            batch=torch.as_tensor(batch, dtype=torch.int64, device=device),
            edge_index=torch.as_tensor(np.stack([i, j]), dtype=torch.int64, device=device),
            shifts=tensor(shifts),
            cutoff=float(cutoff),
            energy=None if energy is None else tensor(energy),
            forces=None if forces is None else tensor(forces),
            stress=None if stress is None else tensor(stress),
        )


def consecutive_batches(sizes: Sequence[int], max_atoms: int) -> list[list[int]]:
    """Indices of consecutive structures grouped so that a group holds at most ``max_atoms``
    atoms (a larger structure forms a group of its own). Keeps the input order, so that
    results can be written back without sorting."""
    groups: list[list[int]] = []
    count = 0
    for k, size in enumerate(sizes):
        if not groups or count + size > max_atoms:
            groups.append([])
            count = 0
        groups[-1].append(k)
        count += size
    return groups


def _collate_labels(images: Sequence[Atoms]):
    """Stack labels, NaN where a structure lacks one; None where no structure has it."""
    has_energy = [keys.ENERGY in a.info for a in images]
    has_forces = [keys.FORCES in a.arrays for a in images]
    has_stress = [keys.STRESS in a.info for a in images]
    energy = forces = stress = None
    if any(has_energy):
        energy = np.array([float(a.info[keys.ENERGY]) if h else np.nan for a, h in zip(images, has_energy)])
    if any(has_forces):
        forces = np.concatenate(
            [a.arrays[keys.FORCES] if h else np.full((len(a), 3), np.nan) for a, h in zip(images, has_forces)]
        )
    if any(has_stress):
        stress = np.stack([_stress_3x3(a.info[keys.STRESS]) if h else np.full((3, 3), np.nan)
                           for a, h in zip(images, has_stress)])
    return energy, forces, stress


def _stress_3x3(stress) -> np.ndarray:
    stress = np.asarray(stress, dtype=float)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)
