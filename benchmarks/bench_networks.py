"""Neural-network potentials: cost per atom, training throughput, and accuracy under a time budget.

Part ``cost``: energy + forces of fcc Cu supercells (64 to 10,976 atoms), one thread, for the
atomic neural network (BPNN, medium preset), the equivariant message-passing network (MPNN,
medium preset) in float64 and float32, and ASE's EMT as the classical floor: µs per atom per
call, graph (neighbour list) included, median of alternated repeats.

Part ``mlearn``: train each network on ``mlearn:<El>:train`` (10 % held out for validation)
for ``--minutes`` minutes on this machine, then test on ``mlearn:<El>:test``; the published
best (min of GAP and MTP) beside it. Training throughput (structures/s) and peak memory (RSS).

Part ``aspirin``: the same on aspirin_gfn2, frames 0-799 for training (5 % validation),
800-999 for testing. With ``--models MPNN,MACE --mace-python PATH`` MACE (mace-torch, in its
own environment: ``_mace_peer.py``) trains on the same split at the same time, each on one
core for the same wall-clock budget.

    python benchmarks/bench_networks.py                          # cost + Cu (10 min each) + aspirin
    python benchmarks/bench_networks.py --parts cost --sizes 64,500
    python benchmarks/bench_networks.py --parts mlearn --elements Cu,Mo --minutes 60
    python benchmarks/bench_networks.py --parts aspirin --models MPNN,MACE --minutes 30 --mace-python ~/mace/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
STORE = HERE / "networks.json"
sys.path.insert(0, str(HERE))

#: Published best test MAE (min of GAP and MTP; Zuo et al. 2020): meV/atom, eV/Å.
PUBLISHED = {"Ni": (0.42, 0.01), "Cu": (0.41, 0.01), "Li": (0.49, 0.01), "Mo": (2.24, 0.09),
             "Si": (2.21, 0.06), "Ge": (1.79, 0.05)}
BPNN = {"type": "bpnn", "preset": "medium"}
MPNN = {"type": "mpnn", "preset": "medium"}


def build(model: dict, species, seed: int = 0):
    from ml4ms.cli.fit import build_model
    from ml4ms.config import ModelConfig

    return build_model(ModelConfig(**model), species, seed=seed)


def run_cost(sizes: list[int], repeats: int) -> dict:
    import torch
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from _common import alternate
    from ml4ms.data.graph import AtomicGraph
    from ml4ms.models.base import eval_mode

    models = {"BPNN f64": (build(BPNN, [29]), torch.float64), "BPNN f32": (build(BPNN, [29]), torch.float32),
              "MPNN f64": (build(MPNN, [29]), torch.float64), "MPNN f32": (build(MPNN, [29]), torch.float32)}
    for model, dtype in models.values():
        model.to(dtype).eval()
    out: dict = {}
    for n in sizes:
        repeat = round((n / 4) ** (1 / 3))
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
        atoms.rattle(0.02, seed=0)
        print(f"cost: {len(atoms)} atoms", flush=True)

        def call(model, dtype):
            def f():
                with eval_mode(model):
                    graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=dtype, labels=False)
                    model(graph, compute_forces=True)
            return f

        def emt():
            work = atoms.copy()
            work.calc = EMT()
            work.get_forces()

        functions = {"EMT": emt}
        for name, (model, dtype) in models.items():
            # The ACSF triplets of ~10,000 atoms need more than this machine's memory.
            if name.startswith("BPNN") and len(atoms) > 4500:
                continue
            functions[name] = call(model, dtype)
        times = alternate(functions, repeats if len(atoms) < 3000 else max(1, repeats // 3))
        out[str(len(atoms))] = {name: 1e6 * t / len(atoms) for name, t in times.items()}
        print("  " + ", ".join(f"{k} {v:.0f}" for k, v in out[str(len(atoms))].items()) + " µs/atom", flush=True)
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split(train):
    """Training and validation parts of ``train``: 10 % (5 % from 500 structures) held out, seed 0."""
    from ml4ms.data.dataset import AtomsDataset

    data = AtomsDataset(train)
    return data.split([0.9, 0.1] if len(data) < 500 else [0.95, 0.05], seed=0)


def train_and_test(model_config: dict, train, test, minutes: float, weights, label: str, lr: float = 0.002) -> dict:
    from ml4ms.data.dataset import AtomsDataset
    from ml4ms.models import predict
    from ml4ms.training import Trainer
    from ml4ms.training.metrics import error_metrics

    data = AtomsDataset(train)
    fit, validation = split(train)
    _, species = data.composition_matrix()
    model = build(model_config, species)
    config = {"epochs": 100000, "batch_size": 4, "lr": lr, "lr_patience": 10, "patience": 40,
              "ema_decay": 0.99, "dtype": "float32", "time_limit_min": minutes}
    print(f"{label}: {len(fit)} training structures, {minutes} min", flush=True)
    start = time.perf_counter()
    result = Trainer(model, config, weights, progress=False).fit(fit, validation)
    wall = time.perf_counter() - start
    predicted = predict(model, test, compute_stress=False, uncertainty=False)
    metrics = error_metrics(test, predicted)
    row = {"energy_mae": metrics["energy"]["mae"], "forces_mae": metrics["forces"]["mae"],
           "epochs": len(result.history), "stopped": result.stopped, "train_minutes": wall / 60,
           "structures_per_s": result.structures_per_second, "peak_rss_mb": _peak_rss_mb(),
           "best_validation": result.best_validation, "n_parameters": int(sum(p.numel() for p in model.parameters()))}
    print(f"  test E {row['energy_mae']:.2f} meV/atom, F {row['forces_mae']:.4f} eV/Å; "
          f"{row['epochs']} epochs, {row['structures_per_s']:.1f} structures/s", flush=True)
    return row


#: Loss weights (energy per atom, eV; force component, eV/Å) and learning rate of the mlearn
#: runs, chosen on the validation split of Cu (12 min on one core each, validation MAE):
#: sigma_E 1 meV and lr 2e-3 gave about 4 meV/atom and 0.079 eV/Å; lr 5e-4, 1.99 and 0.072;
#: sigma_E 3 meV, 2.51 and 0.047; both, 1.93 and 0.043; both without anchoring a lone atom
#: at E0 (the default since), 1.85 and 0.033.
MLEARN_SIGMAS = (0.003, 0.03)
MLEARN_LR = 5e-4


def run_mlearn(elements: list[str], minutes: float, which: list[str]) -> dict:
    import torch

    from ml4ms.data import datasets
    from ml4ms.training import LossWeights

    weights = LossWeights(energy_sigma=MLEARN_SIGMAS[0], force_sigma=MLEARN_SIGMAS[1], stress_sigma=None)
    out = {}
    for element in elements:
        train = datasets.load("mlearn", element=element, split="train")
        test = datasets.load("mlearn", element=element, split="test")
        out[element] = {name: {**train_and_test(config, train, test, minutes, weights, f"{element} {name}",
                                                lr=MLEARN_LR),
                               "threads": torch.get_num_threads(), "sigmas": list(MLEARN_SIGMAS), "lr": MLEARN_LR}
                        for name, config in (("MPNN", MPNN), ("BPNN", BPNN)) if name in which}
    return out


def _write_mace_extxyz(images, path: Path) -> None:
    """Positions, ``REF_energy`` and ``REF_forces`` only: what MACE's trainer reads."""
    import numpy as np
    from ase import Atoms
    from ase.io import write

    rows = []
    for atoms in images:
        row = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        row.info["REF_energy"] = float(atoms.info["energy"])
        row.arrays["REF_forces"] = np.asarray(atoms.arrays["forces"], dtype=float)
        rows.append(row)
    write(path, rows, format="extxyz")


