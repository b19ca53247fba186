"""Checks that a structure and its labels are usable, with errors that say where to look.

:func:`ml4ms.data.read` runs :func:`validate_structure` on every structure it returns, so
bad data stops at the reader instead of surfacing as a NaN loss three modules later.
Every failure is a :class:`~ml4ms.errors.DataError` naming the source, the structure
index and the field, e.g. ::

    train.xyz: structure 17: forces: expected shape (12, 3), got (12, 2)

The cost is linear in the number of atoms: the close-contact check uses the cell-list
neighbour search of :func:`ml4ms.data.neighbors.neighbor_list` with a short cutoff.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
from ase import Atoms

from ..errors import DataError
from ..keys import ENERGY, FORCES, STRESS
from .neighbors import neighbor_list

__all__ = ["validate_structure", "validate_structures"]

# A periodic cell whose periodic lattice vectors span less than this fraction of the
# product of their lengths is treated as degenerate (a sine of ~1e-9 between vectors).
_DEGENERATE_RTOL = 1e-9

# The close-contact search uses at least this cutoff, Å, and filters the pairs after.
# vesin's cell list bins space in cells about one cutoff wide, so a 0.1 Å search would
# visit ~(L / 0.1 Å)^3 mostly empty cells (15 ms for a 108-atom, 11 Å cell); with 1 Å
# it takes ~0.3 ms, and real structures have few pairs under 1 Å (X-H bonds only), so
# the cost stays linear in the number of atoms.
_SEARCH_CUTOFF = 1.0


def validate_structure(
    atoms: Atoms,
    *,
    source: str | os.PathLike | None = None,
    index: int | None = None,
    require: Iterable[str] | str = (),
    min_distance: float | None = 0.1,
) -> None:
    """Raise a :class:`~ml4ms.errors.DataError` if a structure or its labels are unusable.

    Checks, in order:

    1. the structure has at least one atom (field ``"atoms"``);
    2. positions, (n_atoms, 3) Å, are finite (``"positions"``);
    3. the cell, (3, 3) Å, is finite (``"cell"``), and its periodic lattice vectors span
       a non-zero length, area or volume (``"cell"``);
    4. the labels present have the canonical shapes and are finite:
       ``info["energy"]`` a real number (eV), ``arrays["forces"]`` (n_atoms, 3) eV/Å,
       ``info["stress"]`` (6,) eV/Å³ in Voigt order (``"energy"``, ``"forces"``,
       ``"stress"``);
    5. every label named in ``require`` is present in ``atoms.info`` or ``atoms.arrays``;
    6. no two atoms (including periodic images) are closer than ``min_distance`` Å
       (``"positions"``; the message names both atoms and their distance).

    Parameters
    ----------
    atoms
        The structure.
    source, index
        File/database and structure index, used in error messages.
    require
        Names of labels that must be present, e.g. ``("energy", "forces")``.
    min_distance
        Smallest allowed interatomic distance, Å. ``None`` or 0 skips the check.

    Raises
    ------
    DataError
        The first problem found.
    """

    def fail(message: str, field: str) -> DataError:
        return DataError(message, source=source, index=index, field=field)

    if not isinstance(atoms, Atoms):
        raise fail(f"expected ase.Atoms, got {type(atoms).__name__}", "atoms")
    n = len(atoms)
    if n == 0:
        raise fail("the structure is empty (no atoms)", "atoms")

    positions = np.asarray(atoms.positions, dtype=np.float64)
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        raise fail(f"contain NaN or inf (first at atom {int(np.flatnonzero(bad)[0])})", "positions")
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not np.isfinite(cell).all():
        raise fail("contains NaN or inf", "cell")
    _check_periodic_cell(cell, pbc, fail)

    _check_labels(atoms, n, fail)

    if isinstance(require, str):
        require = (require,)
    for key in require:
        if key not in atoms.info and key not in atoms.arrays:
            raise fail("required label is missing", key)

    if min_distance:
        _check_min_distance(positions, cell, pbc, float(min_distance), fail)


def validate_structures(
    images: Iterable[Atoms],
    *,
    source: str | os.PathLike | None = None,
    require: Iterable[str] | str = (),
    min_distance: float | None = 0.1,
) -> None:
    """Run :func:`validate_structure` on every structure; errors name its position in ``images``.

    Parameters
    ----------
    images
        The structures.
    source
        File or database they came from, for error messages.
    require, min_distance
        As in :func:`validate_structure`.

    Raises
    ------
    DataError
        For the first bad structure.
    """
    require = (require,) if isinstance(require, str) else tuple(require)
    for i, atoms in enumerate(images):
        validate_structure(
            atoms, source=source, index=i, require=require, min_distance=min_distance
        )


def _check_periodic_cell(cell: np.ndarray, pbc: np.ndarray, fail) -> None:
    """The periodic lattice vectors must be linearly independent."""
    k = int(pbc.sum())
    if k == 0:
        return
    periodic = cell[pbc]
    # sqrt(det(Gram)) is the length, area or volume spanned by the periodic vectors.
    measure = float(np.sqrt(max(np.linalg.det(periodic @ periodic.T), 0.0)))
    scale = float(np.prod(np.linalg.norm(periodic, axis=1)))
    if measure <= _DEGENERATE_RTOL * scale or scale == 0.0:
        what = {1: "length", 2: "area", 3: "volume"}[k]
        unit = {1: "Å", 2: "Å²", 3: "Å³"}[k]
        flags = " ".join("T" if p else "F" for p in pbc)
        raise fail(
            f"the cell has zero {what} along its periodic directions (pbc = {flags}, "
            f"{what} = {measure:.3g} {unit}); periodic lattice vectors must be non-zero "
            "and linearly independent (set pbc=False along directions that are not periodic)",
            "cell",
        )


def _check_labels(atoms: Atoms, n: int, fail) -> None:
    if ENERGY in atoms.info:
        energy = np.asarray(atoms.info[ENERGY])
        if energy.shape != () or energy.dtype.kind not in "iuf":
            raise fail(f"expected a real number (eV), got {atoms.info[ENERGY]!r}", ENERGY)
        if not np.isfinite(energy):
            raise fail(f"is {float(energy)} (NaN or inf)", ENERGY)
    if FORCES in atoms.arrays:
        forces = np.asarray(atoms.arrays[FORCES])
        if forces.shape != (n, 3) or forces.dtype.kind not in "iuf":
            raise fail(
                f"expected shape ({n}, 3) of numbers (eV/Å), got {forces.shape} {forces.dtype}",
                FORCES,
            )
        bad = ~np.isfinite(forces).all(axis=1)
        if bad.any():
            raise fail(f"contain NaN or inf (first at atom {int(np.flatnonzero(bad)[0])})", FORCES)
    if STRESS in atoms.info:
        stress = np.asarray(atoms.info[STRESS])
        if stress.shape != (6,) or stress.dtype.kind not in "iuf":
            raise fail(
                "expected 6 numbers (Voigt xx, yy, zz, yz, xz, xy; eV/Å³), "
                f"got shape {stress.shape} {stress.dtype}",
                STRESS,
            )
        if not np.isfinite(stress).all():
            raise fail("contains NaN or inf", STRESS)


def _check_min_distance(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, min_distance: float, fail
) -> None:
    nl = neighbor_list(positions, _complete_cell(cell, pbc), pbc, max(min_distance, _SEARCH_CUTOFF))
    if len(nl.i) == 0:
        return
    distances = np.linalg.norm(nl.vectors(positions, cell), axis=1)
    k = int(np.argmin(distances))
    if distances[k] >= min_distance:
        return
    i, j, d = int(nl.i[k]), int(nl.j[k]), float(distances[k])
    if i == j:
        raise fail(
            f"atom {i} is {d:.4g} Å from its own periodic image, closer than "
            f"min_distance = {min_distance} Å (a lattice vector is too short)",
            "positions",
        )
    i, j = min(i, j), max(i, j)
    raise fail(
        f"atoms {i} and {j} are {d:.4g} Å apart, closer than min_distance = {min_distance} Å",
        "positions",
    )


def _complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Replace the lattice vectors of non-periodic directions if they make the cell singular.

    The neighbour search needs an invertible box when any direction is periodic, but a
    slab or wire may carry a zero vector along its open directions. Those vectors do not
    affect any distance (no images are taken along them), so they are replaced by unit
    vectors orthogonal to the periodic ones.
    """
    k = int(pbc.sum())
    if k in (0, 3):
        return cell
    if abs(np.linalg.det(cell)) > 1e-9 * max(1.0, float(np.abs(cell).max())) ** 3:
        return cell
    # The last right-singular vectors of the periodic rows span their orthogonal complement.
    _, _, vt = np.linalg.svd(cell[pbc])
    completed = cell.copy()
    completed[~pbc] = vt[k:]
    return completed
