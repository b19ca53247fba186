"""``ml4ms property fit|eval|predict|screen``: materials-property models from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def register(commands) -> None:
    parser = commands.add_parser(
        "property", help="property prediction from composition or structure: fit, eval, predict, screen",
        description="Fit, evaluate and use models that predict a materials property (e.g. a band gap or a "
        "formation energy) from a composition or a structure, with an uncertainty.",
    )
    sub = parser.add_subparsers(dest="property_command", metavar="ACTION", required=True)

    fit = sub.add_parser("fit", help="cross-validate, calibrate and fit a model from a YAML configuration",
                         description="Cross-validate (official or k folds), calibrate the uncertainty on the "
                         "out-of-fold errors, fit on all rows, and write the model file with metrics.json, "
                         "predictions.csv, parity, error-vs-sigma and importance plots and report.html beside it.")
    fit.add_argument("config", metavar="CONFIG.yaml")
    fit.add_argument("--output", help="model file (overrides `output`)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a configuration key, e.g. --set cv.max_folds=1 (repeatable)")
    fit.set_defaults(func=run_fit)

    ev = sub.add_parser("eval", help="MAE, RMSE, R² and calibration of a model on labelled data")
    ev.add_argument("model", metavar="MODEL")
    ev.add_argument("data", metavar="DATA", help="dataset name, CSV file or structure file with targets")
    ev.add_argument("--target", help="target column (default: the one the model was fitted to)")
    ev.add_argument("--json", metavar="OUT", help="write the metrics as JSON")
    ev.set_defaults(func=run_eval)

    pr = sub.add_parser("predict", help="predictions with sigma for compositions or structures")
    pr.add_argument("model", metavar="MODEL")
    pr.add_argument("input", metavar="INPUT", help="CSV (composition/formula or cif column), folder of CIFs, "
                    "or structure file")
    pr.add_argument("--output", default="predictions.csv", help="CSV with id, input, prediction, sigma")
    pr.set_defaults(func=run_predict)

    sc = sub.add_parser("screen", help="rank candidates by predicted value and uncertainty",
                        description="Rank the candidates of INPUT by an acquisition function of the "
                        "prediction and its sigma: expected improvement (ei), an optimistic bound (ucb), the "
                        "prediction alone (mean), or the probability of lying near a target value (target).")
    sc.add_argument("model", metavar="MODEL")
    sc.add_argument("input", metavar="INPUT")
    sc.add_argument("--acquisition", choices=("ei", "ucb", "mean", "target"), default="ei")
    direction = sc.add_mutually_exclusive_group()
    direction.add_argument("--maximize", dest="maximize", action="store_true", default=True)
    direction.add_argument("--minimize", dest="maximize", action="store_false")
    sc.add_argument("--best", type=float, help="value to improve on for ei (default: best prediction)")
    sc.add_argument("--target-value", type=float, help="desired value, for --acquisition target")
    sc.add_argument("--kappa", type=float, default=2.0,
                    help="ucb: sigmas of optimism; target: half-width of the accepted window")
    sc.add_argument("--top", type=int, default=20, help="rows to print (all are written)")
    sc.add_argument("--output", default="screen.csv")
    sc.set_defaults(func=run_screen)


def run_fit(args: argparse.Namespace) -> int:
    from ..config import load_fit_config
    from ..properties.workflow import PropertyRunConfig, run_property_fit

    overrides = list(args.set) + ([f"output={args.output}"] if args.output else [])
    config = load_fit_config(args.config, overrides, schema=PropertyRunConfig)
    run_property_fit(config)
    return 0


def _load(model_path: str, data_path: str, *, target: str | None, require_targets: bool):
    from ..errors import ConfigError
    from ..properties.data import load_property_data
    from ..properties.files import load_property_model

    model = load_property_model(model_path)
    header = model.file_header_
    data = load_property_data(data_path, target=target or (header.get("target") if require_targets else None),
                              require_targets=require_targets)
    if model.input_kind == "structure" and data.input_kind != "structure":
        raise ConfigError(f"{model_path} predicts from structures, but {data_path} holds only compositions "
                          f"(columns: {', '.join(data.columns) or 'n/a'})")
    return model, data


def run_eval(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..properties.evaluation import classification_metrics, regression_metrics
    from ..report import write_json

    model, data = _load(args.model, args.data, target=args.target, require_targets=True)
    if data.targets is None:
        raise ConfigError(f"{args.data}: no targets to evaluate against")
    mean, sigma = model.predict(data.inputs, return_std=True)
    metrics = regression_metrics(data.targets, mean, sigma)
    metrics.update(target=data.target, unit=model.file_header_.get("unit"), source=str(args.data))
    if getattr(model, "classifier_", None) is not None:
        metrics["classification"] = classification_metrics(data.targets != 0.0, 1.0 - model.zero_probability(data.inputs))
    unit = metrics["unit"] or ""
    print(f"{metrics['n']} rows: MAE {metrics['mae']:.4g} {unit}, RMSE {metrics['rmse']:.4g} {unit}, "
          f"R² {metrics['r2'] if metrics['r2'] is None else round(metrics['r2'], 4)}")
    cal = metrics["calibration"]
    print(f"uncertainty: {cal['within_1sigma']:.0%} within 1σ (68% expected), "
          f"{cal['within_2sigma']:.0%} within 2σ (95%)")
    if "classification" in metrics:
        print(f"zero / non-zero: ROC-AUC {metrics['classification']['roc_auc']:.3f}")
    if args.json:
        write_json(args.json, metrics)
    return 0


def _predict_rows(args: argparse.Namespace):
    model, data = _load(args.model, args.input, target=None, require_targets=False)
    mean, sigma = model.predict(data.inputs, return_std=True)
    labels = [x if isinstance(x, str) else x.get_chemical_formula() for x in data.inputs]
    return model, data, labels, mean, sigma


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    import csv
    import io

    from ..report import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def run_predict(args: argparse.Namespace) -> int:
    model, data, labels, mean, sigma = _predict_rows(args)
    rows = [[data.ids[k], labels[k], repr(float(mean[k])), repr(float(sigma[k]))] for k in range(len(data))]
    _write_csv(args.output, ["id", "input", "prediction", "sigma"], rows)
    unit = model.file_header_.get("unit") or ""
    print(f"wrote {len(rows)} predictions of {model.file_header_.get('target')} ({unit}) to {args.output}")
    return 0


def run_screen(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..properties.evaluation import screening_scores

    if args.acquisition == "target" and args.target_value is None:
        raise ConfigError("--acquisition target needs --target-value")
    model, data, labels, mean, sigma = _predict_rows(args)
    scores = screening_scores(mean, sigma, acquisition=args.acquisition, best=args.best,
                              maximize=args.maximize, kappa=args.kappa, target=args.target_value)
    order = np.argsort(-scores, kind="stable")
    rows = [[rank + 1, data.ids[k], labels[k], repr(float(mean[k])), repr(float(sigma[k])), repr(float(scores[k]))]
            for rank, k in enumerate(order)]
    _write_csv(args.output, ["rank", "id", "input", "prediction", "sigma", "score"], rows)
    print(f"{'rank':>4}  {'input':<24} {'prediction':>11} {'sigma':>8} {'score':>10}")
    for row in rows[: args.top]:
        print(f"{row[0]:>4}  {row[2]:<24} {float(row[3]):>11.4g} {float(row[4]):>8.3g} {float(row[5]):>10.4g}")
    print(f"wrote {len(rows)} ranked candidates to {Path(args.output)}")
    return 0
