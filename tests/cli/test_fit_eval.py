"""``ml4ms fit CONFIG`` and ``ml4ms eval MODEL DATA``: configuration, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml4ms.cli import main
from ml4ms.config import load_fit_config
from ml4ms.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mlearn" / "Cu-pair.yaml"


def test_fit_then_eval_with_the_example_configuration(tmp_path, data_dir, capsys):
    model = tmp_path / "cu.ml4ms"
    assert main(["fit", str(EXAMPLE), "--output", str(model), "--set", "model.n_basis=12"]) == 0
    printed = capsys.readouterr().out
    assert "fitting LinearPairPotential to 262 structures (27416 atoms)" in printed
    for suffix in (".config.yaml", ".metrics.json", ".parity.png"):
        assert (tmp_path / f"cu{suffix}").is_file()
    fitted = json.loads((tmp_path / "cu.metrics.json").read_text())
    assert fitted["test"]["energy"]["mae"] < 30  # meV/atom; the training mean misses by 135

    out = tmp_path / "eval.json"
    assert main(["eval", str(model), "mlearn:Cu:test", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) >= {"n_structures", "n_atoms", "energy", "forces", "stress", "by_group"}
    assert metrics["n_structures"] == 31 and metrics["n_atoms"] == 3178
    assert set(metrics["energy"]) == {"mae", "rmse"} and metrics["energy"]["rmse"] >= metrics["energy"]["mae"]
    # eval recomputes what fit recorded, through a file round trip
    assert metrics["energy"]["mae"] == pytest.approx(fitted["test"]["energy"]["mae"], rel=1e-9)
    assert set(metrics["by_group"]) == {"AIMD-NVT", "Elastic", "Surface", "Vacancy"}


def test_overrides_are_typed_and_unknown_keys_are_named(tmp_path):
    config = load_fit_config(EXAMPLE, ["fit.alpha=1e-8", "model.n_basis=20", "data.test=null"])
    assert config.fit.alpha == 1e-8 and config.model.arguments()["n_basis"] == 20 and config.data.test is None
    with pytest.raises(ConfigError, match="fit.enegy_sigma: Extra inputs are not permitted"):
        load_fit_config(EXAMPLE, ["fit.enegy_sigma=0.1"])
    with pytest.raises(ConfigError, match="fit.force_sigma: Input should be greater than 0"):
        load_fit_config(EXAMPLE, ["fit.force_sigma=-1"])
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_fit_config(tmp_path / "missing.yaml")


def test_unknown_model_type_is_one_error_line(tmp_path, data_dir, capsys):
    assert main(["fit", str(EXAMPLE), "--set", "model.type=nonsense", "--set", "data.test=null",
                 "--output", str(tmp_path / "m.ml4ms")]) == 1
    assert capsys.readouterr().err.startswith("error: model.type must be one of linear_pair")
