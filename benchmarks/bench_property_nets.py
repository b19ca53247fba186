"""Property networks: accuracy, calibration and fit time under a time budget.

Part ``expt_gap``: :class:`~ml4ms.properties.composition_net.CompositionAttentionNet` on
Matbench ``matbench_expt_gap`` (composition -> experimental band gap, eV), official
folds: train on the other four folds (10 % of them held out, seeded, for early stopping),
test on the fold. Leaderboard (mean MAE over the 5 folds, eV): Darwin 0.287, MODNet 0.333,
CrabNet 0.346, RF-SCM/Magpie 0.446, Dummy 1.144.

Part ``perov5``: :class:`~ml4ms.properties.crystal_graph.CrystalGraphNet` on all 7,572
perov_5 structures here (CDVAE's val + test files), formation energy ``info["heat_all"]``
in eV per 5-atom cell, 5-fold CV with a fixed seed (permutation by
``numpy.random.default_rng(2024)``). For context only (18,928 materials, another
protocol): Matbench perovskites CGCNN 0.045, ALIGNN 0.029, MODNet 0.091 eV/cell.

Both report the test MAE and RMSE, the fraction of test errors within 1 and 2 predicted
sigma (raw, and after :meth:`calibrate` on one half of the test fold, scored on the
other half and vice versa), the fit time and the epochs trained.

    python benchmarks/bench_property_nets.py --parts expt_gap --folds 0 --minutes 10
    python benchmarks/bench_property_nets.py --parts expt_gap,perov5 --folds 0,1,2,3,4 --minutes 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent
STORE = HERE / "property_nets.json"
sys.path.insert(0, str(HERE))

LEADERBOARD_EXPT_GAP = {"Darwin": 0.2865, "MODNet v0.1.12": 0.3327, "CrabNet": 0.3463, "RF-SCM/Magpie": 0.4461,
                        "Dummy": 1.1435}
PEROV5_SEED = 2024
COMPOSITION = {"d_model": 128, "n_heads": 4, "n_layers": 3, "readout_hidden": 256, "epochs": 400, "batch_size": 64,
               "lr": 1e-3, "patience": 60, "target_min": 0.0, "device": "cpu"}
GRAPH = {"cutoff": 5.0, "channels": 64, "n_layers": 3, "n_gaussians": 32, "readout_hidden": 128, "pooling": "sum",
         "epochs": 400, "batch_size": 32, "lr": 2e-3, "patience": 40, "device": "cpu"}


def coverage(errors: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    ratio = np.abs(errors) / sigma
    return {"within_1sigma": float(np.mean(ratio <= 1)), "within_2sigma": float(np.mean(ratio <= 2))}


def split_half_calibration(errors: np.ndarray, sigma: np.ndarray, seed: int) -> dict[str, float]:
    """Coverage after fitting the calibration factor on one half and scoring the other (both ways)."""
    from ml4ms.properties.base import calibration_factor

    order = np.random.default_rng(seed).permutation(len(errors))
    halves = [order[: len(order) // 2], order[len(order) // 2:]]
    scaled = np.empty_like(sigma)
    for fit_on, score_on in (halves, halves[::-1]):
        scaled[score_on] = sigma[score_on] * calibration_factor(errors[fit_on], sigma[fit_on])
    return coverage(errors, scaled)


def run_fold(model, X_train, y_train, X_test, y_test, fold: int) -> dict:
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    mean, sigma = model.predict(X_test, return_std=True)
    errors = y_test - mean
    row = {"fold": fold, "n_train": len(X_train), "n_test": len(X_test),
           "mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt(np.mean(errors**2))),
           "fit_s": round(fit_s, 1), "members": model.training_,
           "raw": coverage(errors, sigma), "calibrated_split_half": split_half_calibration(errors, sigma, fold)}
    print(f"  fold {fold}: MAE {row['mae']:.4f}  RMSE {row['rmse']:.4f}  fit {fit_s:.0f} s  "
          f"epochs {[m['epochs'] for m in model.training_]} ({[m['stopped'] for m in model.training_]})  "
          f"raw 1σ/2σ {row['raw']['within_1sigma']:.2f}/{row['raw']['within_2sigma']:.2f}  "
          f"calibrated {row['calibrated_split_half']['within_1sigma']:.2f}/"
          f"{row['calibrated_split_half']['within_2sigma']:.2f}", flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    return {"folds": [r["fold"] for r in rows], "mean_mae": float(np.mean([r["mae"] for r in rows])),
            "mean_rmse": float(np.mean([r["rmse"] for r in rows])),
            "mean_fit_s": float(np.mean([r["fit_s"] for r in rows])),
            "within_1sigma_raw": float(np.mean([r["raw"]["within_1sigma"] for r in rows])),
            "within_2sigma_raw": float(np.mean([r["raw"]["within_2sigma"] for r in rows])),
            "within_1sigma_calibrated": float(np.mean([r["calibrated_split_half"]["within_1sigma"] for r in rows])),
            "within_2sigma_calibrated": float(np.mean([r["calibrated_split_half"]["within_2sigma"] for r in rows]))}


def run_expt_gap(folds: list[int], minutes: float, members: int, threads: int, overrides: dict) -> dict:
    from ml4ms.data.datasets import load
    from ml4ms.properties.composition_net import CompositionAttentionNet

    table = load("matbench_expt_gap")
    X = np.array(table.compositions, dtype=object)
    settings = {**COMPOSITION, "n_models": members, "n_threads": threads,
                "train_options": {"time_limit_min": minutes / members}, **overrides}
    print(f"expt_gap: CompositionAttentionNet {settings}", flush=True)
    rows = []
    for fold in folds:
        train, test = table.split(fold)
        model = CompositionAttentionNet(**settings)
        rows.append(run_fold(model, list(X[train]), table.targets[train], list(X[test]), table.targets[test], fold))
    return {"model": "composition-net", "settings": settings, "minutes_per_fold": minutes, "rows": rows,
            "summary": summarise(rows), "leaderboard": LEADERBOARD_EXPT_GAP, "unit": "eV"}


def run_perov5(folds: list[int], minutes: float, members: int, threads: int, overrides: dict) -> dict:
    from ml4ms.data.datasets import load
    from ml4ms.properties.crystal_graph import CrystalGraphNet

    structures = load("perov_5", split="val") + load("perov_5", split="test")
    y = np.array([a.info["heat_all"] for a in structures])
    parts = np.array_split(np.random.default_rng(PEROV5_SEED).permutation(len(structures)), 5)
    settings = {**GRAPH, "n_models": members, "n_threads": threads,
                "train_options": {"time_limit_min": minutes / members}, **overrides}
    print(f"perov5: {len(structures)} structures; CrystalGraphNet {settings}", flush=True)
    rows = []
    for fold in folds:
        test = np.sort(parts[fold])
        train = np.sort(np.concatenate([parts[k] for k in range(5) if k != fold]))
        model = CrystalGraphNet(**settings)
        rows.append(run_fold(model, [structures[k] for k in train], y[train], [structures[k] for k in test],
                             y[test], fold))
    return {"model": "crystal-graph", "settings": settings, "minutes_per_fold": minutes, "rows": rows,
            "summary": summarise(rows), "n_structures": len(structures), "cv_seed": PEROV5_SEED,
            "unit": "eV/cell",
            "context_matbench_perovskites": {"coGN": 0.0269, "ALIGNN": 0.0288, "CGCNN v2019": 0.0452,
                                             "MODNet": 0.0908}}


def main() -> None:
    from _common import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="expt_gap,perov5")
    parser.add_argument("--folds", default="0", help="comma-separated folds (0-4)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per fold (all members)")
    parser.add_argument("--members", type=int, default=1, help="ensemble size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these sizes)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model setting, e.g. --set batch_size=64 (value parsed as YAML)")
    parser.add_argument("--store", type=Path, default=STORE,
                        help="JSON file the results are merged into (one per process when folds run in parallel)")
    parser.add_argument("--merge", type=Path, nargs="*", default=None,
                        help="merge the fold rows of these stores into --store instead of running")
    args = parser.parse_args()
    if args.merge is not None:
        merge(args.merge, args.store)
        return
    import yaml

    overrides = {"device": args.device}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    os.environ.setdefault("ML4MS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    folds = [int(f) for f in args.folds.split(",")]
    command = "python benchmarks/bench_property_nets.py " + " ".join(sys.argv[1:])
    for part, run in (("expt_gap", run_expt_gap), ("perov5", run_perov5)):
        if part in args.parts.split(","):
            result = run(folds, args.minutes, args.members, args.threads, overrides)
            result.update({"command": command, "machine": machine(), "threads": args.threads})
            store = json.loads(args.store.read_text()) if args.store.exists() else {}  # another run may have written
            store[part] = result
            s = result["summary"]
            print(f"{part}: mean MAE {s['mean_mae']:.4f} {result['unit']} over folds {s['folds']}, "
                  f"mean fit {s['mean_fit_s']:.0f} s", flush=True)
            write_store(store, args.store)


def write_store(store: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(store, indent=1))
    os.replace(tmp, path)


def merge(sources: list[Path], target: Path) -> None:
    """One entry per part whose rows are the union of the sources' folds (same settings)."""
    merged: dict = {}
    for source in sources:
        for part, result in json.loads(source.read_text()).items():
            if part not in merged:
                merged[part] = {**result, "rows": [], "command": []}
            elif result["settings"] != merged[part]["settings"]:
                raise SystemExit(f"{source}: {part} was run with other settings than the first store")
            merged[part]["rows"] += result["rows"]
            merged[part]["command"].append(result["command"])
    store = json.loads(target.read_text()) if target.exists() else {}
    for part, result in merged.items():
        result["rows"].sort(key=lambda row: row["fold"])
        result["summary"] = summarise(result["rows"])
        store[part] = result
        s = result["summary"]
        print(f"{part}: mean MAE {s['mean_mae']:.4f} {result['unit']} over folds {s['folds']}")
    write_store(store, target)


if __name__ == "__main__":
    main()
