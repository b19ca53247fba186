"""Tests of ml4ms.data.datasets: local data directory, cache, downloads and derived files.

The data directory is ``$ML4MS_DATA_DIR``, or ``../shared/data`` next to the repository
when the variable is unset. These tests fail (they do not skip) when it is missing.
Downloads are exercised against an HTTP server on 127.0.0.1; nothing here uses the
internet.
"""

from __future__ import annotations

import bz2
import copy
import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ase.units import GPa

from ml4ms.data import datasets
from ml4ms.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"


def _shared_data_dir() -> Path:
    value = os.environ.get(datasets.ENV_DATA_DIR, "").strip()
    return Path(value) if value else DEFAULT_DATA_DIR


def _no_network(*args, **kwargs):
    raise AssertionError("this test must not download anything")


@pytest.fixture
def data_dir(monkeypatch, tmp_path) -> Path:
    """The reference data directory, as ML4MS_DATA_DIR, with an empty cache and no network."""
    d = _shared_data_dir()
    assert d.is_dir(), (
        f"data directory {d} is missing: set {datasets.ENV_DATA_DIR} to a copy of shared/data"
    )
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(d))
    monkeypatch.setenv(datasets.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    return d


@pytest.fixture
def reference_dir() -> Path:
    """The reference data directory, read directly (the environment is left alone)."""
    d = _shared_data_dir()
    assert d.is_dir(), f"data directory {d} is missing: set {datasets.ENV_DATA_DIR}"
    return d


@pytest.fixture
def server(tmp_path, monkeypatch, reference_dir):
    """An HTTP server on 127.0.0.1 serving ``root``; an empty data dir and cache."""
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    empty = tmp_path / "empty_data_dir"
    empty.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(empty))
    monkeypatch.setenv(datasets.ENV_CACHE_DIR, str(cache))
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    def serve(relpath: str, data: bytes | None = None) -> str:
        """Publish a file (the reference copy, or ``data``) and point the registry at it."""
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            shutil.copyfile(reference_dir / relpath, target)
        else:
            target.write_bytes(data)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{relpath}"
        entry = datasets.REGISTRY[relpath]
        monkeypatch.setitem(datasets.REGISTRY, relpath, dataclasses.replace(entry, url=url))
        return url

    yield SimpleNamespace(root=root, hits=hits, serve=serve, cache=cache, data_dir=empty,
                          reference=reference_dir)
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# --------------------------------------------------------------------------------------
# (1) Loading from ML4MS_DATA_DIR, with the README's counts
# --------------------------------------------------------------------------------------


def test_mlearn_cu_train_from_data_dir(data_dir):
    images = datasets.load("mlearn", element="Cu", split="train")
    assert len(images) == 262
    assert sum(len(a) for a in images) == 27_416
    for a in images:
        assert a.pbc.all()
        assert a.arrays["forces"].shape == (len(a), 3)
        assert np.shape(a.info["stress"]) == (6,)
    e_per_atom = np.array([a.info["energy"] / len(a) for a in images])
    assert e_per_atom.min() == pytest.approx(-4.1012, abs=1e-4)
    assert e_per_atom.max() == pytest.approx(-3.5155, abs=1e-4)
    groups = [a.info["config_type"] for a in images]
    assert {g: groups.count(g) for g in set(groups)} == {
        "Elastic": 108, "AIMD-NVT": 108, "Vacancy": 36, "Surface": 10
    }
    # first record: stress from kBar (VASP sign) to eV/Å³ (ASE sign), xx component
    assert images[0].info["stress"][0] == pytest.approx(-0.1 * GPa * 29.86901706, rel=1e-12)


def test_mlearn_si_test_from_data_dir(data_dir):
    images = datasets.load("mlearn", element="si", split="test")
    assert len(images) == 25
    assert sum(len(a) for a in images) == 1_525


def test_matbench_expt_gap_from_data_dir(data_dir):
    table = datasets.load("matbench_expt_gap")
    assert isinstance(table, datasets.CompositionTable)
    assert len(table) == 4_604
    assert table.unit == "eV" and table.target_name == "gap_expt"
    assert np.bincount(table.folds).tolist() == [921, 921, 921, 921, 920]
    assert table.n_folds == 5
    i = table.ids.index("mb-expt-gap-0003")
    assert (table.compositions[i], table.targets[i], table.folds[i]) == (
        "Ag0.5Ge1Pb1.75S4", 1.83, 1
    )
    assert table.targets.min() == 0.0 and table.targets.max() == pytest.approx(11.7, abs=0.05)
    assert table.targets.mean() == pytest.approx(0.976, abs=1e-3)
    assert (table.targets == 0).sum() == 2_450
    for k in range(5):
        train, test = table.split(k)
        assert len(test) == np.bincount(table.folds)[k]
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).tolist() == list(range(len(table)))
    with pytest.raises(ConfigError, match="0..4"):
        table.split(5)
    with pytest.raises(ValueError):
        table.targets[0] = 1.0  # read-only
    # the CSV was read from the data dir, not rebuilt
    csv_path = data_dir / "matbench_expt_gap/matbench_expt_gap.csv"
    assert datasets.path("matbench_expt_gap") == csv_path


