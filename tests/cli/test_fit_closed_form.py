"""``ml4ms fit`` with the SOAP potentials (``type: gap`` and ``type: linear``): outputs and errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from ml4ms.cli import main
from ml4ms.data import write

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from conftest import emt_cells  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mlearn"
SOAP = {"type": "soap", "r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.5, "rbf": "gto_smooth"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emt")
    write(folder / "train.extxyz", emt_cells(16, seed=0))
    write(folder / "test.extxyz", emt_cells(4, seed=1))
    return folder


def _config(folder, model, **fit):
    config = {"data": {"train": str(folder / "train.extxyz"), "test": str(folder / "test.extxyz"),
                       "validation": 0.25},
              "model": model, "fit": {"force_sigma": 0.02, "stress_sigma": None, **fit},
              "output": str(folder / "model.ml4ms")}
    path = folder / f"{model['type']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_gap_writes_model_metrics_with_uncertainty_and_eval_reads_it(files, capsys):
    config = _config(files, {"type": "gap", "descriptor": SOAP, "n_sparse": 30},
                     search={"energy_sigma": [5e-4, 5e-3]})
    model = files / "gap.ml4ms"
    assert main(["fit", str(config), "--output", str(model)]) == 0
    printed = capsys.readouterr().out
    assert "chosen on validation: energy_sigma=" in printed
    metrics = json.loads((files / "gap.metrics.json").read_text())
    assert metrics["fit"]["n_validation"] == 4 and len(metrics["fit"]["search"]) == 2
    assert {"within_1sigma", "within_2sigma", "nll"} <= set(metrics["test"]["uncertainty"])
    out = files / "eval.json"
    assert main(["eval", str(model), str(files / "test.extxyz"), "--json", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["energy"]["mae"] == pytest.approx(metrics["test"]["energy"]["mae"], rel=1e-9)
    assert "uncertainty" in evaluated and evaluated["n_structures"] == 4


def test_fit_linear_with_overrides(files):
    config = _config(files, {"type": "linear", "descriptor": SOAP})
    model = files / "linear.ml4ms"
    assert main(["fit", str(config), "--output", str(model), "--set", "model.quadratic=true",
                 "--set", "fit.alpha=1e-6"]) == 0
    resolved = yaml.safe_load((files / "linear.config.yaml").read_text())
    assert resolved["model"]["quadratic"] is True and resolved["fit"]["alpha"] == 1e-6


@pytest.mark.parametrize("change, message", [
    (["--set", "model.n_sparce=10"], "unknown key(s) n_sparce for type gap; allowed: type, descriptor, n_sparse"),
    (["--set", "model.descriptor.nmax=3"], "descriptor: unknown key(s) nmax for SOAP; allowed: type, r_cut, n_max"),
    (["--set", "model.descriptor.rbf=polynomial"], "rbf='polynomial'"),
    (["--set", "fit.search.sigma_e=[1]"], "unknown keys ['sigma_e']"),
    (["--set", "model.zeta=abc"], "model (SparseGPPotential)"),
    (["--set", "fit.force_sigma=-1"], "fit.force_sigma"),
])
def test_bad_configurations_name_the_key_and_the_allowed_values(files, capsys, change, message):
    config = _config(files, {"type": "gap", "descriptor": SOAP, "n_sparse": 10})
    assert main(["fit", str(config), *change]) == 1
    assert message in capsys.readouterr().err


def test_settings_a_model_cannot_use_are_refused(files, capsys):
    config = _config(files, {"type": "linear_pair", "cutoff": 4.0})
    assert main(["fit", str(config)]) == 1
    assert "fit.validation is not supported by LinearPairPotential" in capsys.readouterr().err


@pytest.mark.parametrize("element", ["Ni", "Cu", "Li", "Mo", "Si", "Ge"])
@pytest.mark.parametrize("kind", ["gap", "linear"])
def test_every_mlearn_example_configuration_is_valid(element, kind):
    from ml4ms.cli.fit import build_model
    from ml4ms.config import load_fit_config

    config = load_fit_config(EXAMPLES / f"{element}-{kind}.yaml")
    assert config.data.train == f"mlearn:{element}:train" and config.data.test == f"mlearn:{element}:test"
    assert config.data.validation == 0.1
    model = build_model(config.model, [element])
    assert model.elements == [element]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_mlearn_example_is_a_valid_configuration_of_its_element(path):
    from ase.data import atomic_numbers

    from ml4ms.cli.fit import build_model
    from ml4ms.config import load_fit_config

    config = load_fit_config(path)
    element = path.name.split("-")[0]
    assert config.data.train == f"mlearn:{element}:train"
    assert config.data.test == f"mlearn:{element}:test"
    model = build_model(config.model, [atomic_numbers[element]])
    assert [int(z) for z in model.species] == [atomic_numbers[element]]
    if path.stem.endswith("-quadratic"):
        assert model.quadratic
