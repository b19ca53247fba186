"""``ml4ms dimension INPUT``: feature matrices and structures in, JSON and a plot out."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from ml4ms.cli import dimension as dimension_cli
from ml4ms.errors import ConfigError


def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="ml4ms")
    dimension_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dimension", *argv])
    return args.func(args)


def plane(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    return rng.random((n, 2)) @ Q.T


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_feature_matrix(tmp_path, capsys, suffix):
    X = plane()
    path = tmp_path / f"features{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    elif suffix == ".npz":
        np.savez(path, features=X, energy=np.zeros(len(X)))
    else:
        np.savetxt(path, X, delimiter=",", header="a,b,c,d,e,f", comments="")
    out = tmp_path / "id.json"
    assert run_cli(str(path), "--method", "gride", "--output", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["n_rows"] == 1500 and result["n_features"] == 6
    assert abs(result["dimension"] - 2.0) < 3 * result["error"] + 0.1
    assert len(result["scaling"]["dimensions"]) == len(result["scaling"]["scales"]) >= 4
    assert (tmp_path / "id.png").stat().st_size > 0
    assert "intrinsic dimension (gride)" in capsys.readouterr().out


def test_structures_with_soap(tmp_path):
    from ase.build import bulk
    from ase.io import write

    images = []
    for k in range(12):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        images.append(atoms)
    write(tmp_path / "cu.extxyz", images)
    out = tmp_path / "cu.json"
    descriptor = "{descriptor: soap, species: [Cu], r_cut: 4.0, n_max: 3, l_max: 2}"
    assert run_cli(str(tmp_path / "cu.extxyz"), "--descriptor", descriptor, "--per-atom", "--output", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["kind"] == "structures" and result["pool"] == "none"
    assert result["n_rows"] == 12 * 4
    assert result["method"] == "twonn" and result["dimension"] > 0


def test_errors(tmp_path):
    np.save(tmp_path / "tiny.npy", np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="at least 3"), pytest.warns(UserWarning):
        run_cli(str(tmp_path / "tiny.npy"), "--output", str(tmp_path / "o.json"))
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 2)), b=np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="--key"):
        run_cli(str(tmp_path / "two.npz"), "--output", str(tmp_path / "o.json"))
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "cu.xyz", bulk("Cu", cubic=True))
    with pytest.raises(ConfigError, match="--descriptor"):
        run_cli(str(tmp_path / "cu.xyz"), "--output", str(tmp_path / "o.json"))
