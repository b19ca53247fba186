"""The trainer: it finds known parameters, resumes bit for bit, and fails loudly and safely."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from ase.stress import voigt_6_to_full_3x3_stress

from ml4ms.data.dataset import AtomsDataset
from ml4ms.data.graph import AtomicGraph
from ml4ms.errors import ConfigError, TrainingDiverged, UnknownElementError
from ml4ms.training import LossWeights, Trainer, batch_plan, load_checkpoint

from .conftest import TRUE, LearnableMorse

WEIGHTS = LossWeights(energy_sigma=0.001, force_sigma=0.02, stress_sigma=0.002)
QUICK = {"epochs": 3, "batch_size": 4, "lr": 0.01, "checkpoint_every": 2, "ema_decay": 0.9}


def weights_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_finds_the_well_depth_of_the_potential_that_labelled_the_data(morse_train, morse_validation):
    model = LearnableMorse(epsilon=0.3)
    with torch.no_grad():  # the shape is ASE's; only the well depth is learnt
        model.p_rho0.fill_(TRUE["rho0"])
        model.p_r0.fill_(TRUE["r0"])
    model.p_rho0.requires_grad_(False)
    model.p_r0.requires_grad_(False)
    trainer = Trainer(model, {"epochs": 40, "batch_size": 4, "lr": 0.01, "ema_decay": None, "lr_patience": 2},
                      WEIGHTS, progress=False)
    result = trainer.fit(morse_train, morse_validation, initialize=False)
    assert model.parameters_found()["epsilon"] == pytest.approx(TRUE["epsilon"], rel=0.002)
    assert result.best_validation["forces_mae"] < 0.01 * result.history[0]["val_forces_mae"]


def test_one_step_is_adamw_on_the_weighted_squared_errors_written_out_by_hand(morse_train):
    batch = [morse_train[k] for k in range(4)]
    config = {"epochs": 1, "batch_size": 4, "lr": 0.01, "ema_decay": None, "clip_grad_norm": None,
              "weight_decay": 0.01}
    trained = LearnableMorse()
    Trainer(trained, config, WEIGHTS, progress=False).fit(batch, initialize=False)

    by_hand = LearnableMorse()
    params = [by_hand.p_epsilon, by_hand.p_rho0, by_hand.p_r0]
    order = np.random.default_rng([0, 0]).permutation(4)  # the trainer's batch order does not matter here
    graph = AtomicGraph.from_atoms([batch[k] for k in order], by_hand.cutoff)
    by_hand.train()
    out = by_hand(graph, compute_forces=True, compute_stress=True, create_graph=True)
    n = torch.tensor([len(batch[k]) for k in order], dtype=torch.float64)
    energy = torch.tensor([batch[k].info["energy"] for k in order])
    forces = torch.tensor(np.concatenate([batch[k].arrays["forces"] for k in order]))
    stress = torch.tensor(np.stack([voigt_6_to_full_3x3_stress(batch[k].info["stress"]) for k in order]))
    loss = ((((out["energy"] - energy) / n / WEIGHTS.energy_sigma) ** 2).mean()
            + (((out["forces"] - forces) / WEIGHTS.force_sigma) ** 2).mean()
            + (((out["stress"] - stress) / WEIGHTS.stress_sigma) ** 2).mean())
    optimizer = torch.optim.AdamW(params, lr=0.01, weight_decay=0.01)
    loss.backward()
    optimizer.step()
    for mine, theirs in zip([trained.p_epsilon, trained.p_rho0, trained.p_r0], params):
        assert float(mine.detach()) == pytest.approx(float(theirs.detach()), rel=1e-12)
    assert float(trained.p_epsilon.detach()) != pytest.approx(LearnableMorse().parameters_found()["epsilon"], rel=1e-6)


def test_an_interrupted_run_resumes_to_the_same_weights_bit_for_bit(tmp_path, morse_train, morse_validation):
    reference = LearnableMorse()
    Trainer(reference, QUICK, WEIGHTS, directory=tmp_path / "a", progress=False).fit(morse_train, morse_validation)

    class Killed(Exception):
        pass

    def kill_at_step_5(state):
        if state["step"] == 5:
            raise Killed

    interrupted = LearnableMorse()
    with pytest.raises(Killed):
        Trainer(interrupted, QUICK, WEIGHTS, directory=tmp_path / "b", progress=False).fit(
            morse_train, morse_validation, callback=kill_at_step_5)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")["state"]["step"] == 4
    resumed = LearnableMorse(epsilon=9.0)  # its own weights are replaced by the checkpoint's
    with pytest.raises(ConfigError, match="checkpoint is of LearnableMorse"):
        Trainer(resumed, QUICK, WEIGHTS, directory=tmp_path / "b", progress=False).fit(
            morse_train, morse_validation, resume=True)
    resumed = LearnableMorse()
    result = Trainer(resumed, QUICK, WEIGHTS, directory=tmp_path / "b", progress=False).fit(
        morse_train, morse_validation, resume=True)
    for name, value in weights_of(reference).items():
        assert torch.equal(weights_of(resumed)[name], value), name
    assert result.steps == 9  # 3 epochs of 3 batches of 4 structures
    with open(tmp_path / "b" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"lr", "train_loss", "val_energy_mae", "val_forces_mae", "val_stress_mae"} <= set(rows[0])
    assert len(json.loads((tmp_path / "b" / "metrics.json").read_text())) == 3


def test_a_time_limit_stops_after_a_checkpoint_and_resume_finishes_the_same_run(tmp_path, morse_train):
    reference = LearnableMorse()
    Trainer(reference, QUICK, WEIGHTS, progress=False).fit(morse_train)
    model = LearnableMorse()
    result = Trainer(model, {**QUICK, "time_limit_min": 1e-9}, WEIGHTS, directory=tmp_path,
                     progress=False).fit(morse_train)
    assert result.stopped == "time_limit" and result.steps == 1
    model = LearnableMorse()
    result = Trainer(model, QUICK, WEIGHTS, directory=tmp_path, progress=False).fit(morse_train, resume=True)
    assert result.stopped == "epochs" and result.steps == 9
    for name, value in weights_of(reference).items():
        assert torch.equal(weights_of(model)[name], value), name


def test_resume_refuses_changed_settings_that_would_change_the_arithmetic(tmp_path, morse_train):
    Trainer(LearnableMorse(), {**QUICK, "epochs": 1}, WEIGHTS, directory=tmp_path, progress=False).fit(morse_train)
    with pytest.raises(ConfigError, match="lr: 0.01 -> 0.02"):
        Trainer(LearnableMorse(), {**QUICK, "lr": 0.02}, WEIGHTS, directory=tmp_path,
                progress=False).fit(morse_train, resume=True)
    with pytest.raises(ConfigError, match="training structures differ"):
        Trainer(LearnableMorse(), QUICK, WEIGHTS, directory=tmp_path, progress=False).fit(
            morse_train[:-1], resume=True)
    # more epochs is fine: the run continues where it stopped
    result = Trainer(LearnableMorse(), QUICK, WEIGHTS, directory=tmp_path, progress=False).fit(
        morse_train, resume=True)
    assert len(result.history) == 3


def test_a_non_finite_loss_stops_with_the_batch_named_and_keeps_the_last_good_checkpoint(tmp_path, morse_train):
    model = LearnableMorse()

    def poison(state):
        if state["step"] == 2:  # after the checkpoint of step 2, the weights go bad
            with torch.no_grad():
                model.p_rho0.fill_(float("nan"))

    trainer = Trainer(model, QUICK, WEIGHTS, directory=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 3 \(epoch 1\), batch of training "
                       r"structures \[\d+, \d+, \d+, \d+\]") as error:
        trainer.fit(morse_train, callback=poison)
    assert error.value.step == 3 and len(error.value.structures) == 4
    saved = load_checkpoint(error.value.checkpoint)
    assert saved["state"]["step"] == 2
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_a_large_structure_gets_a_batch_of_its_own_and_no_batch_exceeds_the_atom_budget():
    sizes = [10, 10, 500, 10, 10, 10, 30]
    batches = batch_plan(sizes, np.arange(len(sizes)), batch_size=4, max_atoms=40)
    assert [2] in batches
    assert sorted(k for b in batches for k in b) == list(range(len(sizes)))
    for b in batches:
        assert len(b) <= 4
        assert len(b) == 1 or sum(sizes[k] for k in b) <= 40


def test_training_rejects_an_element_the_model_does_not_know_naming_the_structure(morse_train):
    model = LearnableMorse(species=["Cu"])
    data = list(morse_train[:3])
    odd = bulk("Ni", "fcc", a=3.5, cubic=True)
    odd.info["energy"] = 0.0
    data.append(odd)
    with pytest.raises(UnknownElementError, match="structure 3"):
        Trainer(model, QUICK, WEIGHTS, progress=False).fit(AtomsDataset(data, source="cells.extxyz"))


def test_early_stopping_ends_a_run_that_no_longer_improves(morse_train, morse_validation):
    model = LearnableMorse()
    result = Trainer(model, {**QUICK, "epochs": 50, "lr": 1e-12, "patience": 3}, WEIGHTS,
                     progress=False).fit(morse_train, morse_validation, initialize=False)
    assert result.stopped == "patience"
    assert len(result.history) == 4 and result.best_epoch == 1


def test_float32_training_runs_and_reduces_the_loss(morse_train, morse_validation):
    model = LearnableMorse()
    result = Trainer(model, {**QUICK, "epochs": 10, "dtype": "float32"}, WEIGHTS,
                     progress=False).fit(morse_train, morse_validation, initialize=False)
    assert model.p_rho0.dtype == torch.float32
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_a_model_without_trainable_parameters_is_refused():
    from ml4ms.models import Morse

    with pytest.raises(ConfigError, match="no trainable parameters"):
        Trainer(Morse(), QUICK, WEIGHTS)
