"""Regularised least squares streamed through a QR factorisation.

Closed-form potentials (linear, quadratic, sparse GP) minimise

    || Λ^{-1/2} (A w - y) ||²  +  || U w ||²

over their weights ``w``, where the rows of ``A`` are energies, force components and
stress components (each scaled by the inverse of its expected error, GAP's sigmas) and
``U`` is the square root of the prior precision (``sqrt(alpha) I`` for ridge, the
transposed Cholesky factor of ``K_MM`` for a sparse GP). The rows arrive structure by
structure; :class:`StreamingLeastSquares` folds them into the triangular factor ``R`` of
the stacked system by repeated QR (a tall-skinny QR), so memory is ``O(P² + block)``
whatever the number of observations, and the solve never forms the normal equations
(their condition number is the square of ``A``'s). ``R`` is also the Cholesky factor of
the posterior precision, ``R^T R = A^T Λ^{-1} A + U^T U``: predictive variances follow by
triangular solves, with no explicit inverse.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg

from ..errors import Ml4msError


class IllConditionedError(Ml4msError, ValueError):
    """The least-squares system is singular even after the automatic regularisation."""


def triangular_factor(rows: np.ndarray, *, block_rows: int | None = None) -> np.ndarray:
    """Upper-triangular ``R`` (at most (n, n)) with ``R^T R = A^T A`` for ``A = rows`` (m, n).

    Folded block by block (a tall-skinny QR), so the temporaries stay ``O(n² + block)``
    whatever ``m``. Stacking the factors of several row sets and factorising again gives
    the factor of all rows together, with each set scaled by any constant: that is how a
    hyper-parameter search re-weights a fit without touching its rows again.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[1]
    block = int(block_rows or max(4 * n, 4096))
    r = np.zeros((0, n))
    for first in range(0, len(rows), block):
        stacked = np.vstack([r, rows[first:first + block]])
        r = scipy.linalg.qr(stacked, mode="r", overwrite_a=True, check_finite=False)[0][: min(len(stacked), n)]
    return np.triu(r)


class StreamingLeastSquares:
    """Accumulate weighted rows and solve the regularised least-squares problem.

    Parameters
    ----------
    prior_factor
        (P, P) upper-triangular (or any square) ``U`` with prior penalty ``|U w|²``;
        rows of zeros leave those weights unregularised.
    block_rows
        Rows buffered before each QR update (default ``max(4 P, 4096)``: larger blocks
        cost fewer flops per row, smaller ones less memory).

    Attributes
    ----------
    n_rows : int
        Observations added so far.
    regularisation_added : float
        Ridge added automatically by :meth:`solve` to an ill-conditioned system (0 if none).
    """

    def __init__(self, prior_factor: np.ndarray, *, block_rows: int | None = None) -> None:
        prior_factor = np.asarray(prior_factor, dtype=np.float64)
        if prior_factor.ndim != 2 or prior_factor.shape[0] != prior_factor.shape[1]:
            raise ValueError(f"prior_factor must be square, got shape {prior_factor.shape}")
        self.n_params = prior_factor.shape[0]
        self.block_rows = int(block_rows or max(4 * self.n_params, 4096))
        # augmented [A | y]: the last column of R holds Q^T y, its corner the residual norm
        self._r = np.zeros((0, self.n_params + 1))
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self.n_rows = 0
        self.regularisation_added = 0.0
        self.add(prior_factor, np.zeros(self.n_params), count=False)

    def add(self, rows: np.ndarray, targets: np.ndarray, *, count: bool | int = True) -> None:
        """Add weighted observation rows (n, P) and their weighted targets (n,).

        ``count``: True counts the rows as observations, False not (a prior); an integer
        is the number of observations they stand for (rows folded by
        :func:`triangular_factor`)."""
        rows = np.asarray(rows, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_params or targets.shape != (rows.shape[0],):
            raise ValueError(f"expected rows (n, {self.n_params}) and targets (n,), got "
                             f"{rows.shape} and {targets.shape}")
        if not (np.isfinite(rows).all() and np.isfinite(targets).all()):
            raise ValueError("the least-squares rows or targets contain NaN or inf")
        if not len(rows):
            return
        self._buffer.append(np.hstack([rows, targets[:, None]]))
        self._buffered += len(rows)
        if count is True:
            self.n_rows += len(rows)
        elif count is not False:
            self.n_rows += int(count)
        if self._buffered >= self.block_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        stacked = np.vstack([self._r, *self._buffer])
        self._buffer, self._buffered = [], 0
        r = scipy.linalg.qr(stacked, mode="r", overwrite_a=True, check_finite=False)[0]
        self._r = r[: min(r.shape[0], self.n_params + 1)]

    @property
    def residual(self) -> float:
        """Square root of the minimised objective (after :meth:`solve`)."""
        self._flush()
        return float(abs(self._r[self.n_params, self.n_params])) if len(self._r) > self.n_params else 0.0

    def solve(self, *, rcond: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
        """The minimiser and the posterior-precision factor.

        An ill-conditioned system (``min |R_kk| < rcond max |R_kk|``) is regularised
        automatically by a ridge of ``(sqrt(rcond) max |R_kk|)²`` on every weight (a
        condition number of ``1/sqrt(rcond)``; the well-determined directions barely
        move), with a warning that says so; :attr:`regularisation_added` records it.

        Returns
        -------
        weights : ndarray (P,)
        r : ndarray (P, P)
            Upper triangular, ``R^T R = A^T Λ^{-1} A + U^T U``.

        Raises
        ------
        IllConditionedError
            No observations, or a system that stays singular.
        """
        self._flush()
        p = self.n_params
        if self.n_rows == 0:
            raise IllConditionedError("no observations to fit")
        r = np.zeros((p + 1, p + 1))
        r[: len(self._r)] = self._r
        diagonal = np.abs(np.diag(r[:p, :p]))
        scale = diagonal.max() if p else 1.0
        if not np.isfinite(scale) or scale == 0:
            raise IllConditionedError("the least-squares system is empty (all rows are zero)")
        if diagonal.min() < rcond * scale:
            ridge = math.sqrt(rcond) * scale
            self.regularisation_added = float(ridge**2)
            warnings.warn(
                f"the fit is ill-conditioned (smallest/largest pivot {diagonal.min() / scale:.1e}); "
                f"added a ridge of {ridge**2:.3g} on every weight (in units of the weighted residual)",
                stacklevel=2,
            )
            extra = np.hstack([ridge * np.eye(p), np.zeros((p, 1))])
            r = scipy.linalg.qr(np.vstack([r, extra]), mode="r", check_finite=False)[0][: p + 1]
            diagonal = np.abs(np.diag(r[:p, :p]))
            if diagonal.min() < 1e-15 * scale:
                raise IllConditionedError("the least-squares system is singular")
        weights = scipy.linalg.solve_triangular(r[:p, :p], r[:p, p], check_finite=False)
        self._r = r
        return weights, np.ascontiguousarray(r[:p, :p])
