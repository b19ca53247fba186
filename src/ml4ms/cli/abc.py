"""``ml4ms abc CONFIG.yaml``: approximate Bayesian computation from a YAML configuration.

A configuration names the method, the simulator, the priors, the observed summary
statistics, the distance and the sampler's settings::

    method: smc                    # rejection | smc
    simulator: morse-fcc           # a built-in (ml4ms.bayes.examples.SIMULATORS) or "pkg.module:function"
    simulator_options: {statistics: [lattice_constant, cohesive_energy, bulk_modulus]}
    priors:
      D: {distribution: uniform, low: 0.1, high: 1.0}
      a: {uniform: [0.8, 2.5]}
      r0: [uniform, 2.4, 3.4]
    observed: {from: emt, element: Cu}    # or a list of values, or {statistic: value}
    distance: {type: euclidean, scale: [0.01, 0.05, 5.0]}
    n_samples: 300
    smc: {generations: 12, quantile: 0.5}
    seed: 0

and writes ``posterior.json`` (samples, weights, mean, std, credible intervals,
simulations, failures, wall time) and ``posterior.png`` (corner plot) to ``--output``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SMCSettings(_Strict):
    """Settings of :func:`ml4ms.bayes.abc.smc`."""

    generations: int = Field(10, ge=1, description="populations at most, the prior one included")
    quantile: float = Field(0.5, gt=0, lt=1, description="next tolerance: this quantile of the last distances")
    min_tolerance: float | None = Field(None, ge=0, description="stop once a generation reaches this tolerance")
    min_acceptance: float = Field(0.0, ge=0, le=1, description="stop after a generation accepting less than this")
    max_simulations: int | None = Field(None, ge=1, description="simulation budget")
    kernel_scale: float = Field(2.0, gt=0, description="perturbation covariance / population covariance")


class RejectionSettings(_Strict):
    """Settings of :func:`ml4ms.bayes.abc.rejection`."""

    n_simulations: int | None = Field(None, ge=1, description="simulate this many; keep the n_samples closest")
    tolerance: float | None = Field(None, ge=0, description="or: keep those within this distance")
    max_simulations: int | None = Field(None, ge=1, description="budget when a tolerance is given")


class ObservedReference(_Strict):
    """Observed statistics computed from a reference (``{from: emt, element: Cu}``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", description="a reference of ml4ms.bayes.examples.REFERENCES, e.g. emt")
    element: str = "Cu"
    seed: int = Field(0, ge=0, description="seed of the reference's random parts (the thermalised cell)")
    noise: dict[str, float] | None = Field(None, description="observation noise added to the reference values")


class ABCConfig(_Strict):
    """The whole configuration of ``ml4ms abc``."""

    method: Literal["rejection", "smc"] = "smc"
    simulator: str = Field(description="built-in name (morse-fcc, gaussian-mean) or 'package.module:function'")
    simulator_options: dict[str, Any] = Field(default_factory=dict,
                                              description="arguments of a simulator class or function")
    priors: dict[str, Any] = Field(description="{name: prior specification}, in parameter order")
    observed: list[float] | dict[str, float] | ObservedReference
    distance: str | dict[str, Any] | None = Field(None, description="default {type: euclidean, scale: mad}")
    n_samples: int = Field(1000, ge=1)
    smc: SMCSettings = Field(default_factory=SMCSettings)
    rejection: RejectionSettings = Field(default_factory=RejectionSettings)
    regression_adjust: bool = Field(False, description="also write the regression-adjusted posterior")
    seed: int = Field(0, ge=0)
    workers: int = Field(1, ge=1, description="1: in-process; N: a local Dask cluster of N workers")
    processes: bool = Field(True, description="local Dask workers as processes (true) or threads")
    scheduler: str | None = Field(None, description="address of an existing Dask scheduler")
    output: str = "runs/abc"


def register(commands) -> None:
    parser = commands.add_parser(
        "abc", help="approximate Bayesian computation (rejection or SMC) from a YAML configuration",
        description="Infer simulator parameters by ABC: write DIR/posterior.json (samples, weights, mean, std, "
        "credible intervals, simulations, failures, wall time) and DIR/posterior.png (corner plot). SMC runs "
        "checkpoint every generation to DIR/checkpoint.json; --resume continues from it.",
    )
    parser.add_argument("config", metavar="CONFIG.yaml", help="ABC configuration (see examples/abc/)")
    parser.add_argument("--output", metavar="DIR", help="output directory (overrides output:)")
    parser.add_argument("--workers", type=int, help="local Dask workers (overrides workers:; 1 = serial)")
    parser.add_argument("--scheduler", metavar="ADDR", help="existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--resume", action="store_true", help="continue an SMC run from DIR/checkpoint.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration value, e.g. --set smc.n_particles=500 (repeatable)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run)


def load_abc_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ABCConfig:
    """Read, override (``key.sub=value``) and validate an ABC configuration; a ConfigError
    names the file and the key."""
    from ..config import load_fit_config

    return load_fit_config(path, overrides, schema=ABCConfig)


def build_simulator(name: str, options: dict[str, Any]):
    """A simulator from a built-in name or ``"package.module:attribute"`` (a class is
    instantiated with ``options``; a function gets them as keyword arguments)."""
    from ..bayes.examples import SIMULATORS
    from ..errors import ConfigError

    if name in SIMULATORS:
        target = SIMULATORS[name]
    elif ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"simulator: cannot import {name!r}: {exc}") from None
    else:
        raise ConfigError(f"simulator must be one of {', '.join(SIMULATORS)} or 'package.module:function'; "
                          f"got {name!r}")
    if isinstance(target, type):
        try:
            return target(**options)
        except TypeError as exc:
            raise ConfigError(f"simulator_options: {exc}") from None
    if not callable(target):
        raise ConfigError(f"simulator: {name!r} is not callable")
    return functools.partial(target, **options) if options else target


def observed_values(config: ABCConfig, simulator) -> list[float]:
    """The observed statistics: given, or computed from a reference with the simulator's settings."""
    from ..bayes.examples import REFERENCES
    from ..errors import ConfigError

    observed = config.observed
    names = list(getattr(simulator, "statistics", []) or [])
    if isinstance(observed, list):
        return [float(v) for v in observed]
    if isinstance(observed, dict):
        if names:
            missing = [n for n in names if n not in observed]
            extra = [n for n in observed if n not in names]
            if missing or extra:
                raise ConfigError(f"observed: the simulator's statistics are {', '.join(names)}"
                                  + (f"; missing {', '.join(missing)}" if missing else "")
                                  + (f"; unknown {', '.join(extra)}" if extra else ""))
            return [float(observed[n]) for n in names]
        return [float(v) for v in observed.values()]
    if observed.from_ not in REFERENCES:
        raise ConfigError(f"observed.from must be one of {', '.join(REFERENCES)}; got {observed.from_!r}")
    kwargs: dict[str, Any] = {"element": observed.element, "seed": observed.seed, "noise": observed.noise}
    for key in ("statistics", "temperature", "supercell"):
        if hasattr(simulator, key):
            kwargs[key] = getattr(simulator, key)
    return [float(v) for v in REFERENCES[observed.from_](**kwargs)]


def run(args: argparse.Namespace) -> int:
    from .._files import atomic_path
    from ..bayes import abc
    from ..bayes.priors import JointPrior

    config = load_abc_config(args.config, args.overrides)
    output = Path(args.output or config.output)
    workers = args.workers if getattr(args, "workers", None) is not None else config.workers
    scheduler = getattr(args, "scheduler", None) or config.scheduler
    progress = getattr(args, "progress", True)
    simulator = build_simulator(config.simulator, config.simulator_options)
    prior = JointPrior(config.priors)
    observed = observed_values(config, simulator)
    common = dict(simulator=simulator, prior=prior, observed=observed, distance=config.distance,
                  n_samples=config.n_samples, seed=config.seed, workers=workers, scheduler=scheduler,
                  processes=config.processes, progress=progress)
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if config.method == "smc":
        result = abc.smc(**common, **config.smc.model_dump(), checkpoint=output / "checkpoint.json",
                         resume=bool(getattr(args, "resume", False)))
    else:
        result = abc.rejection(**common, **config.rejection.model_dump())
    data = result.to_dict()
    data["statistic_names"] = list(getattr(simulator, "statistics", []) or [])
    data["config"] = config.model_dump(mode="json", by_alias=True)
    data["wall_time_this_invocation_s"] = time.perf_counter() - t0
    if config.regression_adjust:
        adjusted = abc.regression_adjust(result)
        data["regression_adjusted"] = {"summary": adjusted.summary(), "samples": adjusted.samples.tolist(),
                                       "weights": adjusted.weights.tolist()}
    with atomic_path(output / "posterior.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    abc.corner_plot(result, output / "posterior.png")
    print(f"{config.method}: {result.n_samples} samples from {result.n_simulations} simulations "
          f"({result.n_failed} failed) in {result.wall_time:.1f} s; final tolerance {result.tolerance:.4g}")
    for name, row in result.summary().items():
        print(f"  {name:>12s} = {row['mean']:.5g} ± {row['std']:.3g}   95% [{row['low']:.5g}, {row['high']:.5g}]")
    if config.regression_adjust:
        print("  regression-adjusted:")
        for name, row in data["regression_adjusted"]["summary"].items():
            print(f"  {name:>12s} = {row['mean']:.5g} ± {row['std']:.3g}   95% [{row['low']:.5g}, {row['high']:.5g}]")
    print(f"wrote {output / 'posterior.json'} and {output / 'posterior.png'}")
    return 0
