"""``ml4ms property fit``: cross-validate a property model, calibrate it, fit it on all
the data, and write the model file with a report.

The protocol:

1. Read the data (:func:`~ml4ms.properties.data.load_property_data`).
2. Cross-validate: the dataset's official folds (``cv.folds: official``, e.g.
   Matbench's) or k shuffled folds under ``cv.seed``. Every row gets an out-of-fold
   prediction with its raw sigma.
3. Calibrate: one factor scales sigma so that the out-of-fold errors have unit variance
   in sigma units. The calibration reported for fold k uses the factor fitted on the
   other folds, so it is measured on data the factor did not see.
4. Fit the final model on all rows, give it the factor, and save it with the metrics.
5. Report: ``metrics.json``, ``predictions.csv`` (out-of-fold), parity and
   error-vs-sigma plots, permutation importance of the features (tabular models), and
   ``report.html``.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import clone
from tqdm.auto import tqdm

from ..config import construct
from ..errors import ConfigError
from .base import PropertyModel, calibration_factor, property_model_class
from .data import PropertyData, load_property_data
from .evaluation import classification_metrics, permutation_importance, regression_metrics


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertyDataConfig(_Strict):
    source: str = Field(description="dataset name (matbench_expt_gap, perov_5), CSV file or structure file")
    target: str | None = Field(None, description="target column / info key (default: the dataset's)")


class PropertyModelConfig(BaseModel):
    """``type`` picks the model (tabular, composition-net, crystal-graph); the other keys
    go to its constructor."""

    model_config = ConfigDict(extra="allow")
    type: str = "tabular"

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CVConfig(_Strict):
    folds: int | Literal["official", "none"] = Field(
        "official", description="'official' (the dataset's folds, else 5), an integer k, or 'none'")
    seed: int = 0
    max_folds: int | None = Field(None, ge=1, description="run only the first folds (quick checks)")


class ImportanceConfig(_Strict):
    enabled: bool = True
    n_repeats: int = Field(3, ge=1)
    top: int = Field(20, ge=1)


class PropertyRunConfig(_Strict):
    data: PropertyDataConfig
    model: PropertyModelConfig = PropertyModelConfig()
    cv: CVConfig = CVConfig()
    importance: ImportanceConfig = ImportanceConfig()
    output: str = Field("runs/property/model.ml4ms", description="model file; the report goes beside it")


def build_property_model(config: PropertyModelConfig) -> PropertyModel:
    """The model a configuration names, with its arguments checked."""
    cls = property_model_class(config.type)
    return construct(cls, config.arguments(), section="model", what=f"model type {config.type!r}")


def fold_assignment(data: PropertyData, cv: CVConfig) -> np.ndarray | None:
    """(n,) test-fold index of every row, or None for ``folds: none``."""
    if cv.folds == "none":
        return None
    if cv.folds == "official" and data.folds is not None:
        return np.asarray(data.folds, int)
    k = 5 if cv.folds == "official" else int(cv.folds)
    if not 2 <= k <= len(data):
        raise ConfigError(f"cv.folds: need 2 <= k <= {len(data)} rows, got {k}")
    order = np.random.default_rng(cv.seed).permutation(len(data))
    folds = np.empty(len(data), int)
    folds[order] = np.arange(len(data)) % k
    return folds


def cross_validate(model: PropertyModel, data: PropertyData, folds: np.ndarray, *,
                   max_folds: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Out-of-fold predictions of clones of ``model``.

    Returns
    -------
    dict
        ``rows`` (indices predicted), ``mean`` and ``raw_sigma`` (per row), ``fold`` (per
        row), ``fit_s`` (per fold), ``zero_probability`` (per row, zero-inflated models),
        and ``first_model`` (the fold-0 model, for feature importance).
    """
    if data.targets is None:
        raise ConfigError(f"{data.source}: cross-validation needs targets")
    n_folds = int(folds.max()) + 1
    run = list(range(n_folds if max_folds is None else min(max_folds, n_folds)))
    rows, means, sigmas, fold_of, fit_s, zero_p = [], [], [], [], [], []
    first = None
    bar = tqdm(run, desc="cross-validation", unit="fold", disable=not progress)
    for k in bar:
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        member = clone(model)
        start = time.perf_counter()
        member.fit([data.inputs[i] for i in train], data.targets[train])
        fit_s.append(time.perf_counter() - start)
        inputs = [data.inputs[i] for i in test]
        mean, sigma = member._predict(inputs)
        rows.append(test)
        means.append(mean)
        sigmas.append(sigma)
        fold_of.append(np.full(len(test), k))
        if getattr(member, "classifier_", None) is not None:
            zero_p.append(member.zero_probability(inputs))
        bar.set_postfix(mae=f"{np.mean(np.abs(mean - data.targets[test])):.4g}")
        if first is None:
            first = (member, test)
    out = {
        "rows": np.concatenate(rows), "mean": np.concatenate(means), "raw_sigma": np.concatenate(sigmas),
        "fold": np.concatenate(fold_of), "fit_s": fit_s, "first_model": first,
    }
    if len(zero_p) == len(run):
        out["zero_probability"] = np.concatenate(zero_p)
    return out


