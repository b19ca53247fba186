"""chemiscope files: the format chemiscope itself writes, round trips, atomic writes, clear errors."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from ml4ms.analysis.chemiscope import (
    all_environments,
    chemiscope_input,
    map_settings,
    read_chemiscope,
    structures_from_chemiscope,
    write_chemiscope,
)
from ml4ms.errors import ConfigError, DataError, FileFormatError

#: What chemiscope 1.1.0's own ``chemiscope.create_input`` returns for the dataset of
#: :func:`_tiny` (ASE structures, ``all_atomic_environments(..., cutoff=3.5)``, the same
#: properties, metadata and settings), serialised with ``json.dumps``: the oracle of the format.
CHEMISCOPE_1_1_0 = json.loads("""
{"meta": {"name": "tiny", "description": "two structures", "authors": ["A"], "references": ["R"]},
 "settings": {"target": "atom", "map": {"x": {"property": "PCA[1]"}, "y": {"property": "PCA[2]"},
              "z": {"property": ""}, "color": {"property": "energy"}}},
 "structures": [{"size": 2, "names": ["Cu", "Cu"], "x": [0.0, 1.75], "y": [0.0, 1.5], "z": [0.0, 0.25],
                 "cell": [3.5, 0.0, 0.0, 0.0, 3.0, 0.0, 0.5, 0.0, 4.0]},
                {"size": 3, "names": ["O", "H", "H"], "x": [0.0, 0.75, -0.75], "y": [0.0, 0.5, 0.5],
                 "z": [0.0, 0.0, 0.0]}],
 "environments": [{"structure": 0, "center": 0, "cutoff": 3.5}, {"structure": 0, "center": 1, "cutoff": 3.5},
                  {"structure": 1, "center": 0, "cutoff": 3.5}, {"structure": 1, "center": 1, "cutoff": 3.5},
                  {"structure": 1, "center": 2, "cutoff": 3.5}],
 "properties": {"energy": {"target": "structure", "values": [-7.5, -14.25], "units": "eV",
                           "description": "total energy"},
                "group": {"target": "structure", "values": ["bulk", "molecule"]},
                "PCA[1]": {"target": "atom", "values": [0.5, -0.5, 1.5, 0.25, 2.0],
                           "description": "map [component 1]"},
                "PCA[2]": {"target": "atom", "values": [1.0, 2.0, -1.0, 0.0, 3.0],
                           "description": "map [component 2]"}}}