def start_mace(train, test, minutes: float, python: str, workdir: Path):
    """Start MACE's training on the same split in its own environment (``_mace_peer.py``), in the background."""
    import subprocess

    fit, validation = split(train)
    workdir.mkdir(parents=True, exist_ok=True)
    files = {name: workdir / f"{name}.xyz" for name in ("train", "valid", "test")}
    for name, images in (("train", fit), ("valid", validation), ("test", test)):
        _write_mace_extxyz(list(images), files[name])
    command = [python, str(HERE / "_mace_peer.py"), "--train", str(files["train"]), "--valid", str(files["valid"]),
               "--test", str(files["test"]), "--minutes", str(minutes), "--workdir", str(workdir / "run"),
               "--out", str(workdir / "result.json"), "--threads", "1"]
    print(f"MACE: {len(fit)} training structures, {minutes} min, in {workdir}", flush=True)
    return subprocess.Popen(command, stdout=open(workdir / "peer.log", "w"), stderr=subprocess.STDOUT)


#: Expected errors of the aspirin loss: energy per atom and force component, eV and eV/Å. Chosen on
#: the validation frames: 30 min on one core gave validation MAE 0.24 meV/atom and 0.019 eV/Å
#: with these, against 0.48 and 0.031 with sigma_E = 0.5 meV/atom.
ASPIRIN_SIGMAS = (0.002, 0.02)