def summarize_cv(cv: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    """Per-fold and overall metrics, with sigma calibrated on the other folds."""
    rows, fold = cv["rows"], cv["fold"]
    y = y[rows]
    mean, raw = cv["mean"], cv["raw_sigma"]
    sigma = np.empty_like(raw)
    folds = np.unique(fold)
    for k in folds:
        inside, outside = fold == k, fold != k
        scale = calibration_factor(y[outside] - mean[outside], raw[outside]) if outside.any() else 1.0
        sigma[inside] = raw[inside] * scale
    per_fold = []
    for k in folds:
        part = fold == k
        metrics = regression_metrics(y[part], mean[part], sigma[part])
        metrics["fold"] = int(k)
        metrics["fit_s"] = float(cv["fit_s"][int(np.flatnonzero(folds == k)[0])])
        per_fold.append(metrics)
    overall = regression_metrics(y, mean, sigma)
    overall["mae_mean_over_folds"] = float(np.mean([m["mae"] for m in per_fold]))
    overall["mae_std_over_folds"] = float(np.std([m["mae"] for m in per_fold]))
    summary = {"overall": overall, "folds": per_fold,
               "calibration_scale": calibration_factor(y - mean, raw),
               "fit_s_per_fold": float(np.mean(cv["fit_s"]))}
    if "zero_probability" in cv:
        # positive class: a non-zero target (e.g. a non-metal for band gaps)
        summary["classification"] = classification_metrics(y != 0.0, 1.0 - cv["zero_probability"])
        summary["classification"]["positive"] = "target != 0"
    cv["sigma"] = sigma
    return summary


def run_property_fit(config: PropertyRunConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole protocol of the module docstring; returns the metrics written."""
    from .files import save_property_model
    from .plots import error_sigma_plot, importance_plot, parity_plot

    output = Path(config.output)
    report_dir = output.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    data = load_property_data(config.data.source, target=config.data.target)
    model = build_property_model(config.model)
    if model.input_kind == "structure" and data.input_kind != "structure":
        raise ConfigError(f"model {config.model.type!r} needs structures; {data.source} holds compositions")
    print(f"{len(data)} rows of {data.source}, target {data.target} ({data.unit or 'no unit'})")
    metrics: dict[str, Any] = {"source": data.source, "target": data.target, "unit": data.unit,
                               "n": len(data), "model": config.model.type}
    sections: list[tuple[str, Any, str | None]] = []
    scale = 1.0
    folds = fold_assignment(data, config.cv)
    if folds is not None:
        cv = cross_validate(model, data, folds, max_folds=config.cv.max_folds, progress=progress)
        summary = summarize_cv(cv, data.targets)
        scale = summary["calibration_scale"]
        metrics["cv"] = summary
        metrics["cv"]["protocol"] = {"folds": config.cv.folds, "seed": config.cv.seed,
                                     "n_folds": int(folds.max()) + 1, "folds_run": len(cv["fit_s"])}
        y = data.targets[cv["rows"]]
        _write_predictions(report_dir / "predictions.csv", [data.ids[i] for i in cv["rows"]], y,
                           cv["mean"], cv["sigma"], cv["fold"])
        unit = data.unit or ""
        parity_plot(y, cv["mean"], report_dir / "parity.png", label=f"{data.target} ({unit})")
        error_sigma_plot(y, cv["mean"], cv["sigma"], report_dir / "error_vs_sigma.png", unit=unit)
        o = summary["overall"]
        print(f"cross-validation ({len(cv['fit_s'])} folds): MAE {o['mae']:.4g} {unit}, "
              f"RMSE {o['rmse']:.4g}, R² {o['r2']:.3f}; within 1σ "
              f"{o['calibration']['within_1sigma']:.0%}, 2σ {o['calibration']['within_2sigma']:.0%}")
        sections += [("Cross-validation", _flat(o), "parity.png"),
                     ("Uncertainty", _flat(o["calibration"]), "error_vs_sigma.png")]
        if "classification" in summary:
            sections.append(("Zero / non-zero classification", _flat(summary["classification"]), None))
        member, test = cv["first_model"]
        if config.importance.enabled and hasattr(member, "features_of"):
            F = member.features_of([data.inputs[i] for i in test])
            importance = permutation_importance(
                lambda G: member._predict_features(G)[0], F, data.targets[test],
                member.featurizer_.get_feature_names_out(), n_repeats=config.importance.n_repeats,
                top=config.importance.top, seed=config.cv.seed)
            metrics["importance"] = importance
            importance_plot(importance, report_dir / "importance.png", unit=unit)
            sections.append(("Permutation importance (fold 0)",
                             {r["feature"]: f"{r['importance']:.4g} ± {r['std']:.2g}" for r in importance},
                             "importance.png"))
    print("fitting the final model on all rows")
    start = time.perf_counter()
    model.fit(data.inputs, data.targets)
    model.uncertainty_scale_ = scale
    metrics["final_fit_s"] = time.perf_counter() - start
    save_property_model(model, output, target=data.target, unit=data.unit, metrics=metrics,
                        extra={"config": config.model_dump(mode="json")})
    from ..report import html_report, write_json

    write_json(report_dir / "metrics.json", metrics)
    html_report(report_dir / "report.html", f"{config.model.type} on {data.source}: {data.target}",
                sections or [("Model", {"rows": len(data)}, None)])
    print(f"wrote {output}, {report_dir / 'metrics.json'} and {report_dir / 'report.html'}")
    return metrics


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in d.items() if not isinstance(v, (dict, list))}


def _write_predictions(path: Path, ids, y, mean, sigma, fold=None) -> None:
    from ..report import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["id", "target", "prediction", "sigma"] + (["fold"] if fold is not None else [])
    writer.writerow(header)
    for k in range(len(ids)):
        row = [ids[k], "" if y is None else repr(float(y[k])), repr(float(mean[k])), repr(float(sigma[k]))]
        writer.writerow(row + ([int(fold[k])] if fold is not None else []))
    atomic_write_text(path, buffer.getvalue())
