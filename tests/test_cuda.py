"""On a GPU, every model gives what it gives on the CPU, and training runs there.

Specifications (run where ``torch.cuda.is_available()``; skipped on CPU-only machines,
which is where CI runs): in double precision the potentials' energies, forces and
stresses on CUDA equal the CPU's to round-off (SOAP/ACSF descriptors, the sparse GP,
the atomic network, the message-passing network); the ASE calculator runs MD on CUDA
and conserves energy; the shared trainer fits a network on CUDA whose file, loaded on
the CPU, predicts what it predicted on the GPU; the property networks fit and predict
on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

from ml4ms.data.dataset import AtomsDataset
from ml4ms.models import AtomicNeuralNetwork, EquivariantMPNN, SparseGPPotential, predict
from ml4ms.serialization import load, save
from ml4ms.simulate.calculator import Calculator
from ml4ms.training import LossWeights, Trainer

from .models.conftest import SOAP_SMALL, alloy_cells, emt_cells

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ACSF = {"type": "acsf", "r_cut": 4.5, "n_radial": 6, "n_angular": 2, "zetas": [1, 4]}


def same_predictions(model, images, rtol=1e-9, atol=1e-9):
    cpu = predict(model, images, compute_stress=True, device="cpu")
    gpu = predict(model, images, compute_stress=True, device="cuda")
    np.testing.assert_allclose(gpu.energy, cpu.energy, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.concatenate(gpu.forces), np.concatenate(cpu.forces), rtol=rtol, atol=atol)
    np.testing.assert_allclose(gpu.stress, cpu.stress, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def alloys():
    return alloy_cells(6, seed=5)


def test_the_sparse_gp_predicts_on_cuda_what_it_predicts_on_the_cpu():
    train = emt_cells(8, seed=0)
    model = SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=30, delta=0.2).fit(train, force_sigma=0.02)
    same_predictions(model, emt_cells(3, seed=1))


@pytest.mark.parametrize("make", [
    lambda: EquivariantMPNN(["Cu", "Au"], cutoff=4.5, channels=16, n_layers=2, n_radial=6, readout_hidden=8, seed=2),
    lambda: AtomicNeuralNetwork(["Cu", "Au"], descriptor=ACSF, hidden=[16, 16], seed=2),
], ids=["mpnn", "bpnn"])
def test_the_networks_predict_on_cuda_what_they_predict_on_the_cpu(make, alloys):
    model = make()
    model.initialize(AtomsDataset(alloys))
    same_predictions(model, alloys)


def test_a_network_trained_on_cuda_loads_on_the_cpu_and_predicts_the_same(tmp_path):
    data = AtomsDataset(emt_cells(6, seed=3))
    model = EquivariantMPNN(["Cu"], cutoff=4.5, channels=16, n_layers=2, n_radial=6, readout_hidden=8, seed=0)
    model.initialize(data)
    before = predict(model, data.images, compute_stress=False, device="cpu")
    result = Trainer(model, {"epochs": 20, "batch_size": 2, "lr": 0.005, "device": "cuda", "dtype": "float64",
                             "ema_decay": None, "patience": None},
                     LossWeights(energy_sigma=0.002, force_sigma=0.05), progress=False).fit(data, initialize=False)
    assert result.steps > 0
    trained = model
    assert next(trained.parameters()).device.type == "cuda"
    on_gpu = predict(trained, data.images, compute_stress=False)
    save(trained, tmp_path / "mpnn.ml4ms")
    on_cpu = predict(load(tmp_path / "mpnn.ml4ms"), data.images, compute_stress=False, device="cpu")
    np.testing.assert_allclose(on_cpu.energy, on_gpu.energy, rtol=1e-9, atol=1e-9)
    reference = np.concatenate([a.arrays["forces"] for a in data.images])

    def force_error(p):
        return np.abs(np.concatenate(p.forces) - reference).mean()

    assert force_error(on_gpu) < 0.7 * force_error(before)


def test_md_on_cuda_conserves_energy():
    train = emt_cells(8, seed=0)
    model = SparseGPPotential(["Cu"], SOAP_SMALL, n_sparse=30, delta=0.2).fit(train, force_sigma=0.02)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    atoms.calc = Calculator(model, device="cuda")
    energies = []
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
    dyn.run(200)
    assert np.ptp(energies) < 2e-3 * len(atoms)  # eV; drift and jitter well below 1 meV/atom/ps


def test_the_property_networks_fit_and_predict_on_cuda():
    from ml4ms.properties.composition_net import CompositionAttentionNet
    from ml4ms.properties.crystal_graph import CrystalGraphNet

    rng = np.random.default_rng(0)
    cells = []
    for k in range(40):
        atoms = bulk("NaCl", "rocksalt", a=5.4 + 0.4 * rng.random())
        cells.append(atoms)
    y = np.array([atoms.cell.volume for atoms in cells]) / 10
    graph = CrystalGraphNet(cutoff=4.0, channels=16, n_layers=2, n_gaussians=12, readout_hidden=16, epochs=30,
                            batch_size=8, device="cuda", n_models=2).fit(cells, y)
    mean, sigma = graph.predict(cells, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(sigma > 0)
    assert np.abs(mean - y).mean() < np.abs(y - y.mean()).mean()

    formulas = [f"Na{k}Cl{m}" for k in range(1, 6) for m in range(1, 6)]
    target = np.array([k / (k + m) for k in range(1, 6) for m in range(1, 6)])
    comp = CompositionAttentionNet(d_model=16, n_heads=2, n_layers=1, readout_hidden=16, epochs=40, batch_size=8,
                                   device="cuda").fit(formulas, target)
    assert np.all(np.isfinite(comp.predict(formulas)))