def test_perov_5_val_from_data_dir(data_dir):
    images = datasets.load("perov_5", split="val")
    assert len(images) == 3_787
    assert all(len(a) == 5 and a.pbc.all() for a in images)
    first = images[0]
    assert first.info["material_id"] == 18517
    assert first.info["formula"] == "CuCdN3"
    assert first.get_chemical_formula() == "CdCuN3"
    assert first.info["heat_all"] == 2.76
    assert first.info["heat_ref"] == pytest.approx(2.709152583232041)
    assert first.info["dir_gap"] == 0.0 and first.info["ind_gap"] == 0.0
    assert first.cell.cellpar()[:3] == pytest.approx([4.27928426] * 3)
    assert "spacegroup" not in first.info and "energy" not in first.info
    heat = np.array([a.info["heat_all"] for a in images])
    assert -0.39 < heat.min() and heat.max() < 4.99


def test_aspirin_gfn2_from_data_dir(data_dir):
    frames = datasets.load("aspirin_gfn2")
    assert len(frames) == 1000
    assert all(len(a) == 21 and a.get_chemical_formula() == "C9H8O4" for a in frames)
    assert frames[0].info["energy"] == pytest.approx(-1076.7625377886686)
    assert frames[0].arrays["forces"].shape == (21, 3)
    assert frames[0].calc is None


def test_bad_names_and_options_are_clear(data_dir):
    with pytest.raises(ConfigError, match="Ni, Cu, Li, Mo, Si, Ge"):
        datasets.load("mlearn", element="Fe", split="train")
    with pytest.raises(ConfigError, match="train, test"):
        datasets.load("mlearn", element="Si", split="validation")
    with pytest.raises(ConfigError, match="required"):
        datasets.load("mlearn", element="Si")
    with pytest.raises(ConfigError, match="val, test"):
        datasets.load("perov_5", split="train")
    with pytest.raises(ConfigError, match="mlearn, matbench_expt_gap, perov_5, aspirin_gfn2"):
        datasets.load("qm9")
    with pytest.raises(ConfigError, match="accepted options: none"):
        datasets.load("matbench_expt_gap", split="test")
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        datasets.load("mlearn", element="Si", split="train", fold=1)
    with pytest.raises(ConfigError):
        datasets.fetch("../outside.json")


def test_path_and_fetch_prefer_data_dir(data_dir):
    assert datasets.path("mlearn", element="Si", split="test") == data_dir / "mlearn/Si/test.json"
    assert datasets.fetch("perov_5/val.csv") == data_dir / "perov_5/val.csv"
    # unregistered files are found in the data dir too
    assert datasets.path("mlearn/LICENSE") == data_dir / "mlearn/LICENSE"
    with pytest.raises(DatasetError, match="not a registered dataset file"):
        datasets.fetch("nothing/here.json")


# --------------------------------------------------------------------------------------
# (2) Downloads, for real, from a local HTTP server
# --------------------------------------------------------------------------------------


def test_download_verifies_and_caches(server):
    rel = "mlearn/Si/test.json"
    url = server.serve(rel)
    got = datasets.fetch(rel)
    assert got == server.cache / rel
    assert datasets.sha256sum(got) == datasets.REGISTRY[rel].sha256
    assert got.read_bytes() == (server.reference / rel).read_bytes()
    assert server.hits == ["/" + rel]
    assert _files(server.cache) == [got]  # no temporary file left behind
    # second time: from the cache, the server is not contacted
    images = datasets.load("mlearn", element="Si", split="test")
    assert len(images) == 25
    assert datasets.fetch(rel) == got
    assert len(server.hits) == 1
    assert url.startswith("http://127.0.0.1:")


def test_download_then_derive_matbench_csv(server):
    """No CSV anywhere: the JSON is downloaded and the folds recomputed, byte-identically."""
    server.serve("matbench_expt_gap/matbench_expt_gap.json.bz2")
    table = datasets.load("matbench_expt_gap")
    assert len(table) == 4_604
    assert np.bincount(table.folds).tolist() == [921, 921, 921, 921, 920]
    csv_path = server.cache / "matbench_expt_gap/matbench_expt_gap.csv"
    assert csv_path.read_bytes() == (
        server.reference / "matbench_expt_gap/matbench_expt_gap.csv"
    ).read_bytes()
    assert len(server.hits) == 1
    datasets.load("matbench_expt_gap")
    assert len(server.hits) == 1


