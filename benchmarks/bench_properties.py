"""Property prediction, tabular route: matbench_expt_gap (official folds) and perov_5 (5 folds).

For each benchmark: MAE per fold and overall, R², calibration of sigma (fraction within
1 and 2 sigma; the factor is fitted on the other folds), the metal / non-metal ROC-AUC
for band gaps, and the time to featurise and to fit on this machine.

    python benchmarks/bench_properties.py [--parts expt_gap,perov5] [--folds K] [--threads N]

Writes benchmarks/properties.json and the section "Property prediction (tabular route)"
of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here))
os.environ.setdefault("ML4MS_DATA_DIR", str((here.parent.parent / "shared" / "data").resolve()))

from _common import machine, pin_threads, write_section  # noqa: E402

LEADERBOARD = "Darwin 0.287 (record), MODNet 0.333, CrabNet 0.346, random forest 0.446, mean baseline 1.144"


def run(source: str, model_args: dict, folds, max_folds: int | None) -> dict:
    from ml4ms.properties.data import load_property_data
    from ml4ms.properties.features import MaterialFeaturizer
    from ml4ms.properties.tabular import TabularRegressor
    from ml4ms.properties.workflow import CVConfig, cross_validate, fold_assignment, summarize_cv

    data = load_property_data(source)
    start = time.perf_counter()
    MaterialFeaturizer(**model_args["features"]).fit(data.inputs).transform(data.inputs)
    featurize_s = time.perf_counter() - start
    model = TabularRegressor(**model_args)
    assignment = fold_assignment(data, CVConfig(folds=folds, seed=0))
    cv = cross_validate(model, data, assignment, max_folds=max_folds)
    summary = summarize_cv(cv, data.targets)
    summary["featurize_s"] = featurize_s
    summary["n"] = len(data)
    summary["model"] = model_args
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="expt_gap,perov5")
    parser.add_argument("--folds", type=int, default=None, help="run only the first K folds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TabularRegressor setting, e.g. --set loss=absolute_error (YAML value)")
    args = parser.parse_args()
    import yaml

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    pin_threads(args.threads)
    out_file = here / "properties.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    parts = args.parts.split(",")
    if "expt_gap" in parts:
        features = {"blocks": ["magpie", "fractions", "stoichiometry", "valence"], "properties": "all"}
        results["expt_gap"] = run("matbench_expt_gap", {"features": features, "estimator": "gbm", **overrides},
                                  "official", args.folds)
    if "perov5" in parts:
        features = {"blocks": ["magpie", "fractions", "stoichiometry", "valence", "structure", "local_difference", "soap"],
                    "properties": "all"}
        results["perov5"] = run("perov_5", {"features": features, "estimator": "gbm", "zero_inflated": False,
                                            "max_iter": 1500, **overrides}, 5, args.folds)
    results["machine"] = machine()
    results["threads"] = args.threads
    out_file.write_text(json.dumps(results, indent=2, default=float) + "\n")

    lines = [f"Machine: {results['machine']}, {args.threads} threads. "
             "`python benchmarks/bench_properties.py`; sigma calibrated on the other folds.", "",
             "| benchmark | folds | MAE | MAE per fold | R² | within 1σ / 2σ | ROC-AUC (gap > 0) | featurise | fit per fold |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, unit in (("expt_gap", "eV"), ("perov5", "eV/cell")):
        r = results.get(name)
        if not r:
            continue
        o = r["overall"]
        per_fold = ", ".join(f"{f['mae']:.3f}" for f in r["folds"])
        auc = r.get("classification", {}).get("roc_auc")
        cal = o["calibration"]
        lines.append(f"| {name} | {len(r['folds'])} | {o['mae_mean_over_folds']:.3f} {unit} | {per_fold} | "
                     f"{o['r2']:.3f} | {cal['within_1sigma']:.0%} / {cal['within_2sigma']:.0%} | "
                     f"{'' if auc is None else f'{auc:.3f}'} | {r['featurize_s']:.1f} s | {r['fit_s_per_fold']:.0f} s |")
    lines += ["", f"matbench_expt_gap leaderboard (MAE, eV): {LEADERBOARD}. Targets: tabular < 0.40, best < 0.30.",
              "perov_5 target for the graph route: < 0.05 eV/cell (see the property-network section)."]
    body = "\n".join(lines)
    print(body)
    write_section("Property prediction (tabular route)", body)


if __name__ == "__main__":
    main()
