"""``ml4ms fit`` and ``ml4ms eval``: fit a potential from a YAML configuration; evaluate any model."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

# Model families ``ml4ms fit`` can build, by the ``model.type`` of the configuration.
MODEL_TYPES = {
    "linear_pair": ("ml4ms.models.linear_pair", "LinearPairPotential"),
    "linear": ("ml4ms.models.linear", "LinearPotential"),
    "gap": ("ml4ms.models.gap", "SparseGPPotential"),
    "bpnn": ("ml4ms.models.bpnn", "AtomicNeuralNetwork"),
    "mpnn": ("ml4ms.models.mpnn", "EquivariantMPNN"),
}
# Settings of the fit: section that only closed-form fits use.
_CLOSED_FORM_ONLY = ("alpha", "pair_alpha", "group_sigmas", "search", "batch_size")


def register(commands) -> None:
    fit = commands.add_parser(
        "fit", help="fit a potential from a YAML configuration",
        description="Fit a potential to the energies, forces and stresses of the configured data; "
        "write the model file, the resolved configuration, test metrics (JSON) and parity plots next to it.",
    )
    fit.add_argument("config", metavar="CONFIG.yaml", help="fit configuration (see examples/)")
    fit.add_argument("--output", help="model file to write (overrides output:)")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a configuration value by its dotted key, e.g. fit.alpha=1e-8")
    fit.add_argument("--resume", action="store_true",
                     help="continue an interrupted training run from its checkpoints (neural networks)")
    fit.set_defaults(func=run_fit)

    evaluate = commands.add_parser(
        "eval", help="errors of a model on labelled structures",
        description="Print (and with --json write) MAE and RMSE of energies (meV/atom), forces (eV/Å) "
        "and stresses (GPa), overall and per structure group. For models that predict uncertainties "
        "(GP, Bayesian ridge), also the calibration of the predicted energy standard deviations.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file")
    evaluate.add_argument("data", metavar="DATA", help="a file or a dataset spec such as mlearn:Cu:test")
    evaluate.add_argument("--json", metavar="OUT", help="write the metrics as JSON")
    evaluate.add_argument("--plot", metavar="PNG",
                          help="write parity plots, and for models with uncertainties an error-vs-sigma "
                          "plot beside them (STEM.uncertainty.png)")
    evaluate.add_argument("--no-uncertainty", dest="uncertainty", action="store_false",
                          help="skip the uncertainty metrics of models that predict them")
    evaluate.add_argument("--energy-key", default="energy")
    evaluate.add_argument("--forces-key", default="forces")
    evaluate.add_argument("--stress-key", default="stress")
    evaluate.set_defaults(func=run_eval)


def build_model(model_config, species: list[int], seed: int | None = None):
    """The model a configuration names, for the given elements.

    ``model.preset`` (small, medium, large for the neural networks) supplies defaults that
    the section's other keys override; ``seed`` sets the initial weights of models that
    take one.
    """
    import importlib

    from ..config import construct
    from ..errors import ConfigError

    kind = model_config.type
    if kind not in MODEL_TYPES:
        raise ConfigError(f"model.type must be one of {', '.join(MODEL_TYPES)}; got {kind!r}")
    module_name, name = MODEL_TYPES[kind]
    module = importlib.import_module(module_name)
    cls = getattr(module, name)
    arguments = model_config.arguments()
    preset = arguments.pop("preset", None)
    if preset is not None:
        presets = getattr(module, "PRESETS", {})
        if preset not in presets:
            raise ConfigError(f"model.preset must be one of {', '.join(presets) or 'none'} for type {kind}; "
                              f"got {preset!r}")
        arguments = {**presets[preset], **arguments}
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        arguments["seed"] = seed
    return construct(cls, arguments, section="model", what=f"type {kind}", species=species)


def fit_arguments(model, fit_config, validation, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of ``model.fit`` from the ``fit:`` section; settings the model's fit
    does not take are an error, not silently ignored."""
    from ..errors import ConfigError

    values = fit_config.model_dump(exclude_unset=False)
    if values.get("alpha") is None:  # the model's own default
        values.pop("alpha")
    values["validation"] = validation
    accepted = inspect.signature(model.fit).parameters
    defaults = type(fit_config)().model_dump()
    defaults["validation"] = None
    out = {}
    if "seed" in accepted:
        out_seed = {"seed": seed}
    else:
        out_seed = {}
    for key, value in values.items():
        if key in accepted:
            out[key] = value
        elif value != defaults.get(key):
            raise ConfigError(f"fit.{key} is not supported by {type(model).__name__}; "
                              f"it takes: {', '.join(k for k in accepted if k not in ('data', 'progress'))}")
    return {**out, **out_seed}