def run_aspirin(minutes: float, which: list[str], mace_python: str | None = None,
                sigmas: tuple[float, float] = ASPIRIN_SIGMAS) -> dict:
    import tempfile

    import torch

    from ml4ms.data import datasets
    from ml4ms.training import LossWeights

    frames = datasets.load("aspirin_gfn2")
    weights = LossWeights(energy_sigma=sigmas[0], force_sigma=sigmas[1], stress_sigma=None)
    # rows of other loss weights are kept beside those of the default weights
    suffix = "" if tuple(sigmas) == ASPIRIN_SIGMAS else f" (σE {1000 * sigmas[0]:g} meV, σF {sigmas[1]:g} eV/Å)"
    peer = None
    if "MACE" in which:
        if not mace_python:
            raise SystemExit("--models MACE needs --mace-python (the Python of an environment with mace-torch)")
        workdir = Path(tempfile.mkdtemp(prefix="ml4ms-mace-"))
        peer = start_mace(frames[:800], frames[800:], minutes, mace_python, workdir)
        torch.set_num_threads(1)  # one core each, side by side, for the same wall-clock budget
    out = {name + suffix: {**train_and_test(config, frames[:800], frames[800:], minutes, weights,
                                            f"aspirin {name}"),
                           "threads": torch.get_num_threads(), "sigmas": list(sigmas)}
           for name, config in (("MPNN", MPNN), ("BPNN", BPNN)) if name in which}
    if peer is not None:
        if peer.wait() != 0:
            raise SystemExit(f"MACE failed; see {workdir / 'peer.log'}")
        result = json.loads((workdir / "result.json").read_text())
        n_fit = len(split(frames[:800])[0])
        out["MACE"] = {**result, "threads": 1, "peak_rss_mb": None,
                       "structures_per_s": result["epochs"] * n_fit / (60 * result["train_minutes"])}
        print(f"  MACE test E {result['energy_mae']:.2f} meV/atom, F {result['forces_mae']:.4f} eV/Å; "
              f"{result['epochs']} epochs", flush=True)
    return out


