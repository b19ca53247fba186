"""Tests of ml4ms.data.validate: each check fires and names source, index and field."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule

from ml4ms.data.validate import validate_structure, validate_structures
from ml4ms.errors import DataError


def _labelled_cu() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.info["energy"] = -14.0
    atoms.arrays["forces"] = np.zeros((len(atoms), 3))
    atoms.info["stress"] = np.zeros(6)
    return atoms


def _raises(atoms: Atoms, field: str, *fragments: str, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        validate_structure(atoms, source="data/train.xyz", index=17, **kwargs)
    err = info.value
    text = str(err)
    assert err.source == "data/train.xyz" and err.index == 17 and err.field == field, text
    assert text.startswith(f"data/train.xyz: structure 17: {field}: "), text
    for fragment in fragments:
        assert fragment in text, text
    assert "\n" not in text
    return err


def test_good_structures_pass():
    validate_structure(_labelled_cu(), require=("energy", "forces", "stress"))
    # An isolated molecule: no cell at all.
    validate_structure(molecule("CH4"))
    # A slab periodic in-plane only, with a zero vector along its open direction.
    slab = fcc111("Cu", size=(2, 2, 3))
    slab.cell[2] = 0.0
    slab.pbc = (True, True, False)
    validate_structure(slab)
    # A one-atom cell: its periodic images are 2.55 Å away, not a close contact.
    validate_structure(bulk("Cu"))


def test_empty_structure():
    _raises(Atoms(), "atoms", "empty")


@pytest.mark.parametrize("where", [0, 3])
def test_nan_positions_name_the_atom(where):
    atoms = _labelled_cu()
    atoms.positions[where, 1] = np.nan
    _raises(atoms, "positions", "NaN", f"atom {where}")


def test_inf_cell():
    atoms = _labelled_cu()
    atoms.cell[1, 1] = np.inf
    _raises(atoms, "cell", "NaN or inf")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_energy(value):
    atoms = _labelled_cu()
    atoms.info["energy"] = value
    _raises(atoms, "energy", "NaN or inf")


def test_energy_not_a_number():
    atoms = _labelled_cu()
    atoms.info["energy"] = "abc"
    _raises(atoms, "energy", "real number")
    atoms.info["energy"] = [1.0, 2.0]
    _raises(atoms, "energy", "real number")


def test_forces_wrong_shape_and_nan():
    atoms = _labelled_cu()
    atoms.arrays["forces"] = np.zeros((4, 2))
    _raises(atoms, "forces", "expected shape (4, 3)", "(4, 2)")
    atoms.arrays["forces"] = np.zeros((4, 3))
    atoms.arrays["forces"][2, 0] = np.nan
    _raises(atoms, "forces", "NaN", "atom 2")


def test_stress_wrong_shape_and_nan():
    atoms = _labelled_cu()
    atoms.info["stress"] = np.zeros((3, 3))
    _raises(atoms, "stress", "6 numbers", "(3, 3)")
    atoms.info["stress"] = np.array([0, 0, 0, 0, np.inf, 0.0])
    _raises(atoms, "stress", "NaN or inf")


def test_missing_required_label():
    atoms = _labelled_cu()
    del atoms.info["energy"]
    _raises(atoms, "energy", "missing", require=("energy",))
    # A single string is one label, not a sequence of letters.
    _raises(atoms, "energy", "missing", require="energy")
    validate_structure(atoms, require=("forces", "stress"))


def test_zero_volume_periodic_cell():
    atoms = _labelled_cu()
    atoms.cell[2] = atoms.cell[0] + atoms.cell[1]  # coplanar lattice vectors
    _raises(atoms, "cell", "zero volume", "pbc = T T T")
    atoms = _labelled_cu()
    atoms.cell[2] = 0.0
    _raises(atoms, "cell", "zero volume")
    # Two periodic directions along the same line: zero area.
    atoms = _labelled_cu()
    atoms.pbc = (True, True, False)
    atoms.cell[1] = 2 * atoms.cell[0]
    _raises(atoms, "cell", "zero area", "pbc = T T F")


def test_close_atoms_name_both_and_the_distance():
    atoms = Atoms(
        "CuCuCu", positions=[[0, 0, 0], [2.5, 0, 0], [2.55, 0, 0]], cell=[10, 10, 10], pbc=True
    )
    err = _raises(atoms, "positions", "atoms 1 and 2", "0.05 Å", "min_distance = 0.1")
    assert "0.05" in err.message
    # A larger threshold catches the 2.5 Å pair too, and still reports the closest.
    _raises(atoms, "positions", "atoms 1 and 2", min_distance=3.0)
    validate_structure(atoms, min_distance=0.04)
    validate_structure(atoms, min_distance=None)


def test_close_atoms_across_the_periodic_boundary():
    atoms = Atoms("Cu2", positions=[[0.01, 5, 5], [9.97, 5, 5]], cell=[10, 10, 10], pbc=True)
    _raises(atoms, "positions", "atoms 0 and 1", "0.04 Å")
    # Without periodicity they are 9.96 Å apart.
    atoms.pbc = False
    validate_structure(atoms)


def test_atom_close_to_its_own_image():
    atoms = Atoms("H", positions=[[0, 0, 0]], cell=[0.05, 5, 5], pbc=True)
    _raises(atoms, "positions", "atom 0", "own periodic image")


def test_validate_structures_reports_the_index():
    images = [_labelled_cu() for _ in range(4)]
    images[2].info["energy"] = np.nan
    with pytest.raises(DataError) as info:
        validate_structures(images, source="x.db")
    assert info.value.index == 2 and info.value.source == "x.db" and info.value.field == "energy"
    validate_structures(images[:2], require=("energy",))


def test_close_contact_check_is_vectorised_and_linear():
    # 32,000 atoms on a fcc lattice with one displaced atom: the check must find the
    # pair (the last atoms of the list) in well under a second on a shared core.
    import time

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((20, 20, 20))
    atoms.positions[-1] = atoms.positions[-2] + [0.0, 0.0, 0.07]
    start = time.perf_counter()
    with pytest.raises(DataError, match=f"atoms {len(atoms) - 2} and {len(atoms) - 1}"):
        validate_structure(atoms)
    assert time.perf_counter() - start < 5.0
