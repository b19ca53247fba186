"""Both network families, trained by the shared trainer, fit a tiny dataset closely."""

from __future__ import annotations

import pytest

from ml4ms.data.dataset import AtomsDataset
from ml4ms.data.emt import label_with_emt
from ml4ms.models import AtomicNeuralNetwork, EquivariantMPNN, predict
from ml4ms.training import LossWeights, Trainer
from ml4ms.training.metrics import error_metrics


def tiny_emt_set():
    import numpy as np
    from ase.build import bulk

    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.set_cell(atoms.cell.array * (1 + 0.02 * rng.normal()), scale_atoms=True)
        atoms.rattle(0.1, seed=k)
        out.append(label_with_emt(atoms, "bulk"))
    return out


@pytest.mark.parametrize("make, forces_mae, energy_mae", [
    (lambda: EquivariantMPNN(["Cu"], cutoff=4.5, channels=16, n_layers=2, n_radial=6, readout_hidden=16),
     0.08, 6.0),
    # The atomic network learns this set more slowly (its standardised ACSF inputs vary
    # strongly between near-identical cells); it must still cut the force error fivefold.
    (lambda: AtomicNeuralNetwork(["Cu"], descriptor={"type": "acsf", "r_cut": 4.5, "n_radial": 8,
                                                     "n_angular": 2, "zetas": [1, 4]}, hidden=[32, 32]),
     0.35, 80.0),
], ids=["mpnn", "bpnn"])
def test_a_small_network_overfits_a_tiny_dataset(make, forces_mae, energy_mae):
    data = AtomsDataset(tiny_emt_set())
    model = make()
    model.initialize(data)
    before = error_metrics(data.images, predict(model, data.images, compute_stress=False))
    Trainer(model, {"epochs": 300, "batch_size": 2, "lr": 0.005, "ema_decay": None, "patience": None,
                    "lr_patience": 30}, LossWeights(energy_sigma=0.002, force_sigma=0.05), progress=False).fit(
        data, initialize=False)
    after = error_metrics(data.images, predict(model, data.images, compute_stress=False))
    assert after["forces"]["mae"] < 0.2 * before["forces"]["mae"]
    assert after["forces"]["mae"] < forces_mae  # eV/Å; EMT's forces here are ~0.5 eV/Å
    assert after["energy"]["mae"] < energy_mae  # meV/atom