def test_tampered_download_is_rejected(server):
    rel = "mlearn/Si/test.json"
    data = bytearray((server.reference / rel).read_bytes())
    data[100:101] = b"7" if data[100:101] != b"7" else b"8"
    url = server.serve(rel, bytes(data))
    with pytest.raises(DatasetError) as info:
        datasets.load("mlearn", element="Si", split="test")
    message = str(info.value)
    assert "checksum mismatch" in message and url in message
    assert datasets.REGISTRY[rel].sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert _files(server.cache) == []  # nothing kept, not even a temporary file
    assert isinstance(info.value, OSError)


def test_failed_download_names_url_and_data_dir(server, monkeypatch):
    rel = "perov_5/test.csv"
    url = server.serve(rel)
    (server.root / rel).unlink()  # the server now answers 404
    with pytest.raises(DatasetError) as info:
        datasets.fetch(rel)
    assert url in str(info.value) and "ML4MS_DATA_DIR" in str(info.value)
    assert _files(server.cache) == []
    # an unreachable server (nothing listens on the port) fails the same way, quickly
    entry = datasets.REGISTRY[rel]
    monkeypatch.setitem(datasets.REGISTRY, rel,
                        dataclasses.replace(entry, url="http://127.0.0.1:9/perov_5/test.csv"))
    with pytest.raises(DatasetError, match="127.0.0.1:9"):
        datasets.fetch(rel, timeout=5)


def test_file_without_url_says_so(server):
    with pytest.raises(DatasetError) as info:
        datasets.load("aspirin_gfn2")
    message = str(info.value)
    assert "no public URL" in message and "ML4MS_DATA_DIR" in message
    assert "aspirin_gfn2/aspirin_gfn2xtb.extxyz" in message
    assert server.hits == []


# --------------------------------------------------------------------------------------
# (3) The pinned checksums are those of the reference files
# --------------------------------------------------------------------------------------


