"""``ml4ms bo CONFIG``: a torsion search from the command line, with its outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from ml4ms.cli import bo as bo_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "bo"


def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="ml4ms")
    bo_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bo", *argv])
    return args.func(args)


def write_config(tmp_path, **values) -> Path:
    import yaml

    path = tmp_path / "bo.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_butane_example_finds_anti(tmp_path, capsys):
    # the shipped example config (TraPPE-UA calculator from examples/bo/conformer.py)
    out = tmp_path / "butane"
    assert run_cli(str(EXAMPLES / "butane.yaml"), "--set", f"output={out}", "--set", "n_iter=8") == 0
    result = json.loads((out / "results.json").read_text())
    # anti butane (180 deg) is the TraPPE minimum: U(180) = 0 for the torsion term
    assert abs((result["x_best"][0] - 180.0 + 180.0) % 360.0 - 180.0) < 10.0
    assert result["n_evaluations"] == 3 + 8
    for name in ("best.extxyz", "predicted_minimum.extxyz", "convergence.png", "surrogate.png"):
        assert (out / name).stat().st_size > 0
    assert "predicted minimum" in capsys.readouterr().out


def test_two_torsions_with_lj(tmp_path):
    from ase.io import write

    import sys

    sys.path.insert(0, str(EXAMPLES))
    from conformer import alkane

    pentane = alkane(5, [70.0, 170.0])
    write(tmp_path / "pentane.xyz", pentane)
    cfg = write_config(tmp_path, structure="pentane.xyz", calculator={"name": "lj", "sigma": 3.0, "epsilon": 0.01},
                       torsions=[[0, 1, 2, 3], [1, 2, 3, 4]], n_iter=2, n_initial=4, batch_size=2, seed=1,
                       output=str(tmp_path / "out"))
    assert run_cli(str(cfg)) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["n_evaluations"] == 4 + 2 * 2
    assert np.shape(result["X"]) == (8, 2)
    assert result["initial_angles_deg"] == pytest.approx([70.0, 170.0], abs=1e-6)
    assert (tmp_path / "out" / "surrogate.png").exists()


@pytest.mark.parametrize(("values", "match"), [
    ({"torsions": [[0, 1, 2]]}, "four atom indices"),
    ({"torsions": [[0, 1, 3, 2]]}, "not bonded"),
    ({"n_iter": 0}, "n_iter"),
    ({"calculator": "nothing-here"}, "neither emt"),
    ({"structure": "molecule:unobtainium"}, "g2"),
    ({"acquisition": "ucb"}, "acquisition"),
    ({"typo": 1}, "typo"),
])
def test_bad_config(tmp_path, values, match):
    from ml4ms.errors import ConfigError

    base = {"structure": "molecule:trans-butane", "calculator": "emt", "torsions": [[0, 1, 2, 3]], "n_iter": 1,
            "output": str(tmp_path / "out")}
    cfg = write_config(tmp_path, **{**base, **values})
    with pytest.raises(ConfigError, match=match):
        run_cli(str(cfg))
