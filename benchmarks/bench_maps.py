"""Maps of chemical space: cost of PCA, SOAP kernel PCA and the autoencoder, beside scikit-learn.

Data: the mlearn Cu and Si sets (training + test: 532 structures; test only: 4,703 atomic
environments), SOAP with species [Cu, Si], r_cut 5 Å, n_max 6, l_max 4, periodic (390
features).

Part ``cost`` (one thread, median of alternated repeats): fit + transform of the training
rows for ``PCAMap``, ``SOAPKernelPCA`` (zeta = 2; default arpack solver, and the dense
solver for the 532 structures) and scikit-learn's ``KernelPCA`` (default solver) with
the same kernel, both as ``kernel="poly"`` (degree 2, gamma 1, coef0 0) on the
normalised vectors and as a precomputed kernel (kernel time included), plus the
out-of-sample transform of 500 rows; the autoencoder's training time (timed once). The
largest coordinate difference between ours and scikit-learn's (after matching the signs)
checks that they compute the same map.

Part ``groups``: how well each 2-D map of the 532 structures separates the mlearn groups
(Elastic, AIMD-NVT, Vacancy, Surface) within each element: the silhouette score of the
groups and the 5-fold accuracy of a 5-nearest-neighbour classifier of the group from the
two coordinates (chance: the largest group's share). Saves ``maps.png``.

    python benchmarks/bench_maps.py
    python benchmarks/bench_maps.py --parts cost --repeats 3
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
STORE = HERE / "maps.json"
sys.path.insert(0, str(HERE))

SOAP_OPTIONS = {"r_cut": 5.0, "n_max": 6, "l_max": 4, "periodic": True}


def load() -> dict:
    from ml4ms import keys
    from ml4ms.analysis.maps import map_features
    from ml4ms.data import datasets
    from ml4ms.descriptors import SOAP

    soap = SOAP(["Cu", "Si"], **SOAP_OPTIONS)
    structures, tests = [], []
    for element in ("Cu", "Si"):
        for split in ("train", "test"):
            images = datasets.load("mlearn", element=element, split=split)
            structures += images
            if split == "test":
                tests += images
    t0 = time.perf_counter()
    rows = map_features(structures, soap, target="structure").features
    atoms = map_features(tests, soap, target="atom").features
    print(f"SOAP: {rows.shape} structure rows, {atoms.shape} atom rows in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return {
        "structures": rows,
        "atoms": atoms,
        "group": np.array([a.info[keys.GROUP] for a in structures]),
        "element": np.array([a.get_chemical_symbols()[0] for a in structures]),
        "energy": np.array([a.info[keys.ENERGY] / len(a) for a in structures]),
    }


def _aligned_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    signs = np.sign(np.sum(ours * theirs, axis=0))
    return float(np.max(np.abs(ours * signs - theirs)) / np.max(np.abs(theirs)))


def run_cost(data: dict, repeats: int) -> dict:
    from sklearn.decomposition import KernelPCA

    from _common import alternate
    from ml4ms.analysis.autoencoder import AutoencoderMap
    from ml4ms.analysis.maps import PCAMap, SOAPKernelPCA

    out: dict = {}
    for name, X in (("structures", data["structures"]), ("atoms", data["atoms"])):
        rng = np.random.default_rng(0)
        new = X[rng.choice(len(X), size=min(500, len(X)), replace=False)] * 1.01 + 1e-4
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        newn = new / np.linalg.norm(new, axis=1, keepdims=True)
        print(f"cost: {name} ({len(X)} rows)", flush=True)
        results: dict = {}

        def ours_kpca():
            est = SOAPKernelPCA(n_components=2, zeta=2)
            results["ours"] = (est.fit_transform(X), est.transform(new))

        def sklearn_poly():
            est = KernelPCA(n_components=2, kernel="poly", degree=2, gamma=1.0, coef0=0.0, random_state=0)
            results["poly"] = (est.fit_transform(Xn), est.transform(newn))

        def sklearn_precomputed():
            est = KernelPCA(n_components=2, kernel="precomputed", random_state=0)
            results["pre"] = (est.fit_transform((Xn @ Xn.T) ** 2), est.transform((newn @ Xn.T) ** 2))

        def pca():
            est = PCAMap(n_components=2)
            est.fit_transform(X)
            est.transform(new)

        def ours_dense():
            est = SOAPKernelPCA(n_components=2, zeta=2, eigen_solver="dense")
            results["dense"] = (est.fit_transform(X), est.transform(new))

        functions = {"PCAMap": pca, "SOAPKernelPCA": ours_kpca, "sklearn KernelPCA poly": sklearn_poly,
                     "sklearn KernelPCA precomputed": sklearn_precomputed}
        if len(X) <= 2000:  # the O(n³) dense solver is there for small sets
            functions["SOAPKernelPCA dense"] = ours_dense
        times = alternate(functions, repeats)
        t0 = time.perf_counter()
        ae = AutoencoderMap(n_components=2, max_epochs=200 if name == "structures" else 60).fit(X)
        times["AutoencoderMap (train)"] = time.perf_counter() - t0
        out[name] = {
            "rows": int(len(X)), "features": int(X.shape[1]), "seconds": times,
            "autoencoder_epochs": len(ae.history_), "autoencoder_error": ae.reconstruction_error_,
            "max_rel_difference_vs_sklearn_poly": {
                "fit": _aligned_difference(results["ours"][0], results["poly"][0]),
                "transform": _aligned_difference(results["ours"][1], results["poly"][1])},
            "max_rel_difference_vs_sklearn_precomputed": {
                "fit": _aligned_difference(results["ours"][0], results["pre"][0]),
                "transform": _aligned_difference(results["ours"][1], results["pre"][1])},
        }
        for method, seconds in times.items():
            print(f"  {method:32s} {seconds:8.3f} s", flush=True)
        print(f"  difference vs sklearn (relative max): {out[name]['max_rel_difference_vs_sklearn_poly']}")
    return out


def run_groups(data: dict) -> dict:
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from ml4ms.analysis.autoencoder import AutoencoderMap
    from ml4ms.analysis.maps import PCAMap, SOAPKernelPCA
    from ml4ms.report import _pyplot, _save_figure

    X, group, element = data["structures"], data["group"], data["element"]
    maps = {"PCA": PCAMap(2), "kernel PCA (zeta 2)": SOAPKernelPCA(2, zeta=2),
            "autoencoder": AutoencoderMap(2, max_epochs=300)}
    out: dict = {}
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13.5, 8.2))
    groups = sorted(set(group))
    colours = {g: plt.get_cmap("tab10")(k) for k, g in enumerate(groups)}
    for column, (label, estimator) in enumerate(maps.items()):
        print(f"groups: {label}", flush=True)
        per_element = {}
        for row, el in enumerate(("Cu", "Si")):
            mask = element == el
            xy = estimator.fit_transform(X[mask])
            y = group[mask]
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
            knn = cross_val_score(KNeighborsClassifier(5), xy, y, cv=folds).mean()
            counts = np.unique(y, return_counts=True)[1]
            per_element[el] = {"silhouette": float(silhouette_score(xy, y)), "knn_accuracy": float(knn),
                               "chance": float(counts.max() / counts.sum()), "n": int(mask.sum())}
            ax = axes[row, column]
            for g in groups:
                sel = y == g
                ax.scatter(xy[sel, 0], xy[sel, 1], s=10, alpha=0.8, lw=0, color=colours[g],
                           label=f"{g} ({int(sel.sum())})")
            ax.set(title=f"{el}: {label}\nkNN accuracy {knn:.0%}, silhouette {per_element[el]['silhouette']:.2f}",
                   xlabel="1", ylabel="2")
            if column == 0:
                ax.legend(fontsize="small", markerscale=2)
            print(f"  {el}: {per_element[el]}", flush=True)
        out[label] = per_element
    fig.tight_layout()
    _save_figure(fig, HERE / "maps.png")
    plt.close(fig)
    return out


def markdown(store: dict) -> str:
    from _common import machine

    lines = [f"Machine: {machine()}; one thread. `python benchmarks/bench_maps.py`.", ""]
    if "cost" in store:
        lines += ["Fit + transform time (s) of 2-D maps of mlearn Cu+Si SOAP vectors (390 features), plus the "
                  "out-of-sample transform of 500 rows; scikit-learn's KernelPCA with the same kernel beside "
                  "ours (relative max coordinate difference after sign matching in the last column).", "",
                  "| rows | PCAMap | SOAPKernelPCA | sklearn poly | sklearn precomputed | autoencoder (train) | "
                  "difference |", "|---|---|---|---|---|---|---|"]
        for name, r in store["cost"].items():
            s = r["seconds"]
            dense = f" (dense {s['SOAPKernelPCA dense']:.3f})" if "SOAPKernelPCA dense" in s else ""
            lines.append(f"| {r['rows']} {name} | {s['PCAMap']:.3f} | {s['SOAPKernelPCA']:.3f}{dense} | "
                         f"{s['sklearn KernelPCA poly']:.3f} | {s['sklearn KernelPCA precomputed']:.3f} | "
                         f"{s['AutoencoderMap (train)']:.1f} ({r['autoencoder_epochs']} epochs) | "
                         f"{max(r['max_rel_difference_vs_sklearn_poly'].values()):.1e} |")
        lines.append("")
    if "groups" in store:
        lines += ["Separation of the mlearn groups in 2-D structure maps (per element, train + test): "
                  "5-fold accuracy of a 5-NN classifier of the group from the two coordinates, and the "
                  "silhouette score of the groups (figure: `benchmarks/maps.png`).", "",
                  "| map | Cu kNN accuracy | Cu silhouette | Si kNN accuracy | Si silhouette |",
                  "|---|---|---|---|---|"]
        for label, r in store["groups"].items():
            lines.append(f"| {label} | {r['Cu']['knn_accuracy']:.0%} | {r['Cu']['silhouette']:.2f} | "
                         f"{r['Si']['knn_accuracy']:.0%} | {r['Si']['silhouette']:.2f} |")
        chance = {el: next(iter(store["groups"].values()))[el]["chance"] for el in ("Cu", "Si")}
        lines += ["", f"Chance (largest group): Cu {chance['Cu']:.0%}, Si {chance['Si']:.0%}."]
    return "\n".join(lines)


def main() -> None:
    from _common import pin_threads

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cost,groups")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("ML4MS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    pin_threads(1)
    data = load()
    store = json.loads(STORE.read_text()) if STORE.exists() else {}
    parts = args.parts.split(",")
    if "cost" in parts:
        store["cost"] = run_cost(data, args.repeats)
    if "groups" in parts:
        store["groups"] = run_groups(data)
    STORE.write_text(json.dumps(store, indent=1) + "\n")
    print()
    print(markdown(store))


if __name__ == "__main__":
    main()
