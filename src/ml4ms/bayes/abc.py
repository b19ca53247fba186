"""Approximate Bayesian computation: rejection ABC, SMC-ABC and regression adjustment.

ABC samples the posterior of parameters ``theta`` of a stochastic simulator without
evaluating its likelihood: parameters are drawn, data simulated, and kept when their
summary statistics lie within a tolerance of the observed ones.

- :func:`rejection` draws from the prior and keeps the closest simulations (a fixed
  number, or all within a tolerance).
- :func:`smc` (population Monte Carlo ABC, Beaumont et al. 2009, with the adaptive
  tolerances of Del Moral et al. 2012) moves a weighted population through decreasing
  tolerances, each the ``quantile`` of the previous population's distances; particles
  are perturbed with a Gaussian kernel of twice the population's weighted covariance and
  weighted by ``prior / proposal``.
- :func:`regression_adjust` corrects accepted samples by a local-linear regression on
  the summary statistics with Epanechnikov weights (Beaumont, Zhang & Balding 2002).

The simulator contract is ``simulator(params, rng) -> summary statistics (k,)``, with
``params`` a ``{name: value}`` dict (or a ``(d,)`` array with ``param_format="array"``)
and ``rng`` a :class:`numpy.random.Generator` of its own: simulation ``i`` of generation
``g`` is seeded by ``SeedSequence(seed, spawn_key=(g, 1, i))``, so results depend on the
seed only -- not on the number of workers, the chunking or a resume. A simulation that
raises or returns NaN/inf is recorded, skipped and counted in ``result.n_failed``.

Simulations run in-process (``workers=1``), on a local Dask cluster (``workers=N``) or
on an existing one (``scheduler="tcp://host:8786"``), in chunks.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .._files import atomic_path
from ..errors import ConfigError, FileFormatError, Ml4msError
from ._parallel import Payload, Runner
from .distances import Distance, distance_from_spec
from .priors import JointPrior, Prior

__all__ = ["ABCResult", "SimulationFailed", "rejection", "smc", "regression_adjust", "weighted_quantile", "corner_plot"]

_MAX_FAILURE_EXAMPLES = 20
_CHECKPOINT_FORMAT = "ml4ms-abc-smc-checkpoint"


class SimulationFailed(Ml4msError, RuntimeError):
    """Every simulation of the first batch failed, or none came within the tolerance."""


def weighted_quantile(x: np.ndarray, weights: np.ndarray, q: float | Sequence[float]) -> np.ndarray:
    """Quantiles ``q`` (in [0, 1]) of the weighted sample ``x`` ``(n,)``.

    The empirical distribution puts mass ``w_i`` at ``x_i``; quantiles interpolate
    linearly between the mid-points of the sorted cumulative weights.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(np.asarray(q, dtype=float), cdf, x)


