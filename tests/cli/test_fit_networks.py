"""``ml4ms fit`` trains neural networks and committees from the same configuration format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from ml4ms.cli import main
from ml4ms.models import Committee
from ml4ms.serialization import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def emt_frames(n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.set_cell(atoms.cell.array * (1 + 0.02 * rng.normal()), scale_atoms=True)
        atoms.rattle(0.08, seed=int(rng.integers(2**31)))
        atoms.calc = EMT()
        atoms.get_potential_energy()
        out.append(atoms)
    return out


@pytest.fixture()
def config(tmp_path):
    write(tmp_path / "train.extxyz", emt_frames(12, 0))
    write(tmp_path / "test.extxyz", emt_frames(4, 1))
    path = tmp_path / "bpnn.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"train": str(tmp_path / "train.extxyz"), "test": str(tmp_path / "test.extxyz"),
                 "validation": 0.25},
        "model": {"type": "bpnn", "preset": "small", "hidden": [8]},
        "fit": {"energy_sigma": 0.002, "force_sigma": 0.05, "stress_sigma": None},
        "train": {"epochs": 2, "batch_size": 3, "checkpoint_every": 2},
        "committee": {"size": 2},
        "output": str(tmp_path / "cu.ml4ms"),
    }))
    return path


def test_a_committee_of_networks_is_trained_saved_evaluated_and_resumed(config, tmp_path, capsys):
    assert main(["fit", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "holding out 3 of the training structures for validation" in printed
    assert "committee member 2/2 (seed 1)" in printed
    model = load(tmp_path / "cu.ml4ms")
    assert isinstance(model, Committee) and len(model.members) == 2
    metrics = json.loads((tmp_path / "cu.metrics.json").read_text())
    assert [m["epochs"] for m in metrics["fit"]["members"]] == [2, 2]
    assert metrics["fit"]["uncertainty_scale"] > 0
    assert metrics["test"]["uncertainty"]["n"] == 4
    for k in (0, 1):
        assert (tmp_path / "cu.train" / f"member-{k}" / "metrics.csv").is_file()

    out = tmp_path / "eval.json"
    assert main(["eval", str(tmp_path / "cu.ml4ms"), str(tmp_path / "test.extxyz"), "--json", str(out)]) == 0
    evaluated = json.loads(out.read_text())
    assert evaluated["energy"]["mae"] == pytest.approx(metrics["test"]["energy"]["mae"], rel=1e-9)
    assert "within_1sigma" in evaluated["uncertainty"]

    # two more epochs continue from the checkpoints instead of starting again
    assert main(["fit", str(config), "--resume", "--set", "train.epochs=4"]) == 0
    metrics = json.loads((tmp_path / "cu.metrics.json").read_text())
    assert [m["epochs"] for m in metrics["fit"]["members"]] == [4, 4]


def test_closed_form_settings_are_refused_for_a_network(config, capsys):
    assert main(["fit", str(config), "--set", "fit.alpha=0.1"]) == 1
    assert "fit.alpha applies to closed-form fits only" in capsys.readouterr().err


def test_an_unknown_preset_is_named(config, capsys):
    assert main(["fit", str(config), "--set", "model.preset=huge"]) == 1
    assert "model.preset must be one of small, medium, large" in capsys.readouterr().err


@pytest.mark.parametrize("element", ["Ni", "Cu", "Li", "Mo", "Si", "Ge"])
def test_every_mlearn_network_example_is_a_valid_configuration(element):
    from ml4ms.config import load_fit_config

    for kind in ("bpnn", "mpnn"):
        config = load_fit_config(EXAMPLES / "mlearn" / f"{element}-{kind}.yaml")
        assert config.model.type == kind and config.data.train == f"mlearn:{element}:train"


def test_the_molecule_example_reads_frames_by_time(data_dir):
    from ml4ms.config import load_fit_config
    from ml4ms.data.sources import read_structures

    config = load_fit_config(EXAMPLES / "molecule-mpnn.yaml")
    train, test = read_structures(config.data.train), read_structures(config.data.test)
    assert (len(train), len(test)) == (800, 200)
    assert train[-1].info["energy"] != test[0].info["energy"]
