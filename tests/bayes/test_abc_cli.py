"""``ml4ms abc CONFIG.yaml``: a tiny configuration end to end, resume, and config errors."""

from __future__ import annotations

import argparse
import json

import pytest

from ml4ms.bayes.examples import GaussianMean
from ml4ms.cli import abc as abc_cli
from ml4ms.errors import ConfigError

CONFIG = """
method: {method}
simulator: gaussian-mean
simulator_options: {{n: 4, sigma: 2.0}}
priors:
  mu: {{distribution: normal, mu: 0.0, sigma: 3.0}}
observed: [2.0]
distance: euclidean
n_samples: 300
smc: {{generations: 5}}
rejection: {{n_simulations: 6000}}
regression_adjust: true
seed: 1
"""


def _parse(argv):
    parser = argparse.ArgumentParser(prog="ml4ms")
    abc_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["abc", *argv])


@pytest.mark.parametrize("method", ["rejection", "smc"])
def test_tiny_config_writes_posterior_json_and_plot(tmp_path, capsys, method):
    config = tmp_path / "gauss.yaml"
    config.write_text(CONFIG.format(method=method))
    out = tmp_path / "run"
    args = _parse([str(config), "--output", str(out), "--workers", "1", "--no-progress"])
    assert args.func(args) == 0
    data = json.loads((out / "posterior.json").read_text())
    assert (out / "posterior.png").stat().st_size > 10_000
    for key in ("samples", "weights", "mean", "std", "credible_interval_95", "n_simulations", "n_failed",
                "wall_time_s", "regression_adjusted"):
        assert key in data
    mean, sd = GaussianMean(n=4, sigma=2.0).posterior(2.0, 0.0, 3.0)
    assert abs(data["mean"]["mu"] - mean) < 0.25 and abs(data["std"]["mu"] - sd) < 0.25
    adjusted = data["regression_adjusted"]["summary"]["mu"]
    assert abs(adjusted["mean"] - mean) < 0.25 and abs(adjusted["std"] - sd) < 0.2
    assert "samples from" in capsys.readouterr().out
    if method == "smc":
        assert (out / "checkpoint.json").is_file()
        again = _parse([str(config), "--output", str(out), "--resume", "--no-progress"])
        assert again.func(again) == 0
        resumed = json.loads((out / "posterior.json").read_text())
        assert resumed["samples"] == data["samples"] and resumed["n_simulations"] == data["n_simulations"]


@pytest.mark.parametrize("change, fragment", [
    ("n_sample: 10\n", "n_sample: Extra inputs are not permitted"),
    ("smc: {generations: 0}\n", "smc.generations"),
    ("method: mcmc\n", "method"),
    ("priors: {mu: {distribution: normal, mu: 0, sigma: -1}}\n", "prior of 'mu'"),
    ("simulator: no_such_thing\n", "simulator must be one of"),
    ("observed: {from: dft}\n", "observed.from must be one of"),
])
def test_config_errors_name_the_key(tmp_path, change, fragment):
    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG.format(method="rejection") + change)
    args = _parse([str(config), "--output", str(tmp_path / "out"), "--no-progress"])
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        args.func(args)


def test_set_overrides_the_file_and_is_validated_like_it(tmp_path):
    config = tmp_path / "gauss.yaml"
    config.write_text(CONFIG.format(method="rejection"))
    out = tmp_path / "run"
    args = _parse([str(config), "--output", str(out), "--no-progress", "--set", "n_samples=40",
                   "--set", "rejection.n_simulations=800"])
    assert args.func(args) == 0
    data = json.loads((out / "posterior.json").read_text())
    assert len(data["samples"]) == 40 and data["n_simulations"] == 800
    bad = _parse([str(config), "--output", str(out), "--no-progress", "--set", "smc.generations=0"])
    with pytest.raises(ConfigError, match="smc.generations"):
        bad.func(bad)


def test_example_config_is_valid():
    from pathlib import Path

    config = abc_cli.load_abc_config(Path(__file__).resolve().parents[2] / "examples" / "abc" / "morse-cu.yaml")
    assert config.simulator == "morse-fcc" and config.observed.from_ == "emt"
    simulator = abc_cli.build_simulator(config.simulator, config.simulator_options)
    assert list(simulator.statistics) == ["lattice_constant", "cohesive_energy", "bulk_modulus"]