def format_metrics(metrics: dict[str, Any]) -> str:
    """A table of errors, overall and per group, and a line on the uncertainties if any."""

    def cells(m):
        out = []
        for key, fmt in (("energy", "{:10.3f}"), ("forces", "{:10.4f}"), ("stress", "{:10.3f}")):
            value = m.get(key)
            out.append(fmt.format(value["mae"]) + fmt.format(value["rmse"]) if value else f"{'-':>10}{'-':>10}")
        return "".join(out)

    lines = [f"{'':<14}{'n':>6}{'E MAE':>10}{'E RMSE':>10}{'F MAE':>10}{'F RMSE':>10}{'S MAE':>10}{'S RMSE':>10}",
             f"{'':<14}{'':>6}{'(meV/atom)':>20}{'(eV/Å)':>20}{'(GPa)':>20}",
             f"{'all':<14}{metrics['n_structures']:>6}{cells(metrics)}"]
    for group, m in metrics.get("by_group", {}).items():
        lines.append(f"{group[:14]:<14}{m['n_structures']:>6}{cells(m)}")
    u = metrics.get("uncertainty")
    if u is not None:  # one calibration line, for all structures; the groups are in the JSON
        if not u["n"]:
            lines.append("uncertainty: no structure with an energy label")
        else:
            def show(value, fmt):
                return "-" if value is None else fmt.format(value)

            lines.append(
                f"uncertainty (E/atom, n={u['n']}): within 1σ {show(u['within_1sigma'], '{:.1%}')} "
                f"(ideal {u['expected_within_1sigma']:.1%}), 2σ {show(u['within_2sigma'], '{:.1%}')} "
                f"({u['expected_within_2sigma']:.1%}); RMSE/RMS σ {show(u['rmse_over_rms_sigma'], '{:.2f}')}; "
                f"mean σ {show(u['mean_sigma'], '{:.3g}')} meV/atom; Spearman {show(u['spearman'], '{:.2f}')}")
    return "\n".join(lines)