def write_results(store: dict) -> None:
    from _common import machine, write_section

    lines = [f"Machine: {machine()}. Run: `python benchmarks/bench_networks.py` (figures in "
             "benchmarks/networks.json).", ""]
    cost = store.get("cost")
    if cost:
        names = list(dict.fromkeys(k for row in cost.values() for k in row))
        lines += ["Energy + forces of rattled fcc Cu, one thread, neighbour list included: µs per atom per call "
                  "(medium presets: BPNN 49 ACSF, 64-64 MLP; MPNN 64 channels, 3 layers, cutoff 5 Å). "
                  "Peers measured on this kind of machine (reference/peers.md, 500 atoms, float64 / float32): "
                  "NequIP l_max 0 324 / 248, l_max 1 1027 / 476; MACE L0 4370 / 2050, L1 12650 / 5130.", "",
                  "| atoms | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for n, row in cost.items():
            lines.append(f"| {n} | " + " | ".join(f"{row[k]:.0f}" if k in row else "-" for k in names) + " |")
        lines.append("")
    for part, title in (("mlearn", "mlearn test MAE after training on this machine"),
                        ("aspirin", "aspirin_gfn2 (train frames 0-799, test 800-999)")):
        results = store.get(part)
        if not results:
            continue
        lines += [f"{title}: energy meV/atom, forces eV/Å, training minutes (float32) on the given torch "
                  "threads, throughput, peak memory. These are fixed short budgets on a shared machine (other jobs "
                  "may have held a core), not converged trainings; the target budget is 60 minutes. MACE rows: "
                  "mace-torch 0.3.16 in its own environment (64 channels, L = 0, correlation 3, 2 interactions, "
                  "5 Å), trained at the same time on the other core for the same wall-clock budget, on the same "
                  "training/validation split (`--models MPNN,MACE`).", "",
                  "| data | model | E MAE | F MAE | published best E / F | minutes | threads | epochs | "
                  "structures/s | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|---|"]
        rows = results.items() if part == "mlearn" else [("aspirin", results)]
        for element, models in rows:
            for name, r in models.items():
                published = PUBLISHED.get(element)
                ref = f"{published[0]} / {published[1]}" if published else "-"
                rss = "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"
                lines.append(f"| {element} | {name} | {r['energy_mae']:.2f} | {r['forces_mae']:.4f} | {ref} | "
                             f"{r['train_minutes']:.0f} | {r.get('threads', 2)} | {r['epochs']} | "
                             f"{r['structures_per_s']:.1f} | {rss} |")
        chosen = [f"{label}{name}: σE {1000 * r['sigmas'][0]:g} meV/atom, σF {r['sigmas'][1]:g} eV/Å"
                  + (f", lr {r['lr']:g}" if r.get("lr") else "")
                  + f", validation {r['best_validation']['energy_mae']:.2f} meV/atom, "
                  f"{r['best_validation']['forces_mae']:.4f} eV/Å"
                  for label, models in rows for name, r in models.items()
                  for label in [f"{label} " if part == "mlearn" else ""]
                  if r.get("sigmas") and r.get("best_validation")]
        if chosen:
            lines += ["", "Loss weights of the ml4ms rows, and the validation MAE they reached (the default "
                      "weights were chosen on it): " + "; ".join(chosen) + "."]
        lines.append("")
    write_section("Neural-network potentials: cost, training, accuracy", "\n".join(lines))


def main() -> None:
    from _common import pin_threads

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="cost,mlearn,aspirin")
    parser.add_argument("--sizes", default="64,500,2048,10976")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--elements", default="Cu")
    parser.add_argument("--models", default="MPNN,BPNN")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--threads", type=int, default=1, help="threads for the cost part")
    parser.add_argument("--train-threads", type=int, default=2, help="torch threads for training (1 beside MACE)")
    parser.add_argument("--aspirin-sigmas", default=",".join(map(str, ASPIRIN_SIGMAS)),
                        help="expected errors of the aspirin loss: energy per atom (eV), force component (eV/Å)")
    parser.add_argument("--mace-python", default=os.environ.get("ML4MS_MACE_PYTHON"),
                        help="Python of an environment with mace-torch, for --models ...,MACE (aspirin part)")
    args = parser.parse_args()
    os.environ.setdefault("ML4MS_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    parts = args.parts.split(",")
    which = args.models.split(",")
    store = json.loads(STORE.read_text()) if STORE.exists() else {}
    if "cost" in parts:
        pin_threads(args.threads)
        store["cost"] = run_cost([int(n) for n in args.sizes.split(",")], args.repeats)
    import torch

    torch.set_num_threads(args.train_threads)
    if "mlearn" in parts:
        store.setdefault("mlearn", {}).update(run_mlearn(args.elements.split(","), args.minutes, which))
    if "aspirin" in parts:
        sigmas = tuple(float(v) for v in args.aspirin_sigmas.split(","))
        store.setdefault("aspirin", {}).update(run_aspirin(args.minutes, which, args.mace_python, sigmas))
    STORE.write_text(json.dumps(store, indent=1))
    write_results(store)


if __name__ == "__main__":
    main()
