"""Tests of ml4ms.data.io: labels from every source land in one place, in ASE units.

References are independent of the reader: ASE's EMT calculator (energy, forces and
stress of rattled and strained Cu cells), ASE's own writers and databases.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import voigt_6_to_full_3x3_stress

from ml4ms.data.io import read, write
from ml4ms.errors import DataError, FileFormatError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def _data_dir() -> Path:
    path = Path(os.environ.get("ML4MS_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "mlearn").is_dir():
        pytest.fail(f"reference data not found under {path} (set ML4MS_DATA_DIR)")
    return path


def _emt_images(n: int = 5) -> list[Atoms]:
    """Rattled, strained 8-atom Cu cells labelled by EMT (calculator attached)."""
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        strain = np.eye(3) + 0.01 * np.array([[k, 1, 0], [1, -k, 2], [0, 2, 0.5 * k]])
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        atoms.info["config_type"] = f"strained-{k}"
        images.append(atoms)
    return images


def _reference(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    return (
        atoms.calc.results["energy"],
        atoms.calc.results["forces"].copy(),
        atoms.calc.results["stress"].copy(),
    )


def _check_error(err: Exception, path: Path | str, *fragments: str) -> str:
    text = str(err)
    assert str(path) in text, text
    for fragment in fragments:
        assert fragment in text, text
    assert "\n" not in text and "Traceback" not in text, text
    return text


# ------------------------------------------------------------------ extxyz and labels


def test_extxyz_through_ase_singlepoint_calculator(tmp_path):
    images = _emt_images()
    path = tmp_path / "emt.xyz"
    ase.io.write(path, images)  # ASE's writer; ASE >= 3.23 reads the labels into a calculator
    out = read(path)
    assert len(out) == len(images)
    for ref, got in zip(images, out):
        energy, forces, stress = _reference(ref)
        assert got.calc is None
        assert got.info["energy"] == energy  # info floats are written with repr
        np.testing.assert_allclose(got.arrays["forces"], forces, rtol=0, atol=1e-8)  # 8 decimals
        np.testing.assert_allclose(got.info["stress"], stress, rtol=1e-14, atol=1e-16)
        assert got.info["config_type"] == ref.info["config_type"]
        assert got.info["stress"].shape == (6,) and got.arrays["forces"].shape == (len(ref), 3)


def test_extxyz_ref_keys_in_info_and_arrays(tmp_path):
    images = _emt_images()
    plain = []
    for atoms in images:
        energy, forces, stress = _reference(atoms)
        copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        copy.info["REF_energy"] = energy
        copy.info["REF_stress"] = stress  # Voigt 6, written as a 6-vector
        copy.arrays["REF_forces"] = forces
        copy.info["config_type"] = atoms.info["config_type"]
        # A model's prediction under the plain names must not be taken for the reference.
        copy.calc = SinglePointCalculator(copy, energy=energy + 1.0, forces=forces + 1.0)
        plain.append(copy)
    path = tmp_path / "ref.extxyz"
    ase.io.write(path, plain, format="extxyz")
    out = read(path, energy_key="REF_energy", forces_key="REF_forces", stress_key="REF_stress")
    for ref, got in zip(images, out):
        energy, forces, stress = _reference(ref)
        assert got.info["energy"] == energy
        np.testing.assert_allclose(got.arrays["forces"], forces, atol=1e-8)
        np.testing.assert_allclose(got.info["stress"], stress, rtol=1e-14, atol=1e-16)
        assert "REF_energy" not in got.info and "REF_forces" not in got.arrays
        assert "REF_stress" not in got.info


@pytest.mark.parametrize("encoding", ["3x3", "flat9", "voigt6"])
def test_virial_converts_to_emt_stress(tmp_path, encoding):
    # Strained Cu with EMT: stress from ASE, virial = -stress * V (eV), then back.
    images = _emt_images(3)
    written = []
    for atoms in images:
        _, _, stress = _reference(atoms)
        virial = -voigt_6_to_full_3x3_stress(stress) * atoms.get_volume()
        copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        if encoding == "3x3":
            copy.info["REF_virials"] = virial  # nested list in the file
        elif encoding == "flat9":
            copy.info["REF_virials"] = virial.reshape(9)
        else:
            copy.info["REF_virials"] = -stress * atoms.get_volume()
        written.append(copy)
    path = tmp_path / "virial.xyz"
    ase.io.write(path, written, format="extxyz")
    out = read(path, stress_key="REF_stress")
    for ref, got in zip(images, out):
        _, _, stress = _reference(ref)
        assert np.abs(stress).max() > 1e-3  # really strained: the test can fail
        np.testing.assert_allclose(got.info["stress"], stress, rtol=1e-12, atol=1e-15)
        assert "REF_virials" not in got.info


def test_plain_virial_key_with_default_stress_key(tmp_path):
    atoms = _emt_images(1)[0]
    _, _, stress = _reference(atoms)
    copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    copy.info["virial"] = -voigt_6_to_full_3x3_stress(stress) * atoms.get_volume()
    ase.io.write(tmp_path / "v.xyz", copy, format="extxyz")
    (got,) = read(tmp_path / "v.xyz")
    np.testing.assert_allclose(got.info["stress"], stress, rtol=1e-12, atol=1e-15)


def test_ml4ms_write_round_trips_exactly(tmp_path):
    images = []
    for atoms in _emt_images():
        energy, forces, stress = _reference(atoms)
        copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        copy.info.update(energy=energy, stress=stress, config_type=atoms.info["config_type"])
        copy.info.update(
            temperature=300.5, step=7, note="rattled cell", vector=np.array([1.5, 2.5, 3.5])
        )
        copy.arrays["forces"] = forces
        copy.arrays["charges_ref"] = np.linspace(-1, 1, len(copy)) / 3.0
        images.append(copy)
    for name in ("out.xyz", "out.extxyz.gz"):
        path = tmp_path / name
        write(path, images)
        out = read(path)
        for ref, got in zip(images, out):
            np.testing.assert_array_equal(got.positions, ref.positions)
            np.testing.assert_array_equal(got.cell.array, ref.cell.array)
            np.testing.assert_array_equal(got.numbers, ref.numbers)
            assert got.info["energy"] == ref.info["energy"]
            np.testing.assert_array_equal(got.arrays["forces"], ref.arrays["forces"])
            np.testing.assert_array_equal(got.info["stress"], ref.info["stress"])
            np.testing.assert_array_equal(got.arrays["charges_ref"], ref.arrays["charges_ref"])
            for key in ("config_type", "temperature", "step", "note"):
                assert got.info[key] == ref.info[key], key
            np.testing.assert_array_equal(got.info["vector"], ref.info["vector"])
    # Labels attached as a calculator are written too.
    write(tmp_path / "calc.xyz", _emt_images(2))
    for ref, got in zip(_emt_images(2), read(tmp_path / "calc.xyz")):
        assert got.info["energy"] == ref.calc.results["energy"]
        np.testing.assert_array_equal(got.arrays["forces"], ref.calc.results["forces"])


def test_write_is_atomic(tmp_path):
    path = tmp_path / "data.xyz"
    good = _emt_images(2)
    write(path, good)
    before = path.read_bytes()
    bad = _emt_images(2)
    bad[1].info["energy"] = np.nan  # refused before anything is written
    with pytest.raises(DataError) as info:
        write(
            path, [Atoms(b.numbers, b.positions, cell=b.cell, pbc=True, info=b.info) for b in bad]
        )
    _check_error(info.value, path, "structure 1", "energy")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.xyz"]  # no temporary left
    # A writer failing half-way leaves the old file and no temporary file.
    with pytest.raises(FileFormatError):
        write(tmp_path / "data.xyz", good, format="no-such-format")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.xyz"]


def test_other_ase_formats(tmp_path):
    # CIF through ASE: structure only, no labels.
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    write(tmp_path / "cu.cif", atoms)
    (got,) = read(tmp_path / "cu.cif")
    np.testing.assert_allclose(got.cell.array, atoms.cell.array, atol=1e-6)
    assert "energy" not in got.info and "forces" not in got.arrays
    # ASE trajectory keeps the labels in its calculator.
    images = _emt_images(2)
    write(tmp_path / "t.traj", images)
    for ref, got in zip(images, read(tmp_path / "t.traj")):
        assert got.info["energy"] == ref.calc.results["energy"]
        np.testing.assert_array_equal(got.info["stress"], ref.calc.results["stress"])


# ------------------------------------------------------------------ index


def test_index_like_ase(tmp_path):
    images = _emt_images(6)
    path = tmp_path / "six.xyz"
    write(path, images)
    energies = [a.calc.results["energy"] for a in images]
    for index, expect in [
        (":", energies),
        (2, [energies[2]]),
        ("2", [energies[2]]),
        (-1, [energies[-1]]),
        ("-1", [energies[-1]]),
        ("0:3", energies[0:3]),
        (slice(1, 5, 2), energies[1:5:2]),
        ("::2", energies[::2]),
        ("-2:", energies[-2:]),
        ("::-1", energies[::-1]),
    ]:
        assert [a.info["energy"] for a in read(path, index)] == expect, index
        ref = ase.io.read(path, index)
        ref = [ref] if isinstance(ref, Atoms) else ref
        assert [a.get_potential_energy() for a in ref] == expect, index
    with pytest.raises(DataError, match="out of range"):
        read(path, 6)
    with pytest.raises(DataError, match="index"):
        read(path, "a:b")


def test_error_index_is_the_index_in_the_file(tmp_path):
    images = _emt_images(5)
    images[3].calc.results["energy"] = np.nan
    path = tmp_path / "nan.xyz"
    ase.io.write(path, images)
    for index in (":", "2:", "-2:", 3, "1::2"):
        with pytest.raises(DataError) as info:
            read(path, index)
        assert info.value.index == 3 and info.value.field == "energy", index
    assert len(read(path, "4:")) == 1


# ------------------------------------------------------------------ databases


def test_sqlite_db_round_trip_select_and_append(tmp_path):
    images = _emt_images(4)
    path = tmp_path / "train.db"
    write(path, images[:3])
    write(path, images[3:])  # appended
    out = read(path)
    assert len(out) == 4
    for ref, got in zip(images, out):
        energy, forces, stress = _reference(ref)
        assert got.info["energy"] == energy
        np.testing.assert_array_equal(got.arrays["forces"], forces)
        np.testing.assert_array_equal(got.info["stress"], stress)
        np.testing.assert_array_equal(got.positions, ref.positions)
        assert got.info["config_type"] == ref.info["config_type"]
        assert got.calc is None
    assert [a.info["config_type"] for a in read(path, select="config_type=strained-2")] == [
        "strained-2"
    ]
    assert [a.info["config_type"] for a in read(path, select={"config_type": "strained-1"})] == [
        "strained-1"
    ]
    assert [a.info["config_type"] for a in read(path, "1:3")] == ["strained-1", "strained-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.db"]


def test_db_labels_from_key_value_pairs_and_data(tmp_path):
    # A database written by someone else with ASE: labels as kvp/data under REF_ keys.
    images = _emt_images(2)
    path = tmp_path / "foreign.db"
    db = ase.db.connect(path)
    for atoms in images:
        energy, forces, stress = _reference(atoms)
        plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        db.write(
            plain,
            REF_energy=energy,
            config_type="bulk",
            data={"REF_forces": forces, "REF_stress": stress},
        )
    out = read(
        path,
        energy_key="REF_energy",
        forces_key="REF_forces",
        stress_key="REF_stress",
        require=("energy", "forces"),
    )
    for ref, got in zip(images, out):
        energy, forces, stress = _reference(ref)
        assert got.info["energy"] == energy
        np.testing.assert_array_equal(got.arrays["forces"], forces)
        np.testing.assert_array_equal(got.info["stress"], stress)
        assert got.info["config_type"] == "bulk"


def test_ase_json_database_is_detected_by_content(tmp_path):
    images = _emt_images(2)
    path = tmp_path / "ase.json"
    write(path, images)
    assert "nextid" in json.loads(path.read_text())  # really ASE's JSON database
    out = read(path)
    assert [a.info["energy"] for a in out] == [a.calc.results["energy"] for a in images]


def test_missing_database_is_not_created(tmp_path):
    with pytest.raises(FileFormatError) as info:
        read(tmp_path / "absent.db")
    _check_error(info.value, tmp_path / "absent.db", "no such file")
    assert not (tmp_path / "absent.db").exists()


def test_corrupt_database(tmp_path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(FileFormatError) as info:
        read(path)
    _check_error(info.value, path)


# ------------------------------------------------------------------ pymatgen dicts


def _structure_dict(with_xyz: bool = True) -> dict:
    lattice = [[3.0, 0.0, 0.0], [0.5, 3.2, 0.0], [0.0, 0.3, 3.5]]
    frac = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.25, 0.1, 0.75]]
    sites = []
    for element, abc in zip(["Na", "Cl", "Cl"], frac):
        site = {
            "species": [{"element": element, "occu": 1}],
            "abc": abc,
            "label": element,
            "properties": {},
        }
        if with_xyz:
            site["xyz"] = (np.array(abc) @ np.array(lattice)).tolist()
        sites.append(site)
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "charge": 0,
        "lattice": {"matrix": lattice},
        "sites": sites,
    }


@pytest.mark.parametrize("with_xyz", [True, False])
def test_pymatgen_structure_dicts(tmp_path, with_xyz):
    d = _structure_dict(with_xyz)
    expected = np.array(
        [[0.0, 0.0, 0.0], [1.75, 1.75, 1.75], [0.8, 0.545, 2.625]]
    )  # abc @ matrix, by hand
    # One dict, a list of dicts, and a gzipped list.
    (tmp_path / "one.json").write_text(json.dumps(d))
    (tmp_path / "many.json").write_text(json.dumps([d, d, d]))
    with gzip.open(tmp_path / "many.json.gz", "wt") as fh:
        json.dump([d, d], fh)
    for name, count in [("one.json", 1), ("many.json", 3), ("many.json.gz", 2)]:
        out = read(tmp_path / name)
        assert len(out) == count
        for atoms in out:
            assert atoms.get_chemical_symbols() == ["Na", "Cl", "Cl"]
            np.testing.assert_allclose(atoms.positions, expected, atol=1e-12)
            np.testing.assert_array_equal(atoms.cell.array, d["lattice"]["matrix"])
            assert atoms.pbc.all()
    assert len(read(tmp_path / "many.json", "1:")) == 2


def test_pymatgen_labels_from_properties(tmp_path):
    d = _structure_dict()
    d["properties"] = {"REF_energy": -3.5}
    for k, site in enumerate(d["sites"]):
        site["properties"] = {"REF_forces": [0.1 * k, 0.0, -0.1 * k]}
    (tmp_path / "p.json").write_text(json.dumps([d]))
    (got,) = read(tmp_path / "p.json", energy_key="REF_energy", forces_key="REF_forces")
    assert got.info["energy"] == -3.5
    np.testing.assert_allclose(got.arrays["forces"][:, 0], [0.0, 0.1, 0.2])


def test_json_of_unknown_shape(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(FileFormatError) as info:
        read(path)
    _check_error(info.value, path, "expected")


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.xyz"
    with pytest.raises(FileFormatError) as info:
        read(path)
    _check_error(info.value, path, "no such file")


@pytest.mark.parametrize("cut", ["mid_line", "mid_frame", "after_count"])
def test_truncated_extxyz(tmp_path, cut):
    full = tmp_path / "full.xyz"
    write(full, _emt_images(3))
    text = full.read_text()
    lines = text.splitlines(keepends=True)
    truncated = {
        "mid_line": text[: len(text) - 40],
        "mid_frame": "".join(lines[:-3]),
        "after_count": "".join(lines[: 2 * 10 + 1]),  # third frame's atom count only
    }[cut]
    path = tmp_path / "cut.xyz"
    path.write_text(truncated)
    with pytest.raises(FileFormatError) as info:
        read(path)
    _check_error(info.value, path, "cannot read")


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"structure": {"lattice": {"matrix": [[1, 0, 0],')
    with pytest.raises(FileFormatError) as info:
        read(path)
    _check_error(info.value, path, "invalid JSON", "line 1")


def test_required_energy_missing(tmp_path):
    images = _emt_images(3)
    plain = [Atoms(a.numbers, a.positions, cell=a.cell, pbc=True) for a in images]
    plain[0].info["energy"] = 1.0
    plain[2].info["energy"] = 2.0
    path = tmp_path / "partial.xyz"
    write(path, plain)
    assert "energy" not in read(path)[1].info  # not required: simply absent
    with pytest.raises(DataError) as info:
        read(path, require=("energy",))
    _check_error(info.value, path, "structure 1", "energy", "missing")


def test_forces_of_wrong_shape(tmp_path):
    path = tmp_path / "f.xyz"
    path.write_text(
        "2\n"
        'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:2 '
        'energy=-1.5 pbc="T T T"\n'
        "Cu 0 0 0 0.1 0.2\nCu 2 2 2 -0.1 -0.2\n"
    )
    with pytest.raises(DataError) as info:
        read(path)
    assert info.value.index == 0 and info.value.field == "forces"
    _check_error(info.value, path, "structure 0", "forces", "(2, 3)", "(2, 2)")


def test_stress_of_wrong_shape(tmp_path):
    path = tmp_path / "s.xyz"
    path.write_text(
        "1\n"
        'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 '
        'REF_stress="1 2 3 4" pbc="T T T"\n'
        "Cu 0 0 0\n"
    )
    with pytest.raises(DataError) as info:
        read(path, stress_key="REF_stress")
    _check_error(info.value, path, "structure 0", "REF_stress", "6 (Voigt) or 9")


@pytest.mark.parametrize("field", ["positions", "energy"])
def test_nan_positions_and_energy(tmp_path, field):
    images = _emt_images(3)
    if field == "positions":
        images[1].positions[2, 0] = np.nan
    else:
        images[1].calc.results["energy"] = np.nan
    path = tmp_path / "nan.xyz"
    ase.io.write(path, images)
    with pytest.raises(DataError) as info:
        read(path)
    _check_error(info.value, path, "structure 1", field, "NaN")


def test_atoms_too_close(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]
    path = tmp_path / "close.xyz"
    ase.io.write(path, [bulk("Cu", "fcc", a=3.61, cubic=True), atoms])
    with pytest.raises(DataError) as info:
        read(path)
    _check_error(info.value, path, "structure 1", "positions", "atoms 0 and 1", "0.05 Å")


def test_zero_volume_periodic_cell(tmp_path):
    path = tmp_path / "flat.xyz"
    path.write_text(
        '1\nLattice="4 0 0 0 4 0 4 4 0" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 0 0\n'
    )
    with pytest.raises(DataError) as info:
        read(path)
    _check_error(info.value, path, "structure 0", "cell", "zero volume")


def test_empty_structure(tmp_path):
    path = tmp_path / "empty.xyz"
    ase.io.write(path, [bulk("Cu"), Atoms(cell=[3, 3, 3], pbc=True)], format="extxyz")
    with pytest.raises(DataError) as info:
        read(path)
    _check_error(info.value, path, "structure 1", "atoms", "empty")


def test_reads_shared_mlearn_through_read(_data_dir):
    out = read(
        _data_dir / "mlearn" / "Mo" / "test.json", "0:3", require=("energy", "forces", "stress")
    )
    assert len(out) == 3 and all(a.calc is None for a in out)


def test_postgresql_url_routes_to_the_database_and_hides_the_password():
    # No server here: whether the optional back-end is missing or the connection is
    # refused, the error is one FileFormatError naming the URL without its password.
    url = "postgresql://ml4ms:s3cret@127.0.0.1:1/ml4ms"
    with pytest.raises(FileFormatError) as info:
        read(url)
    text = _check_error(info.value, "postgresql://ml4ms@127.0.0.1:1/ml4ms")
    assert "s3cret" not in text


def test_select_only_for_databases(tmp_path):
    path = tmp_path / "a.xyz"
    write(path, _emt_images(1))
    with pytest.raises(DataError, match="select"):
        read(path, select="energy<0")