def test_registry_checksums_match_reference_files(reference_dir):
    sums = {}
    for line in (reference_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    checked = 0
    for rel, entry in datasets.REGISTRY.items():
        if entry.sha256 is None:
            # only the upstream ALIGNN files, whose checksum is unknown (see the module doc)
            assert rel.endswith("alignn_id_prop.json") and entry.url is not None
            continue
        assert sums[rel] == entry.sha256, rel
        assert datasets.sha256sum(reference_dir / rel) == entry.sha256, rel
        checked += 1
    assert checked == 17
    for rel, entry in datasets.REGISTRY.items():
        assert (entry.url is None) != (entry.source is None) or rel.startswith("aspirin"), rel
        if entry.url is not None:
            assert entry.url.startswith("https://raw.githubusercontent.com/"), rel
            commit = entry.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0, rel
    assert datasets.REGISTRY["mlearn/Si/training.json"].url == (
        "https://raw.githubusercontent.com/materialsvirtuallab/mlearn/"
        "10c427a5480c6281c15c64efaf869b03be04818f/data/Si/training.json"
    )


# --------------------------------------------------------------------------------------
# (4) Derived files: Matbench folds and the Ni/Cu reconstruction
# --------------------------------------------------------------------------------------


def test_matbench_folds_recomputed_from_json(reference_dir, tmp_path):
    folder = reference_dir / "matbench_expt_gap"
    reference_csv = (folder / "matbench_expt_gap.csv").read_bytes()
    folds = [int(line.rsplit(",", 1)[1]) for line in reference_csv.decode().splitlines()[1:]]
    assert datasets.matbench_folds(len(folds)).tolist() == folds
    out = tmp_path / "rebuilt.csv"
    datasets.matbench_csv_from_json(folder / "matbench_expt_gap.json.bz2", out)
    assert out.read_bytes() == reference_csv


def test_matbench_bad_json_is_a_dataset_error(tmp_path):
    bad = tmp_path / "bad.json.bz2"
    bad.write_bytes(bz2.compress(b'{"mbid": {"1": "x"}}'))
    with pytest.raises(DatasetError, match="bad.json.bz2"):
        datasets.matbench_csv_from_json(bad, tmp_path / "out.csv")


def _to_alignn(record: dict, jid: int) -> dict:
    """The inverse of the reconstruction: an mlearn record as ALIGNN's converter wrote it."""
    structure = record["structure"]
    n = record["num_atoms"]
    elements = [site["species"][0]["element"] for site in structure["sites"]]
    return {
        "jid": str(jid),
        "atoms": {
            "lattice_mat": structure["lattice"]["matrix"],
            "coords": [site["abc"] for site in structure["sites"]],
            "elements": elements,
            "abc": [1.0, 1.0, 1.0],
            "angles": [90.0, 90.0, 90.0],
            "cartesian": False,
            "props": [""] * n,
        },
        "total_energy": record["outputs"]["energy"] / n,
        "forces": record["outputs"]["forces"],
        "stresses": record["outputs"]["virial_stress"],
    }


def test_alignn_reconstruction_reproduces_records(reference_dir):
    records = json.loads((reference_dir / "mlearn/Cu/training.json").read_text())
    # the first few records of every group, in file order
    picked = []
    for group in ("Vacancy", "AIMD-NVT", "Elastic", "Surface"):
        picked += [i for i, r in enumerate(records) if r["group"] == group][:3]
    picked.sort()
    sample = [records[i] for i in picked]
    entries = [_to_alignn(r, i + 1) for i, r in zip(picked, sample)]
    # ALIGNN's file continues with test entries; they must be ignored
    entries += [copy.deepcopy(entries[0])]
    rebuilt = datasets.mlearn_records_from_alignn(entries, len(sample))
    assert len(rebuilt) == len(sample)
    for i, new, old in zip(picked, rebuilt, sample):
        assert new["group"] == old["group"], i
        assert new["num_atoms"] == old["num_atoms"] and new["element"] == "Cu"
        assert new["tag"] == "train"
        assert new["outputs"]["energy"] == pytest.approx(old["outputs"]["energy"], abs=1e-10)
        np.testing.assert_array_equal(new["outputs"]["forces"], old["outputs"]["forces"])
        np.testing.assert_array_equal(new["outputs"]["virial_stress"],
                                      old["outputs"]["virial_stress"])
        s_new, s_old = new["structure"], old["structure"]
        np.testing.assert_array_equal(s_new["lattice"]["matrix"], s_old["lattice"]["matrix"])
        for a, b in zip(s_new["sites"], s_old["sites"], strict=True):
            assert a["species"] == b["species"] and a["label"] == b["label"]
            np.testing.assert_array_equal(a["abc"], b["abc"])
            np.testing.assert_allclose(a["xyz"], b["xyz"], rtol=0, atol=1e-12)
        assert new == old  # indeed identical, description included
    with pytest.raises(DatasetError, match="at least"):
        datasets.mlearn_records_from_alignn(entries[:2], 3)


@pytest.mark.parametrize("element", ["Ni", "Cu"])
def test_alignn_reconstruction_is_byte_identical(reference_dir, element):
    """Inverse-mapping the whole reference file and rebuilding it gives the same bytes."""
    raw = (reference_dir / f"mlearn/{element}/training.json").read_bytes()
    records = json.loads(raw)
    n_train, n_test, n_atoms = datasets.ALIGNN_MLEARN_BLOCKS[element]
    assert len(records) == n_train and sum(r["num_atoms"] for r in records) == n_atoms
    entries = [_to_alignn(r, i + 1) for i, r in enumerate(records)]
    rebuilt = datasets.mlearn_records_from_alignn(entries, n_train)
    assert json.dumps(rebuilt).encode() == raw
    # the grouping rules recover the recorded groups of the (original) test set
    test = json.loads((reference_dir / f"mlearn/{element}/test.json").read_text())
    assert len(test) == n_test
    regrouped = datasets.mlearn_records_from_alignn(
        [_to_alignn(r, i) for i, r in enumerate(test)], len(test)
    )
    assert [r["group"] for r in regrouped] == [r["group"] for r in test]


def test_alignn_download_end_to_end(server):
    """Ni/Cu training sets: download ALIGNN's id_prop.json, rebuild, verify, cache."""
    ref = server.reference
    train = json.loads((ref / "mlearn/Cu/training.json").read_text())
    test = json.loads((ref / "mlearn/Cu/test.json").read_text())
    entries = [_to_alignn(r, i + 1) for i, r in enumerate(train + test + test)]
    payload = json.dumps(entries).encode()
    source = "mlearn/Cu/alignn_id_prop.json"

    # a truncated upstream file fails the count check; nothing is kept
    server.serve(source, json.dumps(entries[:-1]).encode())
    with pytest.raises(DatasetError, match="expected 324 ALIGNN entries"):
        datasets.load("mlearn", element="Cu", split="train")
    assert _files(server.cache) == []

    server.serve(source, payload)
    got = datasets.fetch("mlearn/Cu/training.json")
    assert got == server.cache / "mlearn/Cu/training.json"
    assert got.read_bytes() == (ref / "mlearn/Cu/training.json").read_bytes()
    hits = len(server.hits)
    assert len(datasets.load("mlearn", element="Cu", split="train")) == 262
    assert len(server.hits) == hits

    # an upstream file whose content changed fails the rebuilt file's checksum
    (server.cache / "mlearn/Cu/training.json").unlink()
    (server.cache / source).unlink()
    entries[0]["forces"][0][0] += 1e-3
    server.serve(source, json.dumps(entries).encode())
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.fetch("mlearn/Cu/training.json")
    assert _files(server.cache) == []
