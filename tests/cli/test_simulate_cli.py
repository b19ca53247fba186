"""``ml4ms md | relax | elastic | neb | vacancy-barrier``: a model file and a structure file in, JSON and plots out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write

import ml4ms
from ml4ms.cli import main
from ml4ms.data.emt import label_with_emt
from ml4ms.models import LinearPairPotential


@pytest.fixture(scope="module")
def cu_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("structures") / "cu.extxyz"
    write(path, bulk("Cu", cubic=True))
    return path


@pytest.fixture(scope="module")
def pair_model_file(tmp_path_factory):
    """A two-body Cu potential fitted to EMT labels of rattled cells, saved as a model file."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(12):
        atoms = bulk("Cu", cubic=True, a=3.59 * (1 + rng.normal(0, 0.01))).repeat(2)
        atoms.rattle(0.05, seed=i)
        images.append(label_with_emt(atoms, "bulk"))
    model = LinearPairPotential(species=["Cu"], cutoff=5.0, n_basis=12, r_min=1.5)
    model.fit(images, energy_sigma=0.001, force_sigma=0.02, stress_sigma=0.005)
    return ml4ms.save(model, tmp_path_factory.mktemp("model") / "pair.ml4ms")


def test_relax_with_cell_and_eos_finds_emts_lattice_constant(tmp_path, cu_file, capsys):
    assert main(["relax", "emt", str(cu_file), "--cell", "--eos", "--fmax", "1e-4", "--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "relax.json").read_text())
    # EMT's own equilibrium, found independently by a dense energy scan
    scan = np.linspace(3.55, 3.63, 81)
    energies = []
    for a in scan:
        atoms = bulk("Cu", cubic=True, a=a)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    assert result["relax"]["cell_lengths_A"][0] == pytest.approx(scan[np.argmin(energies)], abs=1e-3)
    assert result["eos"]["lattice_constant_A"] == pytest.approx(result["relax"]["cell_lengths_A"][0], abs=1e-3)
    assert (tmp_path / "eos.png").stat().st_size > 1000
    assert len(read(tmp_path / "relaxed.extxyz")) == 4
    assert "bulk modulus" in capsys.readouterr().out


def test_elastic_writes_the_stiffness_matrix(tmp_path, cu_file):
    assert main(["elastic", "emt", str(cu_file), "--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "elastic.json").read_text())
    c = np.array(result["C_GPa"])
    assert c.shape == (6, 6) and np.allclose(c, c.T)
    # cubic symmetry: the zero entries of a cubic stiffness matrix are zero
    assert np.abs(c[:3, 3:]).max() < 0.5 and result["C11"] > result["C12"] > 0 and result["C44"] > 0


def test_md_writes_trajectory_log_summary_and_plot(tmp_path, cu_file):
    args = ["md", "emt", str(cu_file), "--supercell", "2", "--steps", "40", "--log-interval", "10",
            "--ensemble", "langevin", "--temperature", "500", "--output", str(tmp_path)]
    assert main(args) == 0
    with open(tmp_path / "md.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30, 40]
    assert {"time_ps", "temperature_K", "epot_eV", "etot_eV", "pressure_GPa"} <= set(rows[0])
    frames = read(tmp_path / "md.extxyz", ":")
    assert len(frames) == 5 and len(frames[0]) == 32
    summary = json.loads((tmp_path / "md.json").read_text())
    assert summary["steps"] == 40 and summary["status"] == "completed"
    assert (tmp_path / "md.png").stat().st_size > 1000


def test_md_with_a_model_file(tmp_path, cu_file, pair_model_file):
    args = ["md", str(pair_model_file), str(cu_file), "--supercell", "2", "--steps", "20", "--output", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads((tmp_path / "md.json").read_text())
    assert summary["max_energy_change_meV_per_atom"] < 1.0


def test_vacancy_barrier_with_emt(tmp_path, cu_file):
    args = ["vacancy-barrier", "emt", str(cu_file), "--supercell", "2", "--images", "3", "--output", str(tmp_path)]
    assert main(args) == 0
    result = json.loads((tmp_path / "vacancy.json").read_text())
    assert result["n_atoms"] == 31 and result["barrier_sigma_eV"] is None
    # a symmetric hop in a perfect crystal: forward and reverse barriers agree
    assert result["barrier_eV"] == pytest.approx(result["reverse_barrier_eV"], abs=0.01)
    assert result["energies_eV"][0] == 0 and max(result["energies_eV"]) == result["barrier_eV"]
    assert len(read(tmp_path / "vacancy.extxyz", ":")) == 5
    assert (tmp_path / "vacancy.png").stat().st_size > 1000


def test_neb_between_two_files(tmp_path):
    crystal = bulk("Cu", cubic=True, a=3.59).repeat(2)
    del crystal[0]
    final = crystal.copy()
    final.positions[0] = [0.0, 0.0, 0.0]  # atom 0 (at a/2, a/2, 0) hops into the vacancy
    write(tmp_path / "initial.extxyz", crystal)
    write(tmp_path / "final.extxyz", final)
    args = ["neb", "emt", str(tmp_path / "initial.extxyz"), str(tmp_path / "final.extxyz"), "--images", "3",
            "--output", str(tmp_path / "out")]
    assert main(args) == 0
    result = json.loads((tmp_path / "out" / "neb.json").read_text())
    assert 0.3 < result["barrier_eV"] < 1.5 and result["converged"]


def test_neb_end_points_with_different_atoms_are_an_error(tmp_path, capsys):
    crystal = bulk("Cu", cubic=True).repeat(2)
    write(tmp_path / "a.extxyz", crystal)
    write(tmp_path / "b.extxyz", crystal[:-1])
    assert main(["neb", "emt", str(tmp_path / "a.extxyz"), str(tmp_path / "b.extxyz"), "--no-relax",
                 "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "same atoms" in err and "32 atoms" in err and "31 atoms" in err


def test_a_structure_with_elements_the_model_does_not_know_is_an_error(tmp_path, pair_model_file, capsys):
    write(tmp_path / "nacl.extxyz", bulk("NaCl", "rocksalt", a=5.64))
    assert main(["relax", str(pair_model_file), str(tmp_path / "nacl.extxyz"), "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "nacl.extxyz" in err and "Cl, Na" in err and "Cu" in err


def test_a_missing_structure_file_is_named(tmp_path, capsys):
    assert main(["elastic", "emt", str(tmp_path / "nope.extxyz"), "--output", str(tmp_path)]) == 1
    assert "nope.extxyz" in capsys.readouterr().err


def test_a_diverging_md_is_stopped_and_reported_with_the_last_good_frame(tmp_path, cu_file, capsys):
    # A perfect crystal has zero forces at step 0; thermal motion makes them exceed the
    # (absurdly small) limit at step 1, which therefore counts as diverging.
    args = ["md", "emt", str(cu_file), "--supercell", "2", "--steps", "50", "--max-force", "1e-3",
            "--output", str(tmp_path / "out")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "diverged at step 1" in err and "max_force" in err and "md.last_good.extxyz" in err
    frame = read(tmp_path / "out" / "md.last_good.extxyz")
    assert len(frame) == 32 and np.allclose(frame.get_forces(), 0, atol=1e-10)  # the step-0 frame
