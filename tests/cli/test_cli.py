"""The ``ml4ms`` command line: help everywhere, useful output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write as ase_write

import ml4ms
from ml4ms.cli import main
from ml4ms.data import read
from ml4ms.models import Morse


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def emt_file(tmp_path):
    images = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        images.append(atoms)
    path = tmp_path / "cu.extxyz"
    ase_write(path, images)  # energies, forces, stresses via ASE's SinglePointCalculator path
    return path, images


@pytest.mark.parametrize(
    "argv",
    [[], ["info"], ["data"], ["data", "stats"], ["data", "convert"], ["featurize"], ["fit"], ["eval"], ["demo"]],
)
def test_every_command_has_help(argv):
    result = subprocess.run([sys.executable, "-m", "ml4ms", *argv, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: ml4ms" in result.stdout


def test_data_stats_reports_counts_labels_and_reference_energies(capsys, emt_file, tmp_path):
    path, images = emt_file
    status, out, _ = _run(capsys, "data", "stats", str(path), "--json", str(tmp_path / "s.json"))
    assert status == 0
    assert "structures:       4" in out and "Cu 16" in out
    assert "energy 100%, forces 100%, stress 100%" in out
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["n_atoms"] == 16
    mean = np.mean([a.get_potential_energy() / 4 for a in images])
    assert stats["reference_energies"]["Cu"] == pytest.approx(mean)
    max_force = max(np.linalg.norm(a.get_forces(), axis=1).max() for a in images)
    assert stats["forces"]["max_norm"] == pytest.approx(max_force)


def test_data_stats_reads_a_public_dataset_spec(capsys, data_dir):
    status, out, _ = _run(capsys, "data", "stats", "mlearn:Si:test")
    assert status == 0
    assert "structures:       25" in out and "Si 1525" in out


def test_data_convert_keeps_labels(capsys, emt_file, tmp_path):
    path, images = emt_file
    for suffix in ("xyz", "db"):
        target = tmp_path / f"out.{suffix}"
        status, out, _ = _run(capsys, "data", "convert", str(path), str(target))
        assert status == 0 and "wrote 4 structures" in out
        back = read(target)
        for a, b in zip(images, back):
            assert b.info["energy"] == pytest.approx(a.get_potential_energy(), abs=1e-10)
            np.testing.assert_allclose(b.arrays["forces"], a.get_forces(), atol=1e-10)
            np.testing.assert_allclose(b.info["stress"], a.get_stress(), atol=1e-12)


def test_info_describes_a_model_file(capsys, tmp_path):
    model = Morse(epsilon=0.3, r0=2.5, species=[29])
    model.set_reference_energies({"Cu": -1.25})
    path = ml4ms.save(model, tmp_path / "m.ml4ms", metrics={"energy_mae": 1.5})
    status, out, _ = _run(capsys, "info", str(path))
    assert status == 0
    assert "class:          Morse" in out and "elements:       Cu" in out
    assert "cutoff:         6.75 Å" in out and "Cu -1.250000" in out and "energy_mae" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["info", "missing.ml4ms"], "missing.ml4ms"),
        (["data", "stats", "missing.xyz"], "missing.xyz"),
        (["data", "stats", "mlearn:Xx:train"], "Xx"),
    ],
)
def test_failures_print_one_error_line_and_exit_non_zero(capsys, argv, fragment):
    status, out, err = _run(capsys, *argv)
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0]


def test_a_bad_file_is_one_error_line_from_the_installed_command(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nCu 0 0 0\n")
    result = subprocess.run([sys.executable, "-m", "ml4ms", "data", "stats", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.startswith("error:") and "bad.xyz" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_stats_applies_index_to_a_dataset_spec(capsys, data_dir):
    status, out, _ = _run(capsys, "data", "stats", "mlearn:Si:test", "--index", "0:5")
    assert status == 0 and "structures:       5" in out
    status, _, err = _run(capsys, "data", "stats", "mlearn:Si:test", "--energy-key", "REF_energy")
    assert status == 1 and "applies to files only" in err
