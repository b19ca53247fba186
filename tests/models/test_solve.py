"""Streaming regularised least squares by QR."""

from __future__ import annotations

import numpy as np
import pytest

from ml4ms.models.solve import IllConditionedError, StreamingLeastSquares, triangular_factor


def _problem(n=300, p=12, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, p)) * np.logspace(0, 3, p)
    y = rng.normal(size=n)
    u = np.triu(rng.normal(size=(p, p))) + 3 * np.eye(p)
    return a, y, u


@pytest.mark.parametrize("block", [5, 64, 10_000])
def test_solution_equals_the_augmented_least_squares_solution_for_any_block_size(block):
    a, y, u = _problem()
    solver = StreamingLeastSquares(u, block_rows=block)
    for start in range(0, len(a), 37):
        solver.add(a[start:start + 37], y[start:start + 37])
    weights, r = solver.solve()
    expected, *_ = np.linalg.lstsq(np.vstack([a, u]), np.concatenate([y, np.zeros(len(u))]), rcond=None)
    np.testing.assert_allclose(weights, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.T @ r, a.T @ a + u.T @ u, rtol=1e-10, atol=1e-8)
    assert np.allclose(r, np.triu(r))
    assert solver.n_rows == len(a)
    residual = np.linalg.norm(np.concatenate([a @ expected - y, u @ expected]))
    assert solver.residual == pytest.approx(residual, rel=1e-10)


def test_an_ill_conditioned_system_is_regularised_and_reported():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 3))
    a = np.hstack([a, a[:, :1]])  # a duplicated column: singular without a prior
    solver = StreamingLeastSquares(np.zeros((4, 4)))
    solver.add(a, rng.normal(size=50))
    with pytest.warns(UserWarning, match="ill-conditioned"):
        weights, _ = solver.solve()
    assert solver.regularisation_added > 0
    assert np.isfinite(weights).all()
    assert weights[0] == pytest.approx(weights[3], rel=1e-3)  # the minimum-norm split


def test_no_rows_and_non_finite_rows_are_clear_errors():
    solver = StreamingLeastSquares(np.eye(2))
    with pytest.raises(IllConditionedError, match="no observations"):
        solver.solve()
    with pytest.raises(ValueError, match="NaN"):
        solver.add(np.array([[1.0, np.nan]]), np.array([0.0]))
    with pytest.raises(ValueError, match="rows"):
        solver.add(np.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize("block", [5, 64, 10_000])
def test_triangular_factor_has_the_gram_matrix_of_its_rows(block):
    a, _, _ = _problem()
    r = triangular_factor(a, block_rows=block)
    assert r.shape == (a.shape[1], a.shape[1])
    assert np.allclose(r, np.triu(r))
    np.testing.assert_allclose(r.T @ r, a.T @ a, rtol=1e-10, atol=1e-8)
    few = triangular_factor(a[:4])  # fewer rows than columns: R is (4, p)
    np.testing.assert_allclose(few.T @ few, a[:4].T @ a[:4], rtol=1e-10, atol=1e-10)
