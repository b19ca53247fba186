"""Intrinsic dimension: ml4ms vs DADApy on the same data — estimates, errors and wall time.

Data sets (seeded): points of a 2-D and of a 5-D unit cube rotated into 10-D, a 2-sphere in
3-D, a Swiss roll (2-D), and SOAP vectors (C, H, O; r_cut 4 Å, n_max 4, l_max 3) of the
aspirin GFN2-xTB molecular-dynamics trajectory (``aspirin_gfn2``, 1000 frames): one
vector per frame (mean over atoms) and one per atom (21,000 vectors).

For each: TwoNN by maximum likelihood (ml4ms ``estimator="mle"``; DADApy
``compute_id_2NN(algorithm="ml")``), TwoNN by the line fit discarding 10 % of the ratios
(ml4ms ``estimator="fit"``; DADApy ``algorithm="base"``, ``mu_fraction=0.9``), and the
GRIDE scale dependence up to neighbour order 64 (ml4ms ``method="gride"``; DADApy
``return_id_scaling_gride(range_max=64)``). DADApy runs in its own environment
(``--dadapy-python``) on the very same matrices, one thread for both; the times include
the neighbour search of each call (DADApy's ``Data`` object is built inside the timing).

    python benchmarks/bench_intrinsic_dimension.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
STORE = HERE / "intrinsic_dimension.json"
sys.path.insert(0, str(HERE))

DADAPY_RUNNER = """
import json, sys, time, warnings
import numpy as np
from dadapy import Data
warnings.simplefilter("ignore")
X = np.load(sys.argv[1])
out = {}
t = time.perf_counter(); d = Data(coordinates=X, n_jobs=1, verbose=False)
out["twonn_mle"] = list(d.compute_id_2NN(algorithm="ml")[:2]) + [time.perf_counter() - t]
t = time.perf_counter(); d = Data(coordinates=X, n_jobs=1, verbose=False)
out["twonn_fit"] = list(d.compute_id_2NN(algorithm="base", mu_fraction=0.9)[:2]) + [time.perf_counter() - t]
t = time.perf_counter(); d = Data(coordinates=X, n_jobs=1, verbose=False)
ids, errs, scales = d.return_id_scaling_gride(range_max=64)
out["gride"] = {"dimensions": list(map(float, ids)), "errors": list(map(float, errs)),
                "scales": list(map(float, scales)), "time": time.perf_counter() - t}
print(json.dumps(out, default=float))
"""


def datasets(n: int, data_dir: str | None) -> dict[str, tuple[np.ndarray, float | None]]:
    rng = np.random.default_rng(0)

    def cube(k):
        Q, _ = np.linalg.qr(rng.normal(size=(10, k)))
        return rng.random((n, k)) @ Q.T

    v = rng.normal(size=(n, 3))
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    out = {
        "plane 2-D in 10-D": (cube(2), 2.0),
        "plane 5-D in 10-D": (cube(5), 5.0),
        "2-sphere in 3-D": (v / np.linalg.norm(v, axis=1, keepdims=True), 2.0),
        "Swiss roll": (np.column_stack([t * np.cos(t), 21 * rng.random(n), t * np.sin(t)]), 2.0),
    }
    from ml4ms.data.datasets import load
    from ml4ms.descriptors.featurizer import Featurizer
    from ml4ms.descriptors.soap import SOAP

    frames = load("aspirin_gfn2")
    soap = SOAP(["C", "H", "O"], r_cut=4.0, n_max=4, l_max=3)
    t0 = time.perf_counter()
    out["aspirin SOAP, per frame"] = (Featurizer(soap, pool="mean").fit(frames).transform(frames), None)
    out["aspirin SOAP, per atom"] = (Featurizer(soap, pool="none").fit(frames).transform(frames), None)
    print(f"SOAP of {len(frames)} aspirin frames: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def run_ml4ms(X: np.ndarray) -> dict:
    import warnings

    from ml4ms.analysis.intrinsic_dimension import intrinsic_dimension

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, kwargs in (("twonn_mle", {"estimator": "mle"}), ("twonn_fit", {"estimator": "fit"})):
            t = time.perf_counter()
            r = intrinsic_dimension(X, "twonn", **kwargs)
            out[key] = [r.dimension, r.error, time.perf_counter() - t]
        t = time.perf_counter()
        g = intrinsic_dimension(X, "gride", max_order=64)
    out["gride"] = {"dimensions": g.dimensions.tolist(), "errors": g.errors.tolist(), "scales": g.scales.tolist(),
                    "time": time.perf_counter() - t, "n_duplicates": g.n_duplicates}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="points of the synthetic sets")
    parser.add_argument("--dadapy-python", default="/work/venvs/dadapy/bin/python")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    from _common import machine, pin_threads

    pin_threads(1)
    results: dict = {"machine": machine(), "n_synthetic": args.n, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (X, true) in datasets(args.n, os.environ.get("ML4MS_DATA_DIR")).items():
            entry: dict = {"shape": list(X.shape), "true_dimension": true, "ml4ms": run_ml4ms(X)}
            if Path(args.dadapy_python).exists():
                path = Path(tmp) / "x.npy"
                np.save(path, X)
                env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
                proc = subprocess.run([args.dadapy_python, "-c", DADAPY_RUNNER, str(path)], capture_output=True,
                                      text=True, env=env, cwd=tmp)
                if proc.returncode == 0:
                    entry["dadapy"] = json.loads(proc.stdout.strip().splitlines()[-1])
                else:
                    entry["dadapy_error"] = proc.stderr.strip().splitlines()[-1]
            results["sets"][name] = entry
            m = entry["ml4ms"]
            line = (f"{name:26s} {str(X.shape):14s} true {true}  ml4ms twonn {m['twonn_mle'][0]:.2f}±"
                    f"{m['twonn_mle'][1]:.2f} ({m['twonn_mle'][2]:.2f} s) fit {m['twonn_fit'][0]:.2f}  "
                    f"gride {np.round(m['gride']['dimensions'], 2).tolist()} ({m['gride']['time']:.2f} s)")
            if "dadapy" in entry:
                dd = entry["dadapy"]
                line += (f"\n{'':26s} {'':14s}          dadapy twonn {dd['twonn_mle'][0]:.2f}±{dd['twonn_mle'][1]:.2f} "
                         f"({dd['twonn_mle'][2]:.2f} s) fit {dd['twonn_fit'][0]:.2f}  gride "
                         f"{np.round(dd['gride']['dimensions'], 2).tolist()} ({dd['gride']['time']:.2f} s)")
            print(line, flush=True)
    STORE.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {STORE}")


if __name__ == "__main__":
    main()
