"""``ml4ms demo`` (what ``make run`` runs) fits, evaluates, simulates and reports on real DFT data."""

from __future__ import annotations

import json

import pytest

import ml4ms
from ml4ms.cli import main


def test_demo_fits_a_gp_with_error_bars_and_simulates_with_it(tmp_path, data_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in ("1. Loading", "2. Fitting", "3. Evaluating", "4. Saving", "5. Lattice", "6. Elastic",
                 "7. Molecular dynamics", "8. Vacancy", "9. Writing"):
        assert step in printed
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test"]
    assert test["n_structures"] == 31 and test["n_atoms"] == 3178
    # Even the quick model must be near the published GAP (0.46 meV/atom, 0.01 eV/Å); the
    # training mean energy per atom misses the test energies by 135 meV/atom.
    assert test["energy"]["mae"] < 1.0 and test["forces"]["mae"] < 0.015
    assert set(test["by_group"]) == {"AIMD-NVT", "Elastic", "Surface", "Vacancy"}
    assert 0.5 <= test["uncertainty"]["within_2sigma"] <= 1.0
    # PBE Cu: a = 3.63 Å; the data's own reference cell is 3.616 Å
    assert abs(summary["lattice_constant_A"]["model"] - summary["lattice_constant_A"]["dft"]) < 0.03
    assert summary["lattice_constant_A"]["dft"] == pytest.approx(3.616, abs=0.002)
    for key, diff in summary["elastic_constants_GPa"]["relative_difference"].items():
        assert abs(diff) < 0.25, key
    barrier = summary["vacancy_migration"]
    assert 0.4 < barrier["barrier_eV"] < 1.2 and barrier["barrier_sigma_eV"] > 0
    assert abs(summary["md"]["nve_drift_meV_per_atom_per_ps"]) < 0.5
    for name in ("report.html", "parity.png", "uncertainty.png", "eos.png", "md.png", "barrier.png"):
        assert (out / name).stat().st_size > 1000
    model = ml4ms.load(out / "model.ml4ms")
    assert model.elements == ["Cu"] and model.supports_uncertainty
    assert model.file_header["training_data_hash"].startswith("sha256:")
