"""Neighbour lists for periodic (triclinic, mixed boundary conditions) and isolated systems.

The pairs are found by vesin's cell-list algorithm (compiled, linear in the number of
atoms), which returns exactly the pairs and shift vectors of
:func:`ase.neighborlist.neighbor_list` -- including cells smaller than the cutoff,
where an atom sees many images of its neighbours and of itself. ml4ms adds input
checks with clear errors and a deterministic order (sorted by centre, then
neighbour, then shift), so that every model sees the same edges on every run.

Convention (as in ASE): the vector from atom ``i`` to its neighbour ``j`` is ::

    D = positions[j] - positions[i] + S @ cell

with ``S`` the integer image shift of ``j``. Both (i, j) and (j, i) are listed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import vesin

from ..errors import DataError


class NeighborList(NamedTuple):
    """Pairs within the cutoff.

    Attributes
    ----------
    i, j
        ndarray of shape (n_pairs,), int64: centre and neighbour atom indices.
    shifts
        ndarray of shape (n_pairs, 3), int64: image shift ``S`` of ``j`` in lattice vectors.
    """

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray

    def vectors(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Pair vectors ``positions[j] - positions[i] + shifts @ cell``, shape (n_pairs, 3), Å."""
        return positions[self.j] - positions[self.i] + self.shifts @ np.asarray(cell)


def _complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """A cell of non-zero volume with the same periodic vectors.

    Only the periodic lattice vectors matter; a non-periodic one may be zero or
    parallel to the others (a slab built without vacuum), and is then replaced by a
    unit vector orthogonal to the periodic ones -- image shifts along it are always 0.
    """
    periodic = cell[pbc]
    scale = max(1.0, float(np.abs(periodic).max()))
    singular = np.linalg.svd(periodic, compute_uv=False)
    if singular.min() < 1e-9 * scale:
        raise DataError("the periodic lattice vectors span zero volume", field="cell")
    if abs(np.linalg.det(cell)) > 1e-9 * scale**3:
        return cell
    # The rows of vt beyond the periodic ones span the orthogonal complement.
    complement = np.linalg.svd(periodic)[2][len(periodic):]
    completed = cell.copy()
    completed[~pbc] = complement
    return completed


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray | bool,
    cutoff: float,
    *,
    sort: bool = True,
) -> NeighborList:
    """All ordered pairs (i, j, S) with ``|D| < cutoff``, ``i != j`` or ``S != 0``.

    Parameters
    ----------
    positions
        ndarray of shape (n_atoms, 3), Å.
    cell
        ndarray of shape (3, 3), Å; rows are the lattice vectors. Ignored along
        non-periodic directions (it may be all zeros for an isolated system).
    pbc
        bool or ndarray of shape (3,): periodicity along each lattice vector.
    cutoff
        Cutoff radius, Å, > 0.
    sort
        Sort by ``i``, then ``j``, then ``S``. Without sorting the order is still
        reproducible (one thread, same input, same order) and the call is faster; only
        the order in which floating-point sums run depends on it.

    Returns
    -------
    NeighborList

    Raises
    ------
    DataError
        Non-finite positions, a non-positive cutoff, or a periodic direction whose
        lattice vectors span no volume.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if not cutoff > 0 or not np.isfinite(cutoff):
        raise DataError(f"the cutoff must be a positive number of Å, got {cutoff}", field="cutoff")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise DataError(f"expected shape (n_atoms, 3), got {positions.shape}", field="positions")
    if not np.isfinite(positions).all():
        raise DataError("positions contain NaN or inf", field="positions")
    if len(positions) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NeighborList(empty, empty.copy(), np.zeros((0, 3), dtype=np.int64))
    if pbc.any():
        if not np.isfinite(cell[pbc]).all():
            raise DataError("the cell contains NaN or inf", field="cell")
        cell = _complete_cell(cell, pbc)
    else:
        # vesin needs a box even when nothing is periodic; its value is then unused.
        cell = np.zeros((3, 3))

    # One thread: vesin's pair order is then reproducible, and the sort below only has
    # to break ties that repeat a (i, j) pair, which happens in cells smaller than 2 cutoffs.
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True, sorted=False, n_threads=1)
    i, j, shifts = calculator.compute(positions, cell, pbc, quantities="ijS", copy=True)
    i = i.astype(np.int64, copy=False)
    j = j.astype(np.int64, copy=False)
    shifts = shifts.astype(np.int64, copy=False)
    if not sort:
        return NeighborList(i, j, shifts)
    key = i * len(positions) + j
    order = np.argsort(key, kind="stable")
    key = key[order]
    if len(key) > 1 and (key[1:] == key[:-1]).any():
        s = shifts[order]
        order = order[np.lexsort((s[:, 2], s[:, 1], s[:, 0], key))]
    return NeighborList(i[order], j[order], shifts[order])
