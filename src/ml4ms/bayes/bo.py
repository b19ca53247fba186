"""Bayesian optimisation of expensive functions on a box, with periodic (angle) dimensions.

:func:`minimize` follows the loop of BOSS (Bayesian Optimization Structure Search,
Todorović et al., npj Comput. Mater. 5, 35 (2019)): a space-filling initial design, then
rounds of (fit a Gaussian-process surrogate, pick the point(s) maximising an acquisition
function, evaluate them). It reports the best evaluated point and, as BOSS does, the
global minimum of the surrogate's mean with its uncertainty, whose convergence tells
when the search has learnt the landscape.

:class:`TorsionObjective` turns a molecule and a list of torsions into such a function:
the energy of the structure, from any ASE calculator, as a function of the dihedral
angles — the conformer search of BOSS.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize as _scipy_minimize
from scipy.stats import norm, qmc
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, Ml4msError
from .gp_surrogate import KERNELS, GaussianProcess, periods_from

ACQUISITIONS = ("ei", "lcb")
DESIGNS = ("sobol", "lhs", "random")


class ObjectiveError(Ml4msError, RuntimeError):
    """The objective function failed (raised or returned a non-finite value) at every point tried."""


@dataclass
class BOResult:
    """Outcome of :func:`minimize`.

    Attributes
    ----------
    x_best : ndarray (d,)
        The evaluated point with the lowest value.
    f_best : float
        Its value.
    X : ndarray (n, d)
        Every successfully evaluated point, in evaluation order.
    y : ndarray (n,)
        Their values.
    surrogate : GaussianProcess
        The surrogate fitted to (X, y); ``surrogate.predict(x, return_std=True)``.
    n_evaluations : int
        Calls of the objective, failed ones included.
    n_failed : int
        Calls that raised or returned a non-finite value; see ``failures``.
    failures : list of (ndarray, str)
        The points of failed calls and what went wrong.
    x_min_predicted : ndarray (d,)
        Global minimum of the surrogate's mean (BOSS's "predicted global minimum").
    f_min_predicted, f_min_std : float
        The mean and standard deviation of the surrogate there.
    best_history : ndarray (n,)
        The lowest value found after each successful evaluation (a convergence curve).
    rounds : list of dict
        Per acquisition round: evaluations so far, the proposed points, the surrogate's
        predicted minimum (x, mean, std) and fitted hyper-parameters.
    periods : ndarray (d,)
        Period of each dimension (NaN for non-periodic ones).
    wall_time : float
        Seconds spent in :func:`minimize`, objective included.
    """

    x_best: np.ndarray
    f_best: float
    X: np.ndarray
    y: np.ndarray
    surrogate: GaussianProcess
    n_evaluations: int
    n_failed: int
    failures: list = field(default_factory=list)
    x_min_predicted: np.ndarray | None = None
    f_min_predicted: float = math.nan
    f_min_std: float = math.nan
    best_history: np.ndarray | None = None
    rounds: list = field(default_factory=list)
    bounds: np.ndarray | None = None
    periods: np.ndarray | None = None
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and floats) for JSON."""
        gp = self.surrogate
        return {
            "x_best": self.x_best.tolist(), "f_best": float(self.f_best),
            "x_min_predicted": None if self.x_min_predicted is None else self.x_min_predicted.tolist(),
            "f_min_predicted": float(self.f_min_predicted), "f_min_std": float(self.f_min_std),
            "n_evaluations": self.n_evaluations, "n_failed": self.n_failed,
            "failures": [{"x": np.asarray(x).tolist(), "error": str(e)} for x, e in self.failures],
            "X": self.X.tolist(), "y": self.y.tolist(), "best_history": self.best_history.tolist(),
            "bounds": self.bounds.tolist(),
            "periods": [None if not np.isfinite(p) else float(p) for p in self.periods],
            "surrogate": {"kernel": gp.kernel, "length_scales": (gp.length_scales_ * gp.width_).tolist(),
                          "signal_std": float(np.sqrt(gp.signal_variance_) * gp.y_std_),
                          "noise_std": float(np.sqrt(gp.noise_variance_) * gp.y_std_)},
            "rounds": self.rounds, "wall_time_s": self.wall_time,
        }


