"""The linear two-body potential: its design matrix, its closed-form fit, its physics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.lj import LennardJones as AseLennardJones

from ml4ms.data import AtomicGraph
from ml4ms.data.dataset import AtomsDataset
from ml4ms.models import LinearPairPotential, predict


def _mixed_structures(seed=0):
    rng = np.random.default_rng(seed)
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    cu.numbers[rng.choice(len(cu), 8, replace=False)] = 79
    cu.rattle(0.1, seed=seed)
    tri = Atoms("CuAu", scaled_positions=[[0, 0, 0], [0.45, 0.52, 0.48]],
                cell=[[2.6, 0.1, 0.0], [0.3, 2.7, 0.2], [0.1, -0.2, 2.9]], pbc=True)
    cluster = Atoms("Cu3Au", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.6, 0], [1.2, 1.3, 2.0]])
    return [cu, tri, cluster]


def test_design_matrix_is_the_derivative_of_energy_forces_and_stress_with_respect_to_the_weights():
    model = LinearPairPotential(species=[29, 79], cutoff=4.5, n_basis=6)
    with torch.no_grad():
        model.weights.normal_()
    images = _mixed_structures()
    graph = AtomicGraph.from_atoms(images[:2], cutoff=4.5)  # stress needs a cell
    out = model(graph, compute_stress=True)
    d = model.design(graph)
    w = model.weights.detach().reshape(-1)
    torch.testing.assert_close(d["energy"] @ w, out["energy"].detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(d["forces"] @ w, out["forces"].detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(d["stress"] @ w, out["stress"].detach(), rtol=0, atol=1e-12)


def test_fit_recovers_weights_and_reference_energies_of_a_potential_in_its_span():
    truth = LinearPairPotential(species=[29, 79], cutoff=4.5, n_basis=6)
    with torch.no_grad():
        truth.weights.copy_(0.05 * torch.randn_like(truth.weights))
    truth.set_reference_energies({"Cu": -3.1, "Au": -2.4})
    images = []
    for seed in range(6):
        images.extend(_mixed_structures(seed)[:2])
    labels = predict(truth, images)
    for atoms, e, f, s in zip(images, labels.energy, labels.forces, labels.stress):
        atoms.info.update(energy=e, stress=s)
        atoms.arrays["forces"] = f
    model = LinearPairPotential(species=[29, 79], cutoff=4.5, n_basis=6).fit(images, alpha=1e-12)
    refit = predict(model, images)
    np.testing.assert_allclose(refit.energy, labels.energy, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(refit.forces), np.concatenate(labels.forces), atol=1e-6)
    assert model.get_reference_energies() == pytest.approx({"Cu": -3.1, "Au": -2.4}, abs=1e-5)


def test_fit_to_lennard_jones_reproduces_ase_forces_on_unseen_structures():
    def labelled(seed):
        atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)
        atoms.rattle(0.15, seed=seed)
        atoms.set_cell(atoms.cell * (1 + 0.02 * np.random.default_rng(seed).normal()), scale_atoms=True)
        atoms.calc = AseLennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["stress"] = atoms.get_stress()
        atoms.calc = None
        return atoms

    train = AtomsDataset([labelled(s) for s in range(20)])
    test = [labelled(s) for s in range(100, 105)]
    model = LinearPairPotential(species=[18], cutoff=8.0, n_basis=24, r_min=2.0)
    model.fit(train, energy_sigma=1e-4, force_sigma=1e-3, stress_sigma=1e-5)
    p = predict(model, test)
    f_ref = np.concatenate([a.arrays["forces"] for a in test])
    error = np.abs(np.concatenate(p.forces) - f_ref).mean()
    assert error < 0.005 * np.abs(f_ref).mean()
    e_ref = np.array([a.info["energy"] for a in test]) / 32
    assert np.abs(p.energy / 32 - e_ref).max() < 2e-5  # eV/atom, on energies of about -0.08
    s_ref = np.array([a.info["stress"] for a in test])
    assert np.abs(p.stress - s_ref).max() < 0.01 * np.abs(s_ref).max()


def test_a_model_element_missing_from_the_training_data_is_rejected():
    copper = bulk("Cu", "fcc", a=3.6)
    copper.info["energy"] = -3.5
    with pytest.raises(ValueError, match=r"elements \[79\] do not occur"):
        LinearPairPotential(species=[29, 79], cutoff=4.0).fit([copper])


def test_unknown_element_in_training_data_is_rejected():
    model = LinearPairPotential(species=[29], cutoff=4.0)
    water = molecule("H2O")
    water.info["energy"] = -1.0
    with pytest.raises(ValueError, match="elements"):
        model.fit([water])


def test_passes_the_public_conformance_checks():
    from ml4ms import testing

    model = LinearPairPotential(species=[29, 79], cutoff=4.5, n_basis=8, r_min=1.8)
    with torch.no_grad():
        model.weights.copy_(0.05 * torch.randn_like(model.weights))
    model.set_reference_energies({"Cu": -3.0, "Au": -2.0})
    ran = testing.run_model_checks(model, _mixed_structures())
    assert {"forces", "stress", "invariance", "batch", "cross_gradient", "smooth_at_cutoff"} <= set(ran)
    testing.assert_smooth_at_cutoff(model, element="Cu")
