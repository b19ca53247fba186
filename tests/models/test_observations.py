"""Observation rows of closed-form fits: folding them per class changes no solution."""

from __future__ import annotations

import numpy as np
import pytest

from ml4ms.models.observations import Observations
from ml4ms.models.solve import StreamingLeastSquares


def _observations(seed=0, n_structures=12, p=9):
    rng = np.random.default_rng(seed)
    n_atoms = rng.integers(2, 7, size=n_structures)
    forces_structure = np.repeat(np.arange(n_structures), 3 * n_atoms)
    stress_structure = np.repeat(np.arange(n_structures), 6)
    return Observations(
        energy=rng.normal(size=(n_structures, p)) * n_atoms[:, None],
        energy_target=rng.normal(size=n_structures) * n_atoms,
        energy_structure=np.arange(n_structures), energy_extra_variance=np.zeros(n_structures),
        forces=rng.normal(size=(len(forces_structure), p)), forces_target=rng.normal(size=len(forces_structure)),
        forces_structure=forces_structure,
        stress=rng.normal(size=(len(stress_structure), p)), stress_target=rng.normal(size=len(stress_structure)),
        stress_structure=stress_structure, n_atoms=n_atoms,
    )


def _direct(obs, sigmas, prior):
    """The reference: every row divided by its own sigma (energies also by their atom count)."""
    e = 1 / (sigmas[obs.energy_structure, 0] * obs.n_atoms[obs.energy_structure])
    f = 1 / sigmas[obs.forces_structure, 1]
    s = 1 / sigmas[obs.stress_structure, 2]
    rows = np.vstack([obs.energy * e[:, None], obs.forces * f[:, None], obs.stress * s[:, None]])
    targets = np.concatenate([obs.energy_target * e, obs.forces_target * f, obs.stress_target * s])
    keep = np.concatenate([e, f, s]) > 0
    solver = StreamingLeastSquares(prior)
    solver.add(rows[keep], targets[keep])
    return solver.solve()


def _reduced(reduced, by_label, prior):
    solver = StreamingLeastSquares(prior)
    for rows, targets, count in reduced.weighted(by_label):
        solver.add(rows, targets, count=count)
    return solver.solve(), solver.n_rows


@pytest.mark.parametrize("stress", [0.3, np.inf])
def test_folded_rows_give_the_solution_and_posterior_of_all_rows_for_any_sigmas(stress):
    obs = _observations()
    labels = np.array(["bulk"] * 7 + ["surface"] * 5)
    per_label = {"bulk": np.array([0.01, 0.1, stress]), "surface": np.array([0.05, 0.2, stress])}
    sigmas = np.array([per_label[label] for label in labels])
    prior = 0.5 * np.eye(obs.energy.shape[1])
    weights, r = _direct(obs, sigmas, prior)
    (folded, folded_r), n_rows = _reduced(obs.reduce(labels), per_label, prior)
    np.testing.assert_allclose(folded, weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(folded_r.T @ folded_r, r.T @ r, rtol=1e-9, atol=1e-9)
    assert n_rows == len(obs.energy) + len(obs.forces) + (len(obs.stress) if np.isfinite(stress) else 0)


def test_merging_folded_sets_equals_folding_the_merged_rows():
    a, b = _observations(seed=1, n_structures=6), _observations(seed=2, n_structures=4)
    la, lb = np.array(["x"] * 6), np.array(["x", "y", "y", "x"])
    per_label = {"x": np.array([0.002, 0.05, 0.1]), "y": np.array([0.02, 0.1, np.inf])}
    prior = np.eye(a.energy.shape[1])
    (merged, _), _ = _reduced(a.reduce(la).merged(b.reduce(lb)), per_label, prior)
    together = Observations(**{
        key: np.concatenate([getattr(a, key), getattr(b, key) + (len(a.n_atoms) if key.endswith("_structure") else 0)])
        for key in ("energy", "energy_target", "energy_structure", "energy_extra_variance", "forces", "forces_target",
                    "forces_structure", "stress", "stress_target", "stress_structure", "n_atoms")})
    (together, _), _ = _reduced(together.reduce(np.concatenate([la, lb])), per_label, prior)
    np.testing.assert_allclose(merged, together, rtol=1e-9, atol=1e-12)


def test_labels_must_cover_every_structure():
    with pytest.raises(ValueError, match="one entry per structure"):
        _observations().reduce(["a", "b"])
