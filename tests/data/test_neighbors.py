"""The neighbour list finds exactly ASE's pairs and vectors, in every kind of cell."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ml4ms.data import neighbor_list
from ml4ms.errors import DataError


def _random_structure(rng: np.random.Generator, case: int) -> tuple[Atoms, float]:
    """Triclinic cells of many shapes, some smaller than the cutoff, and mixed or no pbc."""
    n = int(rng.integers(1, 30))
    scale = rng.uniform(1.5, 9.0)
    cell = scale * (np.eye(3) + rng.uniform(-0.45, 0.45, (3, 3)))
    while abs(np.linalg.det(cell)) < 0.2 * scale**3:
        cell = scale * (np.eye(3) + rng.uniform(-0.45, 0.45, (3, 3)))
    pbc = [rng.random() < 0.75 for _ in range(3)] if case % 5 else [False] * 3
    positions = rng.random((n, 3)) @ cell
    if case % 7 == 0:  # atoms outside the cell must be handled as well as wrapped ones
        positions += rng.normal(0, scale, (n, 3))
    cutoff = rng.uniform(1.0, 6.0)
    return Atoms(["Si"] * n, positions=positions, cell=cell, pbc=pbc), cutoff


def _canonical(i, j, S, D):
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], S[order], D[order]


@pytest.mark.parametrize("case", range(120))
def test_pairs_shifts_and_vectors_equal_ase(case):
    atoms, cutoff = _random_structure(np.random.default_rng(case), case)
    i0, j0, S0, D0 = _canonical(*ase_neighbor_list("ijSD", atoms, cutoff))
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    D = nl.vectors(atoms.positions, atoms.cell.array)
    assert len(nl.i) == len(i0)
    np.testing.assert_array_equal(nl.i, i0)
    np.testing.assert_array_equal(nl.j, j0)
    np.testing.assert_array_equal(nl.shifts, S0)
    np.testing.assert_allclose(D, D0, atol=1e-10)


def test_cell_much_smaller_than_cutoff_sees_many_images_of_itself():
    atoms = bulk("Cu", "fcc", a=3.6)  # 1 atom, nearest neighbour 2.55 Å
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 2.6)
    assert len(nl.i) == 12  # the 12 nearest neighbours of fcc are all images of atom 0
    assert (nl.i == 0).all() and (nl.j == 0).all()
    assert not (nl.shifts == 0).all(axis=1).any()


def test_isolated_molecule_ignores_the_cell():
    atoms = molecule("CH4")
    atoms.cell = np.eye(3) * 0.5  # a cell that would matter if it were periodic
    nl = neighbor_list(atoms.positions, atoms.cell.array, False, 1.2)
    assert len(nl.i) == 8  # four C-H bonds, both directions; H-H is 1.78 Å
    assert (nl.shifts == 0).all()


def test_pairs_are_symmetric():
    atoms = bulk("Si", "diamond", a=5.43).repeat(2)
    atoms.rattle(0.05, seed=1)
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 4.0)
    forward = set(zip(nl.i, nl.j, *nl.shifts.T))
    backward = set(zip(nl.j, nl.i, *(-nl.shifts).T))
    assert forward == backward


def test_empty_structure_has_no_pairs():
    nl = neighbor_list(np.zeros((0, 3)), np.eye(3), True, 3.0)
    assert nl.i.shape == (0,) and nl.shifts.shape == (0, 3)


@pytest.mark.parametrize(
    ("positions", "cell", "pbc", "cutoff", "field"),
    [
        (np.full((2, 3), np.nan), np.eye(3) * 5, True, 3.0, "positions"),
        (np.zeros((2, 3)), np.eye(3) * 5, True, -1.0, "cutoff"),
        (np.zeros((2, 3)), np.zeros((3, 3)), True, 3.0, "cell"),
        (np.zeros((2, 3)), np.diag([4.0, 0.0, 4.0]), [True, True, False], 3.0, "cell"),
        (np.zeros((2, 2)), np.eye(3) * 5, True, 3.0, "positions"),
    ],
)
def test_bad_input_is_a_clear_error(positions, cell, pbc, cutoff, field):
    with pytest.raises(DataError) as error:
        neighbor_list(positions, cell, pbc, cutoff)
    assert error.value.field == field


@pytest.mark.parametrize("vacuum", [None, 0.0, 8.0])
def test_slab_whose_non_periodic_vector_is_zero_matches_ase(vacuum):
    from ase.build import fcc111

    atoms = fcc111("Cu", size=(2, 2, 3), vacuum=vacuum)  # vacuum=None leaves the third vector zero
    atoms.rattle(0.02, seed=3)
    i0, j0, S0, D0 = _canonical(*ase_neighbor_list("ijSD", atoms, 3.0))
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 3.0)
    np.testing.assert_array_equal(nl.i, i0)
    np.testing.assert_array_equal(nl.j, j0)
    np.testing.assert_array_equal(nl.shifts, S0)
    np.testing.assert_allclose(nl.vectors(atoms.positions, atoms.cell.array), D0, atol=1e-10)
