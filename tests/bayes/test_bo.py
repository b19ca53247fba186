"""Bayesian optimisation: known minima of standard test functions, periodic dimensions, batches, errors."""

from __future__ import annotations

import numpy as np
import pytest

from ml4ms.bayes.bo import BOResult, TorsionObjective, minimize, torsion_mask
from ml4ms.bayes.gp_surrogate import GaussianProcess
from ml4ms.errors import ConfigError


def boss_tutorial(x):
    """The 1-D function of the BOSS tutorial, on [0, 7]."""
    return np.sin(x[0]) + 1.5 * np.exp(-(x[0] - 4.3) ** 2)


def branin(x):
    b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * np.cos(x[0]) + 10


BRANIN_MIN = 0.397887  # at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)
BRANIN_ARGMIN = np.array([[-np.pi, 12.275], [np.pi, 2.275], [9.42478, 2.475]])


def test_boss_tutorial_function_minimum():
    # Reference: the minimum of sin(x) + 1.5 exp(-(x - 4.3)^2) on [0, 7] is at x = 5.5716, f = -0.35529.
    res = minimize(boss_tutorial, [(0.0, 7.0)], n_iter=12, n_initial=5, seed=0)
    assert isinstance(res, BOResult)
    assert res.n_evaluations == 17 and len(res.y) == 17 and res.n_failed == 0
    assert res.x_best[0] == pytest.approx(5.5716, abs=0.05)
    assert res.f_best == pytest.approx(-0.35529, abs=2e-3)
    # the surrogate's predicted global minimum, as BOSS reports it, with a small uncertainty
    assert res.x_min_predicted[0] == pytest.approx(5.5716, abs=0.03)
    assert res.f_min_predicted == pytest.approx(-0.35529, abs=2e-3)
    assert 0 <= res.f_min_std < 0.01
    assert np.all(np.diff(res.best_history) <= 0)
    mean, std = res.surrogate.predict(np.array([[1.0], [4.3]]), return_std=True)
    assert mean == pytest.approx([boss_tutorial([1.0]), boss_tutorial([4.3])], abs=0.05)
    assert std.shape == (2,) and (std >= 0).all()


def test_branin_finds_a_global_minimum():
    res = minimize(branin, [(-5.0, 10.0), (0.0, 15.0)], n_iter=40, seed=3)
    assert res.f_best < BRANIN_MIN + 0.05
    assert np.linalg.norm(BRANIN_ARGMIN - res.x_best, axis=1).min() < 0.3


def test_lcb_acquisition_also_converges():
    res = minimize(boss_tutorial, [(0.0, 7.0)], n_iter=15, acquisition="lcb", seed=1)
    assert res.x_best[0] == pytest.approx(5.5716, abs=0.1)


def angle_objective(x):
    """Minimum at 355 degrees, next to the boundary of [0, 360); a second, higher one at 175."""
    t = np.radians(x[0] - 355.0)
    return -np.cos(t) - 0.4 * np.cos(2 * t)


def test_periodic_dimension_wraps_around():
    res = minimize(angle_objective, [(0.0, 360.0)], n_iter=10, n_initial=4, periodic=[360.0], seed=2)
    gap = abs((res.x_best[0] - 355.0 + 180.0) % 360.0 - 180.0)
    assert gap < 3.0
    # the surrogate knows that 0 and 360 degrees are one point, and that 10 and 370 are
    m = res.surrogate.predict(np.array([[0.0], [360.0], [10.0], [370.0]]))
    assert m[0] == pytest.approx(m[1], abs=1e-9) and m[2] == pytest.approx(m[3], abs=1e-9)
    # and predicts the objective near the boundary from points on the other side
    assert m[0] == pytest.approx(angle_objective([0.0]), abs=0.05)


def test_periodic_mapping_and_true_forms_agree():
    a = minimize(angle_objective, [(0.0, 360.0)], n_iter=2, periodic={0: 360.0}, seed=5)
    b = minimize(angle_objective, [(0.0, 360.0)], n_iter=2, periodic=[True], seed=5)
    np.testing.assert_array_equal(a.X, b.X)


def test_batch_proposals_are_distinct():
    res = minimize(branin, [(-5.0, 10.0), (0.0, 15.0)], n_iter=3, n_initial=4, batch_size=4, seed=0)
    assert res.n_evaluations == 4 + 3 * 4
    for r in res.rounds:
        batch = np.array(r["proposed"])
        assert batch.shape == (4, 2)
        gaps = np.linalg.norm(batch[:, None] - batch[None], axis=-1)[np.triu_indices(4, 1)]
        assert gaps.min() > 1e-3
    # and distinct from every point evaluated before
    X = res.X
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)[np.triu_indices(len(X), 1)]
    assert d.min() > 1e-3


