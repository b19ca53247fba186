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
}


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


def build_model(model_config, species: list[int]):
    """The model a configuration names, for the given elements."""
    import importlib

    from ..config import construct
    from ..errors import ConfigError

    kind = model_config.type
    if kind not in MODEL_TYPES:
        raise ConfigError(f"model.type must be one of {', '.join(MODEL_TYPES)}; got {kind!r}")
    module, name = MODEL_TYPES[kind]
    cls = getattr(importlib.import_module(module), name)
    return construct(cls, model_config.arguments(), section="model", what=f"type {kind}", species=species)


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
    model = build_model(config.model, species)
    print(f"fitting {type(model).__name__} to {len(train)} structures "
          f"({sum(len(a) for a in train)} atoms)", flush=True)
    validation = config.data.validation
    if isinstance(validation, str):
        validation = AtomsDataset(read_structures(validation, **keys), source=validation, require=("energy",))
    model.fit(train, **fit_arguments(model, config.fit, validation, config.seed), progress=True)
    metrics: dict[str, Any] = {"train": error_metrics(train.images, predict(model, train.images))}
    fit_info = getattr(model, "fit_info", None)
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