def run_fit(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    import yaml

    from ..config import load_fit_config
    from ..data.dataset import AtomsDataset
    from ..data.sources import read_structures
    from ..models import predict
    from ..report import atomic_write_text, parity_plot, write_json
    from ..serialization import save
    from ..training.metrics import error_metrics

    config = load_fit_config(args.config, args.overrides)
    output = Path(args.output or config.output)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    keys = {"energy_key": config.data.energy_key, "forces_key": config.data.forces_key,
            "stress_key": config.data.stress_key}
    print(f"reading {config.data.train}", flush=True)
    train = AtomsDataset(read_structures(config.data.train, **keys), source=config.data.train,
                         require=("energy",))
    _, species = train.composition_matrix()
    model = build_model(config.model, species, seed=config.seed)
    print(f"fitting {type(model).__name__} to {len(train)} structures "
          f"({sum(len(a) for a in train)} atoms)", flush=True)
    validation = config.data.validation
    if isinstance(validation, str):
        validation = AtomsDataset(read_structures(validation, **keys), source=validation, require=("energy",))
    if hasattr(model, "fit"):  # closed form
        model.fit(train, **fit_arguments(model, config.fit, validation, config.seed), progress=True)
        fit_info = getattr(model, "fit_info", None)
    else:
        model, fit_info = _train(config, species, train, validation, output, args.resume)
    metrics: dict[str, Any] = {"train": error_metrics(train.images, predict(model, train.images))}
    if fit_info:
        metrics["fit"] = fit_info
        if "chosen" in fit_info:
            print("chosen on validation: " + ", ".join(f"{k}={v}" for k, v in fit_info["chosen"].items()))
    stem = output.with_suffix("")
    if config.data.test:
        test = read_structures(config.data.test, **keys)
        predictions = predict(model, test)
        metrics["test"] = error_metrics(test, predictions)
        parity_plot(test, predictions, f"{stem}.parity.png")
        print(format_metrics(metrics["test"]))
    resolved = config.model_dump()
    save(model, output, metrics=metrics, training_data_hash=train.hash(), extra={"config": resolved})
    atomic_write_text(f"{stem}.config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    write_json(f"{stem}.metrics.json", metrics)
    print(f"wrote {output}, {stem}.config.yaml, {stem}.metrics.json"
          + (f", {stem}.parity.png" if config.data.test else ""))
    return 0


def _train(config, species, train, validation, output: Path, resume: bool):
    """Gradient training (a single model or a committee) as the configuration says;
    checkpoints and the metrics log go to ``<output stem>.train/``."""
    from ..errors import ConfigError
    from ..keys import GROUP
    from ..training import LossWeights, train_committee

    defaults = type(config.fit)()
    changed = [k for k in _CLOSED_FORM_ONLY if getattr(config.fit, k) != getattr(defaults, k)]
    if changed:
        raise ConfigError(f"fit.{changed[0]} applies to closed-form fits only; gradient training of "
                          f"model.type {config.model.type} is set in the train: section")
    if validation is None or isinstance(validation, float):
        fraction = 0.1 if validation is None else validation
        if not 0 < fraction < 1:
            raise ConfigError(f"data.validation must be a fraction in (0, 1), got {fraction}")
        train, validation = train.split([1 - fraction, fraction], seed=config.seed, stratify=GROUP)
        print(f"holding out {len(validation)} of the training structures for validation "
              f"(data.validation: {fraction})", flush=True)
    weights = LossWeights(config.fit.energy_sigma, config.fit.force_sigma, config.fit.stress_sigma)
    directory = output.with_suffix(".train")
    print(f"training on {len(train)} structures, checkpoints and metrics log in {directory}/", flush=True)
    model, results = train_committee(
        lambda seed: build_model(config.model, species, seed=seed), config.committee.size, train, validation,
        config=config.train, weights=weights, seed=config.seed, bootstrap=config.committee.bootstrap,
        directory=directory, resume=resume, progress=True)
    info = {"members": [{"epochs": len(r.history), "best_epoch": r.best_epoch, "stopped": r.stopped,
                         "steps": r.steps, "wall_s": round(r.wall_s, 2),
                         "structures_per_second": round(r.structures_per_second, 2),
                         "best_validation": r.best_validation} for r in results],
            "n_train": len(train), "n_validation": len(validation), "directory": str(directory)}
    if config.committee.size > 1:
        info["uncertainty_scale"] = float(model.uncertainty_scale)
    if any(r.stopped == "time_limit" for r in results):
        print(f"stopped at the time limit: `ml4ms fit ... --resume` continues from {directory}/", flush=True)
    return model, info


def run_eval(args: argparse.Namespace) -> int:
    from ..data.sources import read_structures
    from ..models import predict
    from ..report import parity_plot, uncertainty_plot, write_json
    from ..serialization import load
    from ..training.metrics import error_metrics

    model = load(args.model)
    images = read_structures(args.data, energy_key=args.energy_key, forces_key=args.forces_key,
                             stress_key=args.stress_key)
    # None: uncertainties whenever the model predicts them; --no-uncertainty: never.
    predictions = predict(model, images, progress=len(images) > 200,
                          uncertainty=None if args.uncertainty else False)
    metrics = error_metrics(images, predictions)
    print(format_metrics(metrics))
    if args.json:
        write_json(args.json, metrics)
        print(f"wrote {args.json}")
    if args.plot:
        parity_plot(images, predictions, args.plot)
        print(f"wrote {args.plot}")
        if metrics.get("uncertainty", {}).get("n"):
            path = f"{Path(args.plot).with_suffix('')}.uncertainty.png"
            uncertainty_plot(images, predictions, path)
            print(f"wrote {path}")
    return 0
