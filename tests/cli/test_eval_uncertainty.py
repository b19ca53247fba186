"""``ml4ms eval`` of a model that predicts uncertainties: JSON, printed line, plots, opt-out.

Oracle: a toy Lennard-Jones whose energy std is 0.01 eV per atom (so sigma is 10 meV/atom
for every structure), evaluated on structures labelled with its own energies shifted by
chosen per-atom errors; every calibration number follows by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import ml4ms
from ml4ms.cli import main
from ml4ms.data import write
from ml4ms.data.graph import AtomicGraph
from ml4ms.models import LennardJones, predict

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 3.0 * 3.405, "smooth": True}
# Per-atom errors of the prediction, eV/atom, against sigma = 0.01 eV/atom:
# |e|/sigma = 0.5, 1.5, 2.5, 0.2 -> 2 of 4 within 1 sigma, 3 of 4 within 2 sigma.
ERRORS = [0.005, -0.015, 0.025, -0.002]
GROUPS = ["bulk", "bulk", "cluster", "cluster"]


class EvalTestUncertainLJ(LennardJones):
    """Lennard-Jones with an energy std of 0.01 eV per atom."""

    supports_uncertainty = True

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        dtype = graph.positions.dtype
        n_atoms = torch.bincount(graph.batch, minlength=graph.n_structures).to(dtype)
        return {"energy": 0.01 * n_atoms, "energies": torch.full_like(graph.positions[:, 0], 0.01)}


def _structures() -> list[Atoms]:
    crystal = bulk("Ar", "fcc", a=5.26, cubic=True)
    cluster = (crystal * 2)[:6]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    images = [crystal * 2, crystal, cluster, cluster[:3]]
    for seed, atoms in enumerate(images):
        atoms.rattle(0.05, seed=seed)
    return images


@pytest.fixture
def files(tmp_path):
    """Model files (with and without uncertainty) and a labelled data file."""
    toy, plain = EvalTestUncertainLJ(**ARGON), LennardJones(**ARGON)
    images = _structures()
    predicted = predict(plain, images)
    for atoms, energy, forces, error, group in zip(images, predicted.energy, predicted.forces, ERRORS, GROUPS):
        # the prediction is off by `error` per atom: reference = prediction - error * n_atoms
        atoms.info.update(energy=float(energy - error * len(atoms)), config_type=group)
        atoms.arrays["forces"] = forces
    write(tmp_path / "data.xyz", images)
    return {"toy": ml4ms.save(toy, tmp_path / "toy.ml4ms"), "plain": ml4ms.save(plain, tmp_path / "lj.ml4ms"),
            "data": tmp_path / "data.xyz"}


def test_eval_json_has_hand_computed_calibration(files, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(files["toy"]), str(files["data"]), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    u = metrics["uncertainty"]
    assert u["n"] == 4
    assert u["within_1sigma"] == pytest.approx(0.5) and u["within_2sigma"] == pytest.approx(0.75)
    assert u["expected_within_1sigma"] == 0.6827 and u["expected_within_2sigma"] == 0.9545
    assert u["mean_sigma"] == pytest.approx(10.0)
    assert u["rmse_over_rms_sigma"] == pytest.approx(math.sqrt(np.mean(np.square(ERRORS))) / 0.01)
    nll = np.mean([0.5 * math.log(2 * math.pi * 0.01**2) + 0.5 * (e / 0.01) ** 2 for e in ERRORS])
    assert u["nll"] == pytest.approx(nll, rel=1e-9)
    assert u["spearman"] is None  # one sigma for all: nothing to rank
    assert metrics["by_group"]["bulk"]["uncertainty"]["within_1sigma"] == pytest.approx(0.5)
    assert metrics["by_group"]["cluster"]["uncertainty"]["within_2sigma"] == pytest.approx(0.5)
    assert metrics["energy"]["mae"] == pytest.approx(1000 * np.mean(np.abs(ERRORS)))
    printed = capsys.readouterr().out
    assert ("uncertainty (E/atom, n=4): within 1σ 50.0% (ideal 68.3%), 2σ 75.0% (95.5%); RMSE/RMS σ 1.48; "
            "mean σ 10 meV/atom; Spearman -") in printed


def test_no_uncertainty_flag_and_plain_models_give_no_uncertainty(files, tmp_path, capsys):
    for model, flags in ((files["toy"], ["--no-uncertainty"]), (files["plain"], [])):
        out = tmp_path / "eval.json"
        assert main(["eval", str(model), str(files["data"]), "--json", str(out), *flags]) == 0
        metrics = json.loads(out.read_text())
        assert "uncertainty" not in metrics
        assert all("uncertainty" not in m for m in metrics["by_group"].values())
        assert metrics["energy"]["mae"] == pytest.approx(1000 * np.mean(np.abs(ERRORS)))
        assert "uncertainty (E/atom" not in capsys.readouterr().out


def test_plot_also_draws_error_against_sigma(files, tmp_path, capsys):
    plot = tmp_path / "plots" / "toy.png"
    assert main(["eval", str(files["toy"]), str(files["data"]), "--plot", str(plot)]) == 0
    second = tmp_path / "plots" / "toy.uncertainty.png"
    assert plot.is_file() and second.is_file()
    assert second.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {second}" in capsys.readouterr().out
    assert [p.name for p in sorted(plot.parent.iterdir())] == ["toy.png", "toy.uncertainty.png"]  # no temporaries

    plain_plot = tmp_path / "plain.png"
    assert main(["eval", str(files["plain"]), str(files["data"]), "--plot", str(plain_plot)]) == 0
    assert plain_plot.is_file() and not (tmp_path / "plain.uncertainty.png").exists()