# ---------------------------------------------------------------------- validation
def check_bounds(bounds) -> np.ndarray:
    """Bounds as a float array (d, 2), or a ConfigError naming what is wrong."""
    try:
        b = np.asarray(bounds, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"bounds must be a sequence of (low, high) pairs, got {bounds!r}") from None
    if b.ndim == 1 and b.shape == (2,):
        b = b[None, :]
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] < 1:
        raise ConfigError(f"bounds must have shape (d, 2) with one (low, high) pair per dimension, got {b.shape}")
    for i, (low, high) in enumerate(b):
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ConfigError(f"bounds of dimension {i} must be finite, got ({low}, {high})")
        if not low < high:
            raise ConfigError(f"bounds of dimension {i}: low must be < high, got ({low}, {high})")
    return b


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------- acquisitions
def _acquisition(gp: GaussianProcess, U: np.ndarray, kind: str, best: float, kappa: float, xi: float,
                 grad: bool = False):
    """Acquisition to *minimise* (negative EI, or LCB) at scaled inputs U (m, d), standardised units."""
    mean, std, dmean, dstd = gp._predict_scaled(U, grad=grad)
    if kind == "lcb":
        value = mean - kappa * std
        return (value, dmean - kappa * dstd) if grad else value
    gain = best - mean - xi
    t = gain / std
    cdf, pdf = norm.cdf(t), norm.pdf(t)
    ei = gain * cdf + std * pdf
    if not grad:
        return -ei
    return -ei, -(-cdf[:, None] * dmean + pdf[:, None] * dstd)


def _minimize_on_box(func: Callable, starts: np.ndarray, d: int) -> tuple[np.ndarray, float, list]:
    """Multi-start L-BFGS-B of func(u) -> (value, grad) on the unit box; best point, value, all optima."""
    optima = []
    for start in starts:
        def fun(u):
            value, g = func(u[None, :])
            return float(value[0]), g[0]

        res = _scipy_minimize(fun, start, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * d)
        optima.append((np.clip(res.x, 0.0, 1.0), float(res.fun)))
    optima.sort(key=lambda item: item[1])
    return optima[0][0], optima[0][1], optima