def test_determinism_under_a_seed():
    a = minimize(branin, [(-5.0, 10.0), (0.0, 15.0)], n_iter=4, seed=11)
    b = minimize(branin, [(-5.0, 10.0), (0.0, 15.0)], n_iter=4, seed=11)
    c = minimize(branin, [(-5.0, 10.0), (0.0, 15.0)], n_iter=4, seed=12)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_a_callback_that_only_watches_does_not_change_the_search():
    bounds = [(-5.0, 10.0), (0.0, 15.0)]
    seen = []
    plain = minimize(branin, bounds, n_iter=6, seed=3)
    watched = minimize(branin, bounds, n_iter=6, seed=3, callback=lambda r: seen.append(r.f_best))
    np.testing.assert_array_equal(watched.X, plain.X)
    assert len(seen) == 6


def test_failures_are_recorded_and_skipped():
    def flaky(x):
        if x[0] > 5.5 and x[0] < 5.52:
            raise RuntimeError("SCF did not converge")
        if x[0] < 1.0:
            return float("nan")
        return boss_tutorial(x)

    with pytest.warns(UserWarning, match="failed"):
        res = minimize(flaky, [(0.0, 7.0)], n_iter=10, n_initial=6, seed=0)
    assert res.n_failed == len(res.failures) >= 1
    assert res.n_evaluations == len(res.y) + res.n_failed == 16
    assert np.isfinite(res.y).all()
    assert all(isinstance(msg, str) for _, msg in res.failures)
    assert any("non-finite" in msg for _, msg in res.failures)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"bounds": [(1.0, 1.0)]}, "low must be < high"),
    ({"bounds": [(2.0, 1.0)]}, "low must be < high"),
    ({"bounds": [(0.0, np.nan)]}, "finite"),
    ({"bounds": [[0.0, 1.0, 2.0]]}, "shape"),
    ({"n_iter": 0}, "n_iter"),
    ({"n_iter": 2.5}, "n_iter"),
    ({"acquisition": "pi"}, "acquisition"),
    ({"batch_size": 0}, "batch_size"),
    ({"periodic": [-1.0]}, "period"),
    ({"periodic": {3: 1.0}}, "dimension"),
    ({"kernel": "cubic"}, "kernel"),
])
def test_bad_input(kwargs, match):
    args = {"f": boss_tutorial, "bounds": [(0.0, 7.0)], "n_iter": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        minimize(**args)


def test_objective_failing_everywhere():
    from ml4ms.bayes.bo import ObjectiveError

    def broken(x):
        raise ValueError("no")

    with pytest.raises(ObjectiveError, match="failed at all"):
        minimize(broken, [(0.0, 1.0)], n_iter=1, n_initial=2, seed=0)


def test_gp_matches_the_closed_form_posterior():
    # Independent reference: the textbook GP posterior with the same kernel, by numpy.linalg.
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 2, (12, 2))
    y = np.sin(3 * X[:, 0]) * np.cos(2 * X[:, 1])
    gp = GaussianProcess(bounds=[(0, 2), (0, 2)], kernel="rbf", random_state=0).fit(X, y)
    Xs = rng.uniform(0, 2, (5, 2))

    def k(A, B):
        d = ((A[:, None] - B[None]) / 2.0) / gp.length_scales_
        return gp.signal_variance_ * np.exp(-0.5 * (d**2).sum(-1))

    z = (y - y.mean()) / y.std()
    K = k(X, X) + gp.noise_variance_ * np.eye(len(X))
    mean = k(Xs, X) @ np.linalg.solve(K, z) * y.std() + y.mean()
    var = gp.signal_variance_ - np.einsum("ij,ji->i", k(Xs, X), np.linalg.solve(K, k(X, Xs)))
    m, s = gp.predict(Xs, return_std=True)
    np.testing.assert_allclose(m, mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(s, np.sqrt(var) * y.std(), rtol=1e-5, atol=1e-8)


def test_torsion_objective_butane():
    from ase.build import molecule
    from ase.calculators.emt import EMT

    butane = molecule("trans-butane")
    mask = torsion_mask(butane, (0, 1, 2, 3))
    # turning about the C1-C2 bond moves the half holding C2: C2, C3 and their five hydrogens
    assert mask[2] and mask[3] and not mask[0] and not mask[1] and mask.sum() == 7
    objective = TorsionObjective(butane, [(0, 1, 2, 3)], EMT())
    assert objective.initial_angles[0] == pytest.approx(180.0, abs=1e-6)
    assert objective([180.0]) == pytest.approx(0.0, abs=1e-9)
    gauche = objective.structure([60.0])
    assert gauche.get_dihedral(0, 1, 2, 3) == pytest.approx(60.0, abs=1e-6)
    # bond lengths are unchanged by the rigid rotation
    np.testing.assert_allclose(gauche.get_all_distances()[np.ix_([0, 1, 2], [1, 2, 3])].diagonal(),
                               butane.get_all_distances()[np.ix_([0, 1, 2], [1, 2, 3])].diagonal(), atol=1e-9)
    with pytest.raises(ConfigError, match="not bonded"):
        torsion_mask(butane, (0, 1, 3, 2))
    with pytest.raises(ConfigError, match="ring"):
        torsion_mask(molecule("cyclobutane"), (0, 1, 2, 3))