@dataclass
class ABCResult:
    """Weighted posterior samples of an ABC run.

    Attributes
    ----------
    samples : ndarray of shape (n, d)
        Accepted parameter vectors; columns follow ``parameter_names``.
    weights : ndarray of shape (n,)
        Normalised importance weights (uniform for rejection ABC).
    distances : ndarray of shape (n,)
        Distance of each sample's simulated statistics to the observed ones.
    statistics : ndarray of shape (n, k)
        The simulated summary statistics of each sample.
    parameter_names : list of str
    observed : ndarray of shape (k,)
    method : str
        ``"rejection"``, ``"smc"``, with ``"+regression"`` once adjusted.
    tolerance : float
        The final tolerance (largest accepted distance for rejection by number).
    n_simulations : int
        Simulations run in all (failed ones included).
    n_failed : int
        Simulations that raised or returned non-finite or wrongly sized statistics.
    failures : list of dict
        The first failures: ``{"parameters": {...}, "error": message}``.
    history : list of dict
        Per SMC generation: tolerance, simulations, acceptance rate, effective sample size.
    seed : int
        Entropy of the root seed sequence (reproduces the run).
    wall_time : float
        Seconds (summed over resumed invocations).
    bounds : ndarray of shape (d, 2)
        Prior support of each parameter (used by :func:`regression_adjust`).
    stopped : str
        Why an SMC run stopped: ``generations``, ``min_tolerance``, ``min_acceptance``
        or ``max_simulations``.
    """

    samples: np.ndarray
    weights: np.ndarray
    distances: np.ndarray
    statistics: np.ndarray
    parameter_names: list[str]
    observed: np.ndarray
    method: str
    tolerance: float
    n_simulations: int
    n_failed: int
    failures: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    seed: int = 0
    wall_time: float = 0.0
    bounds: np.ndarray | None = None
    stopped: str = ""

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def ess(self) -> float:
        """Effective sample size ``(sum w)^2 / sum w^2``."""
        return float(self.weights.sum() ** 2 / np.sum(self.weights**2))

    def mean(self) -> np.ndarray:
        """Weighted posterior mean, shape ``(d,)``."""
        return np.average(self.samples, axis=0, weights=self.weights)

    def cov(self) -> np.ndarray:
        """Weighted posterior covariance, shape ``(d, d)``."""
        return np.atleast_2d(np.cov(self.samples, rowvar=False, aweights=self.weights, ddof=0))

    def std(self) -> np.ndarray:
        """Weighted posterior standard deviation, shape ``(d,)``."""
        return np.sqrt(np.diag(self.cov()))

    def quantiles(self, q: float | Sequence[float]) -> np.ndarray:
        """Weighted marginal quantiles: ``(d,)`` for a scalar ``q``, else ``(len(q), d)``."""
        out = np.array([weighted_quantile(self.samples[:, k], self.weights, q) for k in range(self.samples.shape[1])])
        return out.T

    def credible_interval(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Equal-tailed marginal credible intervals ``{name: (low, high)}``."""
        if not 0 < level < 1:
            raise ConfigError(f"level must be in (0, 1), got {level}")
        q = self.quantiles([(1 - level) / 2, (1 + level) / 2])
        return {name: (float(q[0, k]), float(q[1, k])) for k, name in enumerate(self.parameter_names)}

    def summary(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        """``{name: {mean, std, low, high}}`` with the ``level`` credible interval."""
        mean, std, ci = self.mean(), self.std(), self.credible_interval(level)
        return {name: {"mean": float(mean[k]), "std": float(std[k]), "low": ci[name][0], "high": ci[name][1]}
                for k, name in enumerate(self.parameter_names)}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able data; :meth:`from_dict` reads it back exactly."""
        return {
            "method": self.method,
            "parameter_names": list(self.parameter_names),
            "n_samples": self.n_samples,
            "mean": dict(zip(self.parameter_names, self.mean().tolist())),
            "std": dict(zip(self.parameter_names, self.std().tolist())),
            "credible_interval_95": {k: list(v) for k, v in self.credible_interval(0.95).items()},
            "credible_interval_68": {k: list(v) for k, v in self.credible_interval(0.68).items()},
            "ess": self.ess,
            "tolerance": self.tolerance,
            "n_simulations": int(self.n_simulations),
            "n_failed": int(self.n_failed),
            "failures": self.failures,
            "wall_time_s": self.wall_time,
            "seed": int(self.seed),
            "stopped": self.stopped,
            "history": self.history,
            "observed": self.observed.tolist(),
            "bounds": None if self.bounds is None else self.bounds.tolist(),
            "samples": self.samples.tolist(),
            "weights": self.weights.tolist(),
            "distances": self.distances.tolist(),
            "statistics": self.statistics.tolist(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        return Path(path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ABCResult:
        names = list(data["parameter_names"])
        return cls(
            samples=np.asarray(data["samples"], dtype=float).reshape(-1, len(names)),
            weights=np.asarray(data["weights"], dtype=float),
            distances=np.asarray(data["distances"], dtype=float),
            statistics=np.asarray(data["statistics"], dtype=float).reshape(len(data["weights"]), -1),
            parameter_names=names, observed=np.asarray(data["observed"], dtype=float),
            method=data["method"], tolerance=float(data["tolerance"]), n_simulations=int(data["n_simulations"]),
            n_failed=int(data["n_failed"]), failures=list(data.get("failures", [])),
            history=list(data.get("history", [])), seed=int(data.get("seed", 0)),
            wall_time=float(data.get("wall_time_s", 0.0)),
            bounds=None if data.get("bounds") is None else np.asarray(data["bounds"], dtype=float),
            stopped=data.get("stopped", ""),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ABCResult:
        """Read a result written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FileFormatError(f"not an ABC result: {exc}", path=path) from None


# ---------------------------------------------------------------------------------------------
# shared machinery


class _Run:
    """State shared by rejection and SMC: inputs checked, counters, failures, progress."""

    def __init__(self, simulator, prior, observed, distance, n_samples, seed, param_format, progress, desc):
        if not callable(simulator):
            raise ConfigError(f"simulator must be callable as simulator(params, rng), got {simulator!r}")
        self.prior = prior if isinstance(prior, JointPrior) else JointPrior(prior)
        observed = np.asarray(observed, dtype=float).ravel() if not isinstance(observed, Mapping) \
            else np.asarray(list(observed.values()), dtype=float)
        if observed.size == 0 or not np.isfinite(observed).all():
            raise ConfigError(f"observed must be a non-empty vector of finite numbers, got {observed.tolist()}")
        self.observed = observed
        self.distance: Distance = copy.deepcopy(distance_from_spec(distance))
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.n_samples = int(n_samples)
        if param_format not in ("dict", "array"):
            raise ConfigError(f"param_format must be 'dict' or 'array', got {param_format!r}")
        if isinstance(seed, np.random.SeedSequence):
            seed = seed.entropy
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.entropy = int(seed)
        self.payload = Payload(simulator, self.prior.names, self.entropy, observed.size, param_format)
        self.n_simulations = 0
        self.n_failed = 0
        self.failures: list[dict] = []
        self.checked_first = False
        self.progress = progress
        self.desc = desc
        self.bar = None

    def rng(self, generation: int, round_: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(generation, 0, round_)))

    def simulate(self, runner: Runner, thetas: np.ndarray, generation: int) -> tuple[np.ndarray, np.ndarray]:
        """Statistics ``(m, k)`` and validity ``(m,)`` of a batch; failures recorded."""
        start = self.n_simulations
        keys = np.column_stack([np.full(len(thetas), generation), np.ones(len(thetas), dtype=np.int64),
                                np.arange(start, start + len(thetas))]).astype(np.int64)
        stats, failures = runner.run(thetas, keys, progress=self.bar.update if self.bar is not None else None)
        self.n_simulations += len(thetas)
        valid = np.isfinite(stats).all(axis=1)
        self.n_failed += len(failures)
        for row, message, _ in failures[: max(0, _MAX_FAILURE_EXAMPLES - len(self.failures))]:
            self.failures.append({"parameters": self.prior.as_dict(thetas[row]), "error": message})
        if not self.checked_first:
            self.checked_first = True
            if not valid.any():
                wrong = [m for _, m, w in failures if w]
                if wrong:
                    raise ConfigError(f"the observed data hold {self.observed.size} summary statistics but the "
                                      f"simulator {wrong[0].split(',')[0]}; they must match")
                raise SimulationFailed(f"all {len(thetas)} simulations of the first batch failed; first error: "
                                       f"{failures[0][1]} (parameters {self.failures[0]['parameters']})")
        return stats, valid

    def distances(self, stats: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.distance.needs_fit:
            self.distance.fit(stats[valid])
        out = np.full(len(stats), np.inf)
        if valid.any():
            out[valid] = self.distance(stats[valid], self.observed)
        return out

    def warn_failures(self) -> None:
        if self.n_failed:
            warnings.warn(f"{self.n_failed} of {self.n_simulations} simulations failed and were skipped; "
                          f"first: {self.failures[0]['error']} at {self.failures[0]['parameters']}",
                          RuntimeWarning, stacklevel=3)

    def open_bar(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(desc=self.desc, unit="sim", disable=not self.progress, dynamic_ncols=True)
        self.bar.update(self.n_simulations)
        return self.bar

    def result(self, method, samples, weights, distances, stats, tolerance, wall, **extra) -> ABCResult:
        weights = np.asarray(weights, dtype=float)
        return ABCResult(samples=np.asarray(samples, dtype=float), weights=weights / weights.sum(),
                         distances=np.asarray(distances, dtype=float), statistics=np.asarray(stats, dtype=float),
                         parameter_names=self.prior.names, observed=self.observed, method=method,
                         tolerance=float(tolerance), n_simulations=self.n_simulations, n_failed=self.n_failed,
                         failures=self.failures, seed=self.entropy, wall_time=wall, bounds=self.prior.bounds,
                         **extra)


def _round_size(remaining: int, rate: float, budget_left: float, n_target: int) -> int:
    """Simulations of the next round: enough for the remaining acceptances at the estimated
    rate (with 15 % to spare), at least 32, at most 50 populations and the budget left."""
    m = remaining if rate >= 1.0 else math.ceil(1.15 * remaining / max(rate, 1e-6))
    m = min(max(m, 32), 50 * n_target)
    return int(min(m, budget_left))


# ---------------------------------------------------------------------------------------------
# rejection


def rejection(
    simulator: Callable[[Any, np.random.Generator], np.ndarray],
    prior: JointPrior | Mapping[str, Prior | Mapping | list],
    observed: np.ndarray | Sequence[float],
    distance: Distance | str | Mapping | None = None,
    n_samples: int = 1000,
    *,
    n_simulations: int | None = None,
    tolerance: float | None = None,
    max_simulations: int | None = None,
    seed: int | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    processes: bool = True,
    chunk_size: int | None = None,
    param_format: str = "dict",
    progress: bool = True,
) -> ABCResult:
    """Rejection ABC: prior draws whose simulated statistics lie closest to the observed ones.

    Parameters
    ----------
    simulator
        ``simulator(params, rng) -> (k,)`` summary statistics.
    prior
        A :class:`~ml4ms.bayes.priors.JointPrior` or ``{name: prior}``.
    observed
        Observed summary statistics ``(k,)``.
    distance
        A :class:`~ml4ms.bayes.distances.Distance` or a specification; default
        ``Euclidean(scale="mad")``, calibrated on the prior-predictive simulations.
    n_samples
        Posterior samples to return.
    n_simulations
        Without ``tolerance``: simulate this many (default ``10 * n_samples``) and keep the
        ``n_samples`` closest; the tolerance is then the largest kept distance.
    tolerance
        Keep simulations with distance ``<= tolerance``, simulating in rounds until
        ``n_samples`` are accepted or ``max_simulations`` (default ``1000 * n_samples``)
        have run.
    seed
        Root seed; ``None`` draws one (stored in the result).
    workers, scheduler, processes, chunk_size
        Where simulations run (see :class:`ml4ms.bayes._parallel.Runner`): ``workers=1``
        in-process, ``workers=N`` a local Dask cluster, ``scheduler`` an existing one.
    param_format
        ``"dict"`` passes ``{name: value}`` to the simulator, ``"array"`` a ``(d,)`` array.
    progress
        Show a progress bar.

    Returns
    -------
    ABCResult
        Uniformly weighted samples.
    """
    t0 = time.perf_counter()
    run = _Run(simulator, prior, observed, distance, n_samples, seed, param_format, progress, "ABC rejection")
    if tolerance is not None and not (tolerance >= 0):
        raise ConfigError(f"tolerance must be non-negative, got {tolerance}")
    with Runner(workers, scheduler, processes, chunk_size) as runner, run.open_bar():
        runner.set_payload(run.payload)
        if tolerance is None:
            n_sim = 10 * run.n_samples if n_simulations is None else int(n_simulations)
            if n_sim < run.n_samples:
                raise ConfigError(f"n_simulations ({n_sim}) must be at least n_samples ({run.n_samples})")
            thetas = run.prior.sample(n_sim, run.rng(0, 0))
            stats, valid = run.simulate(runner, thetas, 0)
            dist = run.distances(stats, valid)
            keep = np.argsort(dist, kind="stable")[: min(run.n_samples, int(valid.sum()))]
            tol = float(dist[keep].max())
        else:
            budget = 1000 * run.n_samples if max_simulations is None else int(max_simulations)
            kept_t, kept_s, kept_d = [], [], []
            n_acc, round_ = 0, 0
            while n_acc < run.n_samples:
                rate = (n_acc + 1) / (run.n_simulations + 2) if round_ else 0.5
                m = _round_size(run.n_samples - n_acc, rate, budget - run.n_simulations, run.n_samples)
                if m <= 0:
                    break
                thetas = run.prior.sample(m, run.rng(0, round_))
                stats, valid = run.simulate(runner, thetas, 0)
                dist = run.distances(stats, valid)
                acc = np.flatnonzero(dist <= tolerance)[: run.n_samples - n_acc]
                kept_t.append(thetas[acc]), kept_s.append(stats[acc]), kept_d.append(dist[acc])
                n_acc += len(acc)
                round_ += 1
                run.bar.set_postfix(accepted=f"{n_acc}/{run.n_samples}")
            if n_acc == 0:
                raise SimulationFailed(f"none of {run.n_simulations} simulations came within tolerance {tolerance}")
            if n_acc < run.n_samples:
                warnings.warn(f"only {n_acc} of {run.n_samples} samples accepted within max_simulations="
                              f"{budget}", RuntimeWarning, stacklevel=2)
            thetas, stats, dist = np.concatenate(kept_t), np.concatenate(kept_s), np.concatenate(kept_d)
            keep = np.arange(len(thetas))
            tol = float(tolerance)
    run.warn_failures()
    return run.result("rejection", thetas[keep], np.ones(len(keep)), dist[keep], stats[keep], tol,
                      time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# SMC


def _mvn_logpdf_matrix(x: np.ndarray, centres: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``log N(x_i; centres_j, cov)`` for all pairs, ``(n, m)``, in row blocks."""
    chol = np.linalg.cholesky(cov)
    d = x.shape[1]
    log_norm = -0.5 * d * math.log(2 * math.pi) - np.log(np.diag(chol)).sum()
    zc = np.linalg.solve(chol, centres.T).T  # whitened centres (m, d)
    zx = np.linalg.solve(chol, x.T).T
    sq_c = np.sum(zc**2, axis=1)
    sq_x = np.sum(zx**2, axis=1)
    sq = sq_x[:, None] + sq_c[None, :] - 2.0 * zx @ zc.T
    return log_norm - 0.5 * np.maximum(sq, 0.0)


def _kernel_cov(samples: np.ndarray, weights: np.ndarray, kernel_scale: float, bounds: np.ndarray) -> np.ndarray:
    cov = np.atleast_2d(np.cov(samples, rowvar=False, aweights=weights, ddof=0)) * kernel_scale
    # A collapsed population (or a constant parameter) would give a singular kernel.
    width = np.where(np.isfinite(bounds).all(axis=1), bounds[:, 1] - bounds[:, 0], 1.0)
    floor = (1e-9 * np.maximum(width, np.abs(samples).max(axis=0) + 1e-300)) ** 2
    return cov + np.diag(np.maximum(floor - np.diag(cov), 0.0))


def _fingerprint(run: _Run, quantile: float, kernel_scale: float) -> dict[str, Any]:
    return {"parameter_names": run.prior.names, "prior": run.prior.to_dict(), "observed": run.observed.tolist(),
            "n_samples": run.n_samples, "quantile": quantile, "kernel_scale": kernel_scale,
            "seed": run.entropy, "distance": repr(run.distance)}


def _write_checkpoint(path, run: _Run, fingerprint, generation, pop, tolerances, history, wall, stopped) -> None:
    samples, weights, dist, stats = pop
    state = {"format": _CHECKPOINT_FORMAT, "version": 1, "fingerprint": fingerprint, "generation": generation,
             "samples": samples.tolist(), "weights": weights.tolist(), "distances": dist.tolist(),
             "statistics": stats.tolist(), "tolerances": tolerances, "history": history,
             "n_simulations": run.n_simulations, "n_failed": run.n_failed, "failures": run.failures,
             "distance_state": run.distance.get_state(), "wall_time_s": wall, "stopped": stopped}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state), encoding="utf-8")


def _read_checkpoint(path, fingerprint) -> dict[str, Any]:
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"cannot read the SMC checkpoint: {exc}", path=path) from None
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise FileFormatError("not an ml4ms SMC-ABC checkpoint", path=path)
    theirs = state["fingerprint"]
    differ = [k for k in fingerprint if json.dumps(fingerprint[k]) != json.dumps(theirs.get(k))]
    if differ:
        raise ConfigError(f"{path}: the checkpoint belongs to a different run ({', '.join(differ)} differ); "
                          "remove it or run without resume")
    return state


def smc(
    simulator: Callable[[Any, np.random.Generator], np.ndarray],
    prior: JointPrior | Mapping[str, Prior | Mapping | list],
    observed: np.ndarray | Sequence[float],
    distance: Distance | str | Mapping | None = None,
    n_samples: int = 1000,
    *,
    generations: int = 10,
    quantile: float = 0.5,
    min_tolerance: float | None = None,
    min_acceptance: float = 0.0,
    max_simulations: int | None = None,
    kernel_scale: float = 2.0,
    seed: int | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    processes: bool = True,
    chunk_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    param_format: str = "dict",
    progress: bool = True,
) -> ABCResult:
    """Sequential Monte Carlo ABC (population Monte Carlo) with adaptive tolerances.

    Generation 0 draws ``n_samples`` particles from the prior (tolerance infinite; the
    distance is calibrated on them). Generation ``t`` sets its tolerance to the weighted
    ``quantile`` of generation ``t-1``'s distances, then proposes particles -- a parent
    drawn by weight and moved by a Gaussian kernel of covariance ``kernel_scale`` times
    the parents' weighted covariance (Beaumont et al. 2009), proposals outside the prior's
    support redrawn -- and simulates until ``n_samples`` are within the tolerance. Their
    weights are ``prior(theta) / sum_j w_j K(theta | theta_j)``.

    Parameters
    ----------
    simulator, prior, observed, distance, n_samples, seed, workers, scheduler, processes, chunk_size, param_format, progress
        As in :func:`rejection`.
    generations
        Populations at most, the prior one included.
    quantile
        Tolerance schedule: the fraction of the previous population's (weighted)
        distances below the next tolerance, in (0, 1).
    min_tolerance
        Stop once a generation reaches this tolerance.
    min_acceptance
        Stop after a generation whose acceptance rate fell below this.
    max_simulations
        Budget; when a generation would exceed it, the run stops with the last complete
        population (``result.stopped == "max_simulations"``).
    kernel_scale
        Multiplier of the weighted covariance in the perturbation kernel (2 is optimal
        for Gaussian targets, Beaumont et al. 2009).
    checkpoint
        JSON file written atomically after every generation.
    resume
        Continue from ``checkpoint`` when it exists (it must come from the same prior,
        observed data, population size, quantile and seed; ``generations`` and the
        stopping rules may change). The result equals that of an uninterrupted run.

    Returns
    -------
    ABCResult
        The last population, with ``history`` of the tolerances.
    """
    t0 = time.perf_counter()
    run = _Run(simulator, prior, observed, distance, n_samples, seed, param_format, progress, "ABC-SMC")
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
    if not isinstance(generations, (int, np.integer)) or generations < 1:
        raise ConfigError(f"generations must be a positive integer, got {generations!r}")
    if not kernel_scale > 0:
        raise ConfigError(f"kernel_scale must be positive, got {kernel_scale}")
    if resume and checkpoint is None:
        raise ConfigError("resume=True needs a checkpoint path")
    budget = math.inf if max_simulations is None else int(max_simulations)
    fingerprint = _fingerprint(run, quantile, kernel_scale)
    bounds = run.prior.bounds
    N = run.n_samples

    pop = None  # (samples, weights, distances, statistics)
    tolerances: list[float] = []
    history: list[dict] = []
    generation = 0
    wall_before = 0.0
    stopped = ""
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = _read_checkpoint(checkpoint, fingerprint)
        d = len(run.prior.names)
        pop = (np.asarray(state["samples"], dtype=float).reshape(-1, d), np.asarray(state["weights"], dtype=float),
               np.asarray(state["distances"], dtype=float),
               np.asarray(state["statistics"], dtype=float).reshape(-1, run.observed.size))
        tolerances, history = list(state["tolerances"]), list(state["history"])
        run.n_simulations, run.n_failed = int(state["n_simulations"]), int(state["n_failed"])
        run.failures = list(state["failures"])
        run.distance.set_state(state["distance_state"])
        run.checked_first = True
        generation = int(state["generation"]) + 1
        wall_before = float(state["wall_time_s"])
        stopped = state.get("stopped", "")

    with Runner(workers, scheduler, processes, chunk_size) as runner, run.open_bar():
        runner.set_payload(run.payload)
        while generation < generations and stopped in ("", "generations"):
            t_gen = time.perf_counter()
            sims_before = run.n_simulations
            if pop is None:
                eps = math.inf

                def propose(rng, m):
                    return run.prior.sample(m, rng)
            else:
                eps = float(weighted_quantile(pop[2], pop[1], quantile))
                if min_tolerance is not None:
                    eps = max(eps, float(min_tolerance))
                parents, parent_w = pop[0], pop[1]
                cov = _kernel_cov(parents, parent_w, kernel_scale, bounds)
                chol = np.linalg.cholesky(cov)

                def propose(rng, m, parents=parents, parent_w=parent_w, chol=chol):
                    out, filled, tries = np.empty((m, parents.shape[1])), 0, 0
                    while filled < m:
                        k = m - filled
                        idx = rng.choice(len(parents), size=2 * k + 8, p=parent_w)
                        cand = parents[idx] + rng.standard_normal((len(idx), parents.shape[1])) @ chol.T
                        ok = cand[np.isfinite(run.prior.logpdf(cand))][:k]
                        out[filled:filled + len(ok)] = ok
                        filled += len(ok)
                        tries += 1
                        if tries > 1000:
                            raise SimulationFailed("the SMC kernel proposes almost only parameters outside the "
                                                   "prior's support")
                    return out

            kept_t, kept_s, kept_d = [], [], []
            n_acc, round_, proposed, n_within = 0, 0, 0, 0
            # First guess of the acceptance rate: the previous generation's, somewhat lower.
            rate0 = 1.0 if pop is None else 0.8 * (history[-1]["acceptance_rate"] if len(history) > 1 else quantile)
            out_of_budget = False
            while n_acc < N:
                rate = rate0 if round_ == 0 else (n_acc + 1) / (proposed + 2)
                m = _round_size(N - n_acc, rate, budget - run.n_simulations, N)
                if m <= 0:
                    out_of_budget = True
                    break
                thetas = propose(run.rng(generation, round_), m)
                stats, valid = run.simulate(runner, thetas, generation)
                dist = run.distances(stats, valid)
                acc = np.flatnonzero(valid & (dist <= eps))[: N - n_acc]
                kept_t.append(thetas[acc]), kept_s.append(stats[acc]), kept_d.append(dist[acc])
                n_acc += len(acc)
                n_within += int(np.sum(valid & (dist <= eps)))
                proposed += m
                round_ += 1
                run.bar.set_postfix(generation=generation, tolerance=f"{eps:.4g}", accepted=f"{n_acc}/{N}")
            if out_of_budget:
                stopped = "max_simulations"
                if pop is None:
                    raise SimulationFailed(f"max_simulations={max_simulations} is too small for the first "
                                           f"population of {N} valid simulations")
                break
            samples, stats_acc, dist_acc = np.concatenate(kept_t), np.concatenate(kept_s), np.concatenate(kept_d)
            if pop is None:
                weights = np.full(N, 1.0 / N)
            else:
                log_k = _mvn_logpdf_matrix(samples, pop[0], cov)
                log_w = run.prior.logpdf(samples) - logsumexp(log_k + np.log(pop[1])[None, :], axis=1)
                weights = np.exp(log_w - log_w.max())
                weights /= weights.sum()
            pop = (samples, weights, dist_acc, stats_acc)
            tolerances.append(eps)
            n_gen = run.n_simulations - sims_before
            history.append({"generation": generation, "tolerance": eps, "n_simulations": n_gen,
                            "acceptance_rate": n_within / n_gen, "ess": float(weights.sum() ** 2 / np.sum(weights**2)),
                            "wall_time_s": time.perf_counter() - t_gen})
            if min_tolerance is not None and eps <= min_tolerance:
                stopped = "min_tolerance"
            elif generation > 0 and n_within / n_gen < min_acceptance:
                stopped = "min_acceptance"
            generation += 1
            if checkpoint is not None:
                _write_checkpoint(checkpoint, run, fingerprint, generation - 1, pop, tolerances, history,
                                  wall_before + time.perf_counter() - t0, stopped)
    run.warn_failures()
    if not stopped:
        stopped = "generations"
    samples, weights, dist_acc, stats_acc = pop
    return run.result("smc", samples, weights, dist_acc, stats_acc, tolerances[-1],
                      wall_before + time.perf_counter() - t0, history=history, stopped=stopped)


# ---------------------------------------------------------------------------------------------
# regression adjustment


def _forward(theta: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    out = theta.copy()
    for k, (lo, hi) in enumerate(bounds):
        if np.isfinite(lo) and np.isfinite(hi):
            u = np.clip((theta[:, k] - lo) / (hi - lo), 1e-12, 1 - 1e-12)
            out[:, k] = np.log(u) - np.log1p(-u)
        elif np.isfinite(lo):
            out[:, k] = np.log(np.maximum(theta[:, k] - lo, 1e-300))
        elif np.isfinite(hi):
            out[:, k] = np.log(np.maximum(hi - theta[:, k], 1e-300))
    return out


def _backward(z: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    out = z.copy()
    for k, (lo, hi) in enumerate(bounds):
        if np.isfinite(lo) and np.isfinite(hi):
            out[:, k] = lo + (hi - lo) / (1.0 + np.exp(-z[:, k]))
        elif np.isfinite(lo):
            out[:, k] = lo + np.exp(z[:, k])
        elif np.isfinite(hi):
            out[:, k] = hi - np.exp(z[:, k])
    return out


def regression_adjust(result: ABCResult, *, bandwidth: float | None = None, transform: bool = True) -> ABCResult:
    """Local-linear regression adjustment of ABC samples (Beaumont, Zhang & Balding 2002).

    Fits ``theta_i = alpha + (s_i - s_obs) beta`` by weighted least squares with weights
    ``w_i K(d_i / delta)``, ``K(u) = 1 - u^2`` (Epanechnikov) and replaces each sample by
    ``theta_i - (s_i - s_obs) beta``: the samples move to where they would lie had their
    simulations hit the observed statistics exactly.

    Parameters
    ----------
    result
        An ABC result (its ``statistics``, ``distances``, ``weights``).
    bandwidth
        ``delta``; default the largest accepted distance (samples at it get weight 0
        and are dropped).
    transform
        Regress bounded parameters in logit (both bounds) or log (one bound) space, so that
        adjusted samples stay within the prior's support.

    Returns
    -------
    ABCResult
        A copy with adjusted ``samples`` and Epanechnikov-weighted ``weights``, ``method``
        suffixed ``+regression``.
    """
    delta = float(np.max(result.distances)) if bandwidth is None else float(bandwidth)
    if not delta > 0:
        raise ConfigError(f"the bandwidth must be positive, got {delta} (all distances zero? then no adjustment "
                          "is needed)")
    kernel = np.clip(1.0 - (result.distances / delta) ** 2, 0.0, None)
    w = result.weights * kernel
    keep = w > 0
    k_stats = result.statistics.shape[1]
    if keep.sum() <= k_stats + 1:
        raise ConfigError(f"regression adjustment needs more than {k_stats + 1} samples with positive kernel "
                          f"weight, got {int(keep.sum())}; increase the bandwidth")
    w, theta, stats = w[keep], result.samples[keep], result.statistics[keep]
    bounds = result.bounds if (transform and result.bounds is not None) else np.full((theta.shape[1], 2),
                                                                                       [-np.inf, np.inf])
    z = _forward(theta, bounds)
    x = stats - result.observed
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    design = np.column_stack([np.ones(len(x)), x / scale])
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * sw, z * sw, rcond=None)
    z_adj = z - (x / scale) @ coef[1:]
    adjusted = _backward(z_adj, bounds)
    return ABCResult(samples=adjusted, weights=w / w.sum(), distances=result.distances[keep], statistics=stats,
                     parameter_names=list(result.parameter_names), observed=result.observed,
                     method=f"{result.method}+regression", tolerance=delta, n_simulations=result.n_simulations,
                     n_failed=result.n_failed, failures=list(result.failures), history=list(result.history),
                     seed=result.seed, wall_time=result.wall_time, bounds=result.bounds, stopped=result.stopped)


# ---------------------------------------------------------------------------------------------
# plots


def corner_plot(result: ABCResult, path: str | os.PathLike, *, reference: Mapping[str, float] | None = None,
                level: float = 0.95, bins: int = 30) -> Path:
    """Corner-style plot of a weighted posterior: marginal histograms on the diagonal (with the
    mean and the ``level`` credible interval), pairwise scatter (alpha by weight) below it.

    ``reference`` values (e.g. a known answer) are drawn as lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, x, w = result.parameter_names, result.samples, result.weights
    d = len(names)
    ci, mean = result.credible_interval(level), result.mean()
    fig, axes = plt.subplots(d, d, figsize=(2.4 * d + 0.6, 2.4 * d + 0.4), squeeze=False)
    alpha = np.clip(0.15 + 0.85 * w / w.max(), 0.0, 1.0)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(x[:, i], bins=bins, weights=w, color="C0", alpha=0.7)
                ax.axvline(mean[i], color="k", lw=1)
                for v in ci[names[i]]:
                    ax.axvline(v, color="k", lw=0.8, ls="--")
                ax.set_yticks([])
                ax.set_title(f"{names[i]} = {mean[i]:.4g} [{ci[names[i]][0]:.4g}, {ci[names[i]][1]:.4g}]",
                             fontsize="small")
                if reference and names[i] in reference:
                    ax.axvline(reference[names[i]], color="C3", lw=1.2)
            else:
                colors = np.zeros((len(w), 4))
                colors[:, 2] = 0.6
                colors[:, 3] = alpha
                ax.scatter(x[:, j], x[:, i], s=4, c=colors, edgecolors="none")
                if reference and names[i] in reference and names[j] in reference:
                    ax.plot(reference[names[j]], reference[names[i]], "x", color="C3", ms=8)
            if i == d - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
    fig.suptitle(f"ABC posterior ({result.method}, {result.n_samples} samples, {result.n_simulations} "
                 f"simulations, tolerance {result.tolerance:.3g})", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)