def _scaled_distance(gp: GaussianProcess, a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Distance between scaled point a and rows of B, periodic dimensions wrapped."""
    diff = np.abs(B - a)
    p = gp.scaled_periods_
    wrapped = np.where(gp.periodic_mask_, np.minimum(diff % p, p - diff % p), diff)
    return np.sqrt((wrapped**2).sum(axis=1))


def _propose(gp, kind, best, kappa, xi, taboo: np.ndarray, rng, n_candidates, n_starts, d):
    """One point (scaled) maximising the acquisition, away from the points in ``taboo``."""
    candidates = rng.random((n_candidates, d))
    scores = _acquisition(gp, candidates, kind, best, kappa, xi)
    order = np.argsort(scores)[:n_starts]
    observed = gp.U_[np.argsort(gp.z_)[:2]]
    starts = np.vstack([candidates[order], observed])
    _, _, optima = _minimize_on_box(lambda u: _acquisition(gp, u, kind, best, kappa, xi, grad=True), starts, d)
    for u, _ in optima:
        if len(taboo) == 0 or _scaled_distance(gp, u, taboo).min() > 1e-3:
            return u
    # Every optimum sits on a point already evaluated or proposed: explore the most uncertain candidate.
    _, std, _, _ = gp._predict_scaled(candidates)
    return candidates[np.argmax(std)]


def predicted_minimum(gp: GaussianProcess, rng: np.random.Generator, n_candidates: int = 1000,
                      n_starts: int = 5) -> tuple[np.ndarray, float, float]:
    """Global minimum of the surrogate's mean: (x, mean, std) in input units."""
    d = gp.U_.shape[1]
    candidates = rng.random((n_candidates, d))
    mean = gp._predict_scaled(candidates)[0]
    starts = np.vstack([candidates[np.argsort(mean)[:n_starts]], gp.U_[np.argsort(gp.z_)[:n_starts]]])

    def func(u):
        m, _, dm, _ = gp._predict_scaled(u, grad=True)
        return m, dm

    u, _, _ = _minimize_on_box(func, starts, d)
    x = gp.bounds_[:, 0] + u * gp.width_
    m, s = gp.predict(x[None, :], return_std=True)
    return x, float(m[0]), float(s[0])


def initial_design(n: int, bounds: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` space-filling points (Sobol, Latin hypercube or uniform) in the box, from ``rng``."""
    d = len(bounds)
    if kind == "sobol":
        with warnings.catch_warnings():  # a non-power-of-two size loses balance, which is harmless here
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d, scramble=True, seed=rng).random(n)
    elif kind == "lhs":
        unit = qmc.LatinHypercube(d, seed=rng).random(n)
    elif kind == "random":
        unit = rng.random((n, d))
    else:
        raise ConfigError(f"initial_design must be one of {', '.join(DESIGNS)}, got {kind!r}")
    return bounds[:, 0] + unit * (bounds[:, 1] - bounds[:, 0])


# ---------------------------------------------------------------------- the loop
def minimize(
    f: Callable[[np.ndarray], float],
    bounds,
    n_iter: int,
    *,
    n_initial: int | None = None,
    acquisition: str = "ei",
    periodic=None,
    batch_size: int = 1,
    kernel: str = "matern52",
    noise: float | None = None,
    kappa: float = 2.0,
    xi: float = 0.01,
    initial_design_kind: str = "sobol",
    n_restarts: int = 2,
    y_cap: float | None = None,
    seed: int | np.random.Generator | None = None,
    callback: Callable[[BOResult], bool | None] | None = None,
    progress: bool | None = None,
) -> BOResult:
    """Minimise ``f`` on a box by Bayesian optimisation.

    Parameters
    ----------
    f
        The objective: ``f(x) -> float`` for one point ``x`` of shape (d,). A call that
        raises an ``Exception`` or returns NaN/inf is recorded in ``failures``, counted,
        and left out of the surrogate; the search goes on.
    bounds
        Array-like (d, 2) of (low, high) per dimension, in the objective's units.
    n_iter
        Acquisition rounds after the initial design; each evaluates ``batch_size``
        points, so there are ``n_initial + n_iter * batch_size`` evaluations in all.
    n_initial
        Points of the initial design (default ``max(3, 2 d)``).
    acquisition
        ``"ei"`` (expected improvement, default) or ``"lcb"`` (lower confidence bound
        ``mean - kappa * std``).
    periodic
        Periodic dimensions (angles) and their periods, in the objective's units: a
        sequence with one entry per dimension (False/None, True for "period = width of
        the bounds", or the period), or a mapping ``{dimension: period}``. The surrogate
        then knows that ``low`` and ``low + period`` are the same point.
    batch_size
        Points proposed per round, by the kriging believer (each proposal is added to
        the surrogate with its predicted value before the next is chosen), so that a
        batch can be evaluated in parallel.
    kernel
        ``"matern52"`` (default), ``"matern32"`` or ``"rbf"``.
    noise
        Fixed noise variance in units of the target variance; None fits it.
    kappa
        Exploration weight of LCB.
    xi
        Improvement margin of EI, in units of the target standard deviation.
    initial_design_kind
        ``"sobol"`` (scrambled, default), ``"lhs"`` or ``"random"``.
    n_restarts
        Random restarts of each hyper-parameter fit.
    y_cap
        Values above this are given to the surrogate as ``y_cap`` (the result keeps the
        true values): a few huge values (steric clashes in a conformer search) would
        otherwise flatten the standardised landscape where the minima are. None (default)
        for no cap.
    seed
        Seed (or Generator) of everything random: the design, the restarts, the
        acquisition's start points. Same seed and objective, same result.
    callback
        Called as ``callback(result)`` after each round with the result so far; a
        return value of True stops the search.
    progress
        Show a progress bar (default: when there are 50 rounds or more).

    Returns
    -------
    BOResult

    Examples
    --------
    >>> import numpy as np
    >>> from ml4ms.bayes.bo import minimize
    >>> res = minimize(lambda x: np.sin(x[0]) + 1.5 * np.exp(-(x[0] - 4.3) ** 2), [(0, 7)], n_iter=10, seed=0)
    >>> round(float(res.x_best[0]), 1)
    5.6
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bounds = check_bounds(bounds)
    d = len(bounds)
    n_iter = _check_int("n_iter", n_iter, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    n_initial = max(3, 2 * d) if n_initial is None else _check_int("n_initial", n_initial, 1)
    if acquisition not in ACQUISITIONS:
        raise ConfigError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if initial_design_kind not in DESIGNS:
        raise ConfigError(f"initial_design_kind must be one of {', '.join(DESIGNS)}, got {initial_design_kind!r}")
    if not (np.isfinite(kappa) and kappa >= 0):
        raise ConfigError(f"kappa must be a non-negative number, got {kappa!r}")
    if not (np.isfinite(xi) and xi >= 0):
        raise ConfigError(f"xi must be a non-negative number, got {xi!r}")
    if not callable(f):
        raise ConfigError(f"f must be callable, got {type(f).__name__}")
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be callable, got {type(callback).__name__}")
    if y_cap is not None and not np.isfinite(y_cap):
        raise ConfigError(f"y_cap must be a finite number or None, got {y_cap!r}")
    periods = periods_from(periodic, bounds)
    # Two streams: one chooses the points; the other only serves reports (the surrogate's
    # predicted minimum), so that asking for a report -- a callback -- cannot change the search.
    rng, report_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    def targets() -> np.ndarray:
        return np.array(y) if y_cap is None else np.minimum(np.array(y), y_cap)

    X: list[np.ndarray] = []
    y: list[float] = []
    failures: list[tuple[np.ndarray, str]] = []
    n_calls = 0

    def evaluate(x: np.ndarray) -> None:
        nonlocal n_calls
        n_calls += 1
        try:
            value = float(f(x.copy()))
        except Exception as exc:  # the objective's own failure: record it and carry on
            failures.append((x, f"{type(exc).__name__}: {exc}"))
            return
        if not np.isfinite(value):
            failures.append((x, f"non-finite value {value}"))
            return
        X.append(x)
        y.append(value)

    for x in initial_design(n_initial, bounds, initial_design_kind, rng):
        evaluate(x)
    extra = 0
    while len(y) < 1 and extra < max(10, n_initial):  # the whole design failed: try random points
        evaluate(bounds[:, 0] + rng.random(d) * (bounds[:, 1] - bounds[:, 0]))
        extra += 1
    if not y:
        raise ObjectiveError(f"the objective failed at all {n_calls} points tried; first error: {failures[0][1]}")

    gp = GaussianProcess(bounds=bounds, periodic=[float(p) if np.isfinite(p) else None for p in periods],
                         kernel=kernel, noise=noise,
                         n_restarts=n_restarts, random_state=rng)
    rounds: list[dict] = []
    show = n_iter >= 50 if progress is None else progress

    def snapshot(model: GaussianProcess) -> BOResult:
        Xa, ya = np.array(X), np.array(y)
        k = int(np.argmin(ya))
        x_min, f_min, s_min = predicted_minimum(model, report_rng)
        return BOResult(x_best=Xa[k], f_best=float(ya[k]), X=Xa, y=ya, surrogate=model, n_evaluations=n_calls,
                        n_failed=len(failures), failures=list(failures), x_min_predicted=x_min,
                        f_min_predicted=f_min, f_min_std=s_min, best_history=np.minimum.accumulate(ya),
                        rounds=rounds, bounds=bounds, periods=periods, wall_time=time.perf_counter() - t0)

    # Small matrices: BLAS threads only add contention (and L-BFGS-B calls BLAS on tiny vectors).
    def quiet():
        return threadpool_limits(limits=1, user_api="blas")

    for _ in tqdm(range(n_iter), desc="bayesian optimisation", unit="round", disable=not show):
        with quiet():
            gp.fit(np.array(X), targets())
            batch = _propose_batch(gp, failures, acquisition, kappa, xi, rng, batch_size)
            x_min, f_min, s_min = predicted_minimum(gp, report_rng)
        rounds.append({"n_evaluations": n_calls, "proposed": [x.tolist() for x in batch],
                       "x_min_predicted": x_min.tolist(), "f_min_predicted": f_min, "f_min_std": s_min,
                       "length_scales": (gp.length_scales_ * gp.width_).tolist(),
                       "noise_std": float(np.sqrt(gp.noise_variance_) * gp.y_std_)})
        for x in batch:
            evaluate(x)
        if callback is not None:
            with quiet():
                stop = callback(snapshot(gp)) is True  # the surrogate of this round, before its batch
            if stop:
                break
    if failures:
        warnings.warn(f"the objective failed at {len(failures)} of {n_calls} points; they were left out "
                      f"(first: {failures[0][1]})", stacklevel=2)
    with quiet():
        gp.fit(np.array(X), targets())
        return snapshot(gp)


def _propose_batch(gp: GaussianProcess, failures: list, acquisition: str, kappa: float, xi: float,
                   rng: np.random.Generator, batch_size: int) -> list[np.ndarray]:
    """``batch_size`` distinct points by the kriging believer, in input units."""
    d = gp.U_.shape[1]
    n_candidates, n_starts = min(4000, 500 * d), min(10, 2 + 2 * d)
    best = float(gp.z_.min())
    model = gp
    batch = []
    taboo = gp.U_
    if failures:  # do not propose a point where the objective failed
        taboo = np.vstack([taboo, gp._scale(np.array([x for x, _ in failures]))])
    for b in range(batch_size):
        u = _propose(model, acquisition, best, kappa, xi, taboo, rng, n_candidates, n_starts, d)
        x = gp.bounds_[:, 0] + u * gp.width_
        batch.append(x)
        taboo = np.vstack([taboo, u])
        if b + 1 < batch_size:  # kriging believer: pretend the model's prediction was observed
            model = model.condition_on(x[None, :], model.predict(x[None, :]))
    return batch


# ---------------------------------------------------------------------- structure search
def torsion_mask(atoms, torsion: Sequence[int], mult: float = 1.2) -> np.ndarray:
    """Atoms that move when torsion ``(a, b, c, d)`` turns: the side of bond b–c holding c.

    Bonds are pairs closer than ``mult`` times the sum of ASE's natural (covalent) radii.
    A ConfigError if b and c are not bonded, or if the bond is in a ring.
    """
    from ase.neighborlist import natural_cutoffs, neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(atoms)
    if len(torsion) != 4 or len(set(torsion)) != 4:
        raise ConfigError(f"a torsion is four distinct atom indices, got {list(torsion)}")
    for k in torsion:
        if not isinstance(k, int | np.integer) or not 0 <= k < n:
            raise ConfigError(f"torsion {list(torsion)}: atom index {k} is not one of 0..{n - 1}")
    a, b, c, d = (int(k) for k in torsion)
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=mult), self_interaction=False)
    bonded = set(zip(i.tolist(), j.tolist()))
    if (b, c) not in bonded:
        raise ConfigError(f"torsion {list(torsion)}: atoms {b} and {c} are not bonded")
    keep = ~(((i == b) & (j == c)) | ((i == c) & (j == b)))
    graph = coo_matrix((np.ones(keep.sum()), (i[keep], j[keep])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    if labels[b] == labels[c]:
        raise ConfigError(f"torsion {list(torsion)}: the bond {b}-{c} is in a ring; it cannot be turned rigidly")
    return labels == labels[c]


class TorsionObjective:
    """Energy of a molecule as a function of its torsion angles (degrees), for :func:`minimize`.

    Parameters
    ----------
    atoms
        The molecule; it is not changed.
    torsions
        Atom quadruples ``(a, b, c, d)``; angle k sets the dihedral a-b-c-d by turning
        the side of bond b–c that holds c (see :func:`torsion_mask`).
    calculator
        Any ASE calculator.
    relative
        Report energies relative to the input structure's (default), in eV.

    Attributes
    ----------
    bounds : ndarray (k, 2)
        ``(0, 360)`` per torsion; every dimension is periodic with period 360.
    initial_angles : ndarray (k,)
        The dihedrals of the input structure, degrees.
    reference_energy : float
        The input structure's energy, eV.
    """

    def __init__(self, atoms, torsions: Sequence[Sequence[int]], calculator, relative: bool = True) -> None:
        if len(torsions) < 1:
            raise ConfigError("give at least one torsion (four atom indices)")
        self.atoms = atoms.copy()
        self.torsions = [tuple(int(k) for k in t) for t in torsions]
        self.masks = [torsion_mask(self.atoms, t) for t in self.torsions]
        self.calculator = calculator
        self.bounds = np.array([[0.0, 360.0]] * len(self.torsions))
        self.periodic = [360.0] * len(self.torsions)
        self.initial_angles = np.array([self.atoms.get_dihedral(*t) for t in self.torsions])
        self.reference_energy = self._energy(self.atoms.copy()) if relative else 0.0

    def structure(self, angles) -> Any:
        """A copy of the molecule with the torsions set to ``angles`` (degrees)."""
        angles = np.asarray(angles, dtype=float).ravel()
        if len(angles) != len(self.torsions):
            raise ConfigError(f"expected {len(self.torsions)} angles, got {len(angles)}")
        work = self.atoms.copy()
        for t, mask, angle in zip(self.torsions, self.masks, angles):
            work.set_dihedral(*t, angle, mask=mask)
        return work

    def _energy(self, atoms) -> float:
        atoms.calc = self.calculator
        return float(atoms.get_potential_energy())

    def __call__(self, angles) -> float:
        """Energy (eV) at torsion angles (degrees)."""
        return self._energy(self.structure(angles)) - self.reference_energy


# ---------------------------------------------------------------------- plots
def convergence_plot(result: BOResult, path, ylabel: str = "f") -> Any:
    """Best value found against evaluations, with the surrogate's predicted minimum ±2σ per round."""
    from ..report import _pyplot, _save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.step(np.arange(1, len(result.best_history) + 1), result.best_history, where="post", label="best evaluated")
    if result.rounds:
        n = np.array([r["n_evaluations"] for r in result.rounds])
        m = np.array([r["f_min_predicted"] for r in result.rounds])
        s = np.array([r["f_min_std"] for r in result.rounds])
        ax.errorbar(n, m, yerr=2 * s, fmt=".", ms=4, lw=0.8, capsize=2, label="predicted minimum ±2σ")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path


def surrogate_plot(result: BOResult, path, labels: Sequence[str] | None = None, zlabel: str = "f") -> Any:
    """The surrogate of a 1-D (mean ±2σ) or 2-D (contours of the mean) search, with the evaluations."""
    from ..report import _pyplot, _save_figure

    d = result.X.shape[1]
    if d not in (1, 2):
        raise ConfigError(f"a surrogate plot needs 1 or 2 dimensions, the search has {d}")
    labels = list(labels) if labels is not None else [f"x{k}" for k in range(d)]
    plt = _pyplot()
    gp, b = result.surrogate, result.bounds
    if d == 1:
        grid = np.linspace(b[0, 0], b[0, 1], 400)
        mean, std = gp.predict(grid[:, None], return_std=True)
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        ax.plot(grid, mean, label="surrogate mean")
        ax.fill_between(grid, mean - 2 * std, mean + 2 * std, alpha=0.25, label="±2σ")
        ax.plot(result.X[:, 0], result.y, "k.", label="evaluations")
        ax.plot(result.x_min_predicted[0], result.f_min_predicted, "r*", ms=10, label="predicted minimum")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(zlabel)
        ax.legend(fontsize="small")
    else:
        g0, g1 = np.meshgrid(np.linspace(b[0, 0], b[0, 1], 120), np.linspace(b[1, 0], b[1, 1], 120))
        mean = gp.predict(np.column_stack([g0.ravel(), g1.ravel()])).reshape(g0.shape)
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        filled = ax.contourf(g0, g1, mean, levels=30, cmap="viridis")
        fig.colorbar(filled, ax=ax, label=zlabel)
        ax.plot(result.X[:, 0], result.X[:, 1], "w.", ms=4, label="evaluations")
        ax.plot(*result.x_min_predicted, "r*", ms=12, label="predicted minimum")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path