""")


def _tiny():
    bulk = Atoms("Cu2", positions=[[0, 0, 0], [1.75, 1.5, 0.25]], cell=[[3.5, 0, 0], [0, 3.0, 0], [0.5, 0, 4.0]],
                 pbc=True)
    molecule = Atoms("OH2", positions=[[0, 0, 0], [0.75, 0.5, 0], [-0.75, 0.5, 0]])
    properties = {
        "energy": {"target": "structure", "values": np.array([-7.5, -14.25]), "units": "eV",
                   "description": "total energy"},
        "group": {"target": "structure", "values": ["bulk", "molecule"]},
        "PCA": {"target": "atom", "values": np.array([[0.5, 1.0], [-0.5, 2.0], [1.5, -1.0], [0.25, 0.0], [2.0, 3.0]]),
                "description": "map"},
    }
    meta = {"name": "tiny", "description": "two structures", "authors": ["A"], "references": ["R"]}
    return [bulk, molecule], properties, meta


def test_input_equals_what_chemiscope_writes():
    images, properties, meta = _tiny()
    settings = map_settings("PCA[1]", "PCA[2]", color="energy", target="atom")
    data = chemiscope_input(images, properties, environments=all_environments(images, cutoff=3.5), meta=meta,
                            settings=settings)
    assert json.loads(json.dumps(data)) == CHEMISCOPE_1_1_0


@pytest.mark.parametrize("name", ["map.json", "map.json.gz"])
def test_write_read_round_trip(tmp_path, name):
    images, properties, meta = _tiny()
    path = write_chemiscope(tmp_path / name, images, properties, environments=all_environments(images), meta=meta)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()

    def no_constants(token):  # strict JSON: no NaN or Infinity
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads(raw, parse_constant=no_constants)
    assert data == read_chemiscope(path)
    assert set(data) == {"meta", "structures", "environments", "properties"}
    assert data["properties"]["PCA[2]"]["values"] == [1.0, 2.0, -1.0, 0.0, 3.0]
    back = structures_from_chemiscope(data)
    for original, copy in zip(images, back):
        assert copy.get_chemical_symbols() == original.get_chemical_symbols()
        np.testing.assert_array_equal(copy.positions, original.positions)
        np.testing.assert_array_equal(copy.cell[:], original.cell[:])
    assert back[0].pbc.all() and not back[1].pbc.any()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_meta_name_defaults_to_the_file_stem(tmp_path):
    images, properties, _ = _tiny()
    del properties["PCA"]
    path = write_chemiscope(tmp_path / "copper.json", images, properties)
    assert read_chemiscope(path)["meta"] == {"name": "copper"}
    assert "environments" not in read_chemiscope(path)


def test_a_failed_write_keeps_the_old_file(tmp_path):
    images, properties, _ = _tiny()
    del properties["PCA"]
    path = write_chemiscope(tmp_path / "keep.json", images, properties)
    before = path.read_bytes()
    properties["energy"]["values"] = np.array([np.nan, 1.0])
    with pytest.raises(DataError, match=r"energy: 1 value\(s\) are NaN or infinite"):
        write_chemiscope(path, images, properties)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_bad_datasets_give_clear_errors(tmp_path):
    images, properties, _ = _tiny()
    with pytest.raises(ConfigError, match="target 'atom' but no environments"):
        chemiscope_input(images, properties)
    envs = all_environments(images)
    short = {"energy": {"target": "structure", "values": [1.0, 2.0, 3.0]}}
    with pytest.raises(DataError, match=r"energy: target 'structure' needs 2 values \(one per structure\), got 3"):
        chemiscope_input(images, short)
    with pytest.raises(DataError, match="needs 5 values"):
        chemiscope_input(images, {"q": {"target": "atom", "values": [1.0]}}, environments=envs)
    with pytest.raises(ConfigError, match="target must be 'structure' or 'atom'"):
        chemiscope_input(images, {"q": {"target": "molecule", "values": [1.0, 2.0]}})
    with pytest.raises(ConfigError, match="unknown keys"):
        chemiscope_input(images, {"q": {"target": "structure", "values": [1.0, 2.0], "unit": "eV"}})
    with pytest.raises(DataError, match="atom 2 is not in structure 0"):
        chemiscope_input(images, environments=[(0, 2, 3.5)])
    with pytest.raises(ConfigError, match="not in the dataset"):
        chemiscope_input(images, {}, settings=map_settings("PCA[1]", "PCA[2]"))
    with pytest.raises(ConfigError, match=r"must end in \.json or \.json\.gz"):
        write_chemiscope(tmp_path / "map.txt", images)
    broken = tmp_path / "broken.json"
    broken.write_text('{"structures": []')
    with pytest.raises(FileFormatError, match="not a readable chemiscope JSON file"):
        read_chemiscope(broken)


CHEMISCOPE_PYTHON = Path(os.environ.get("ML4MS_CHEMISCOPE_PYTHON", "/work/venvs/chemiscope/bin/python"))


@pytest.mark.skipif(not CHEMISCOPE_PYTHON.exists(),
                    reason="chemiscope's own package (a peer, not a dependency) is not installed; set "
                           "ML4MS_CHEMISCOPE_PYTHON to a Python that has it")
def test_chemiscope_rebuilds_our_file_unchanged(tmp_path):
    """chemiscope's ``create_input`` re-validates our file (structures as dicts) and returns it unchanged."""
    images, properties, meta = _tiny()
    path = write_chemiscope(tmp_path / "ours.json", images, properties, environments=all_environments(images),
                            meta=meta, settings=map_settings("PCA[1]", "PCA[2]", color="group", target="atom"))
    script = (
        "import json, sys, warnings, chemiscope\n"
        "warnings.simplefilter('error')\n"
        "d = json.load(open(sys.argv[1]))\n"
        "out = chemiscope.create_input(structures=d['structures'], metadata=d['meta'], properties=d['properties'],"
        " environments=[(e['structure'], e['center'], e['cutoff']) for e in d['environments']],"
        " settings=d['settings'])\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([str(CHEMISCOPE_PYTHON), "-c", script, str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == read_chemiscope(path)
