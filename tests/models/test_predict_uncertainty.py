"""``predict(..., uncertainty=...)``: the standard deviations of a model that predicts them.

Oracle: a toy Lennard-Jones whose uncertainty is analytic -- 0.01 eV times the number of
atoms for a structure's energy, 0.001 eV times the atomic number for an atom's energy --
so every expected value follows from the structures alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from ml4ms.data.graph import AtomicGraph
from ml4ms.models import LennardJones, predict

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "rc": 3.0 * 3.405, "smooth": True}


class PredictTestUncertainLJ(LennardJones):
    """Lennard-Jones with an analytic uncertainty; records whether autograd was on."""

    supports_uncertainty = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grad_enabled: list[bool] = []

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        self.grad_enabled.append(torch.is_grad_enabled())
        dtype = graph.positions.dtype
        n_atoms = torch.bincount(graph.batch, minlength=graph.n_structures).to(dtype)
        return {"energy": 0.01 * n_atoms, "energies": 0.001 * graph.numbers.to(dtype)}


class PredictTestBadShapeLJ(LennardJones):
    """Claims uncertainties but returns one value too many."""

    supports_uncertainty = True

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        n = graph.n_structures
        return {"energy": torch.zeros(n + 1), "energies": torch.zeros(len(graph.numbers))}


def mixed_structures() -> list[Atoms]:
    """Periodic crystals and molecules of Ne, Ar and Kr, interleaved."""
    rng = np.random.default_rng(3)
    crystal = bulk("Ar", "fcc", a=5.26, cubic=True) * 2
    slab = crystal.copy()
    slab.pbc = [True, True, False]
    cluster = crystal[:7]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    images = [crystal, cluster, bulk("Ar", "fcc", a=5.26), Atoms("Kr", positions=[[0, 0, 1.0]]), slab,
              cluster[:3], crystal[:5]]
    images = [a.copy() for a in images]
    for atoms in images:
        atoms.numbers = rng.choice([10, 18, 36], size=len(atoms))
        atoms.rattle(0.05, seed=int(rng.integers(1000)))
    return images


def test_standard_deviations_are_split_by_structure_in_any_batching():
    model = PredictTestUncertainLJ(**ARGON)
    images = mixed_structures()
    # Small batches mix periodic structures and molecules (evaluated apart) and split the list.
    for max_atoms in (8, 40, 4096):
        predicted = predict(model, images, max_atoms_per_batch=max_atoms, uncertainty=True)
        np.testing.assert_allclose(predicted.energy_std, [0.01 * len(a) for a in images], rtol=1e-14)
        assert predicted.energy_std.shape == (len(images),) and predicted.energy_std.dtype == np.float64
        assert len(predicted.energies_std) == len(images)
        for atoms, std in zip(images, predicted.energies_std):
            np.testing.assert_allclose(std, 0.001 * atoms.numbers, rtol=1e-14)


def test_uncertainty_changes_no_other_prediction_and_runs_without_autograd():
    model = PredictTestUncertainLJ(**ARGON)
    images = mixed_structures()
    plain = predict(model, images, max_atoms_per_batch=40, uncertainty=False)
    assert model.grad_enabled == []
    with_std = predict(model, images, max_atoms_per_batch=40, uncertainty=True)
    assert model.grad_enabled and not any(model.grad_enabled)
    np.testing.assert_array_equal(with_std.energy, plain.energy)
    np.testing.assert_array_equal(with_std.stress, plain.stress)
    for a, b in zip(with_std.forces, plain.forces):
        np.testing.assert_array_equal(a, b)
    assert plain.energy_std is None and plain.energies_std is None


def test_by_default_uncertainties_come_when_the_model_supports_them():
    images = mixed_structures()[:3]
    assert predict(PredictTestUncertainLJ(**ARGON), images).energy_std is not None
    plain = predict(LennardJones(**ARGON), images)
    assert plain.energy_std is None and plain.energies_std is None


def test_asking_a_model_without_uncertainties_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="LennardJones does not predict uncertainties"):
        predict(LennardJones(**ARGON), mixed_structures()[:2], uncertainty=True)


def test_a_model_returning_wrong_shapes_is_named():
    with pytest.raises(ValueError, match=r"PredictTestBadShapeLJ.uncertainty returned shapes"):
        predict(PredictTestBadShapeLJ(**ARGON), mixed_structures()[:2])


def test_the_training_mode_is_restored():
    model = PredictTestUncertainLJ(**ARGON)
    model.train()
    predict(model, mixed_structures()[:2], uncertainty=True)
    assert model.training
