"""Property data readers: real datasets, CSV tables, CIFs, and errors that name the row."""

import numpy as np
import pytest
from ase.build import bulk

from ml4ms.errors import ConfigError, DataError, FileFormatError, UnknownElementError
from ml4ms.properties.data import load_property_data

CIF = bulk("NaCl", "rocksalt", a=5.64)


def _cif_text():
    import io

    import ase.io

    buffer = io.BytesIO()
    ase.io.write(buffer, CIF, format="cif")
    return buffer.getvalue().decode()


def test_matbench_expt_gap_with_official_folds():
    data = load_property_data("matbench_expt_gap")
    assert len(data) == 4604 and data.input_kind == "composition"
    assert data.target == "gap_expt" and data.unit == "eV"
    assert sorted(np.unique(data.folds)) == [0, 1, 2, 3, 4]
    assert (data.targets >= 0).all()


def test_perov5_is_both_files():
    data = load_property_data("perov_5")
    assert len(data) == 7572 and data.input_kind == "structure" and data.target == "heat_all"
    assert all(len(a) == 5 for a in data.inputs[:50])
    assert len(set(data.ids)) == 7572  # the two CDVAE files do not overlap
    with pytest.raises(ConfigError, match="targets: heat_all"):
        load_property_data("perov_5:val", target="band_gap")


def test_csv_with_compositions_and_cifs(tmp_path):
    table = tmp_path / "gaps.csv"
    table.write_text("id,formula,gap\na,NaCl,8.5\nb,GaAs,1.42\n")
    data = load_property_data(table, target="gap")
    assert data.inputs == ["NaCl", "GaAs"] and data.ids == ["a", "b"]
    np.testing.assert_allclose(data.targets, [8.5, 1.42])
    import csv

    with open(tmp_path / "s.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["material_id", "cif", "e"])
        writer.writerow(["x1", _cif_text(), "-1.5"])
    data = load_property_data(tmp_path / "s.csv", target="e")
    assert data.input_kind == "structure" and data.inputs[0].get_chemical_formula() == "ClNa"


@pytest.mark.parametrize("row, error, words", [
    ("c,Na)Cl,1.0", DataError, ["line 4", "'Na)Cl'"]),
    ("c,Xx2O,1.0", UnknownElementError, ["line 4", "Xx"]),
    ("c,KBr,", DataError, ["line 4", "empty"]),
    ("c,KBr,big", DataError, ["line 4", "not a number", "'big'"]),
])
def test_bad_rows_are_named(tmp_path, row, error, words):
    table = tmp_path / "bad.csv"
    table.write_text(f"id,composition,gap\na,NaCl,8.5\nb,GaAs,1.4\n{row}\n")
    with pytest.raises(error) as info:
        load_property_data(table, target="gap")
    for word in words + [str(table), "gap" if "empty" in words or "number" in " ".join(words) else ""]:
        assert word in str(info.value)


def test_bad_tables_and_cifs(tmp_path):
    no_input = tmp_path / "x.csv"
    no_input.write_text("id,value\na,1\n")
    with pytest.raises(DataError, match="no input column"):
        load_property_data(no_input, target="value")
    table = tmp_path / "t.csv"
    table.write_text("formula,gap\nNaCl,1\n")
    with pytest.raises(DataError, match="no target column 'band_gap'"):
        load_property_data(table, target="band_gap")
    broken = tmp_path / "broken.csv"
    broken.write_text('cif,e\n"data_x\n_cell_length_a oops\n",1\n')
    with pytest.raises(FileFormatError, match="row 0.*CIF does not parse|row 0.*no atoms"):
        load_property_data(broken, target="e")
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "good.cif").write_text(_cif_text())
    data = load_property_data(folder, require_targets=False)
    assert data.ids == ["good"] and data.targets is None
    (folder / "bad.cif").write_text("not a cif at all\n")
    with pytest.raises(FileFormatError, match="bad.cif"):
        load_property_data(folder, require_targets=False)
    with pytest.raises(ConfigError, match="no such file"):
        load_property_data(tmp_path / "missing.csv", target="gap")
