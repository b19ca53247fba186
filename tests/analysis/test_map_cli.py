"""``ml4ms map``: chemiscope JSON and PNG of a public dataset, checked against an independent path."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sklearn.decomposition import PCA

from ml4ms.analysis.chemiscope import read_chemiscope
from ml4ms.cli import map as map_cli
from ml4ms.data import datasets
from ml4ms.errors import ConfigError

SOAP = "{descriptor: soap, species: [Cu], r_cut: 4.0, n_max: 3, l_max: 2, periodic: true}"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ml4ms")
    map_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["map", *argv])
    return args.func(args)


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_structure_map_of_mlearn_cu_with_kmeans(tmp_path, data_dir, capsys):
    from ml4ms.descriptors import SOAP as SOAPDescriptor

    out = tmp_path / "cu.json"
    assert _run("mlearn:Cu:test", "--descriptor", SOAP, "--method", "pca", "--cluster", "kmeans",
                "--n-clusters", "3", "--output", str(out)) == 0
    assert "wrote the pca map of 31 structures" in capsys.readouterr().out
    assert _is_png(tmp_path / "cu.png")
    data = read_chemiscope(out)
    images = datasets.load("mlearn", element="Cu", split="test")
    assert len(data["structures"]) == 31 and "environments" not in data
    props = data["properties"]
    assert set(props) == {"PCA[1]", "PCA[2]", "n_atoms", "energy_per_atom", "group", "cluster"}
    np.testing.assert_allclose(props["energy_per_atom"]["values"], [a.info["energy"] / len(a) for a in images])
    assert props["energy_per_atom"]["units"] == "eV/atom"
    assert props["group"]["values"] == [a.info["config_type"] for a in images]
    assert sorted(set(props["cluster"]["values"])) == [0.0, 1.0, 2.0]
    # Independent path: the descriptor directly, the mean over atoms, scikit-learn's PCA.
    soap = SOAPDescriptor(["Cu"], r_cut=4.0, n_max=3, l_max=2, periodic=True)
    rows = np.array([np.asarray(f).mean(axis=0) for f in soap.create(images)])
    expected = PCA(n_components=2).fit_transform(rows)
    ours = np.column_stack([props["PCA[1]"]["values"], props["PCA[2]"]["values"]])
    signs = np.sign(np.sum(ours * expected, axis=0))
    np.testing.assert_allclose(ours * signs, expected, atol=1e-8 * np.abs(expected).max())
    assert data["settings"]["map"]["color"] == {"property": "group"}
    assert data["settings"]["target"] == "structure"


def test_atom_map_with_kernel_pca_and_hdbscan(tmp_path, data_dir, capsys):
    out = tmp_path / "atoms.json.gz"
    assert _run("mlearn:Cu:test@:3", "--descriptor", SOAP, "--method", "kpca", "--target", "atom",
                "--cluster", "hdbscan", "--cluster-options", "{min_cluster_size: 20}", "--color", "kPCA[1]",
                "--output", str(out)) == 0
    assert _is_png(tmp_path / "atoms.png")
    images = datasets.load("mlearn", element="Cu", split="test")[:3]
    n_atoms = sum(len(a) for a in images)
    data = read_chemiscope(out)
    assert len(data["environments"]) == n_atoms
    assert data["environments"][len(images[0])] == {"structure": 1, "center": 0, "cutoff": 4.0}
    props = data["properties"]
    assert props["kPCA[1]"]["target"] == "atom" and len(props["kPCA[1]"]["values"]) == n_atoms
    assert props["element"]["values"] == ["Cu"] * n_atoms
    assert len(props["cluster"]["values"]) == n_atoms
    assert props["energy_per_atom"]["target"] == "structure"
    assert data["settings"]["target"] == "atom"
    assert f"{n_atoms} atomic environments of 3 structures" in capsys.readouterr().out


def test_autoencoder_map(tmp_path, data_dir, capsys):
    out = tmp_path / "ae.json"
    assert _run("mlearn:Cu:test", "--descriptor", SOAP, "--method", "autoencoder",
                "--map-options", "{hidden: [8], max_epochs: 30}", "--color", "energy_per_atom",
                "--output", str(out)) == 0
    assert "validation reconstruction error" in capsys.readouterr().out
    assert {"AE[1]", "AE[2]"} <= set(read_chemiscope(out)["properties"])
    assert _is_png(tmp_path / "ae.png")


def test_bad_requests_are_clear_errors(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="--color 'volume' is not a property of the map"):
        _run("mlearn:Cu:test@:4", "--descriptor", SOAP, "--color", "volume", "--output", str(tmp_path / "a.json"))
    with pytest.raises(ConfigError, match=r"must end in \.json or \.json\.gz"):
        _run("mlearn:Cu:test@:4", "--descriptor", SOAP, "--output", str(tmp_path / "a.txt"))
    with pytest.raises(ConfigError, match="n_components=5 is more than the data allow"):
        _run("mlearn:Cu:test@:4", "--descriptor", SOAP, "--n-components", "5", "--output", str(tmp_path / "a.json"))
    with pytest.raises(ConfigError, match="per-atom map"):
        _run("mlearn:Cu:test@:4", "--descriptor", "{descriptor: composition, properties: [AtomicWeight], "
             "stats: [mean]}", "--target", "atom", "--output", str(tmp_path / "a.json"))
    with pytest.raises(ConfigError, match="--n-clusters needs --cluster kmeans"):
        _run("mlearn:Cu:test@:4", "--descriptor", SOAP, "--n-clusters", "2", "--output", str(tmp_path / "a.json"))
    assert list(tmp_path.iterdir()) == []
