"""Train and test MACE under a wall-clock budget: the peer side of bench_networks' aspirin part.

Runs with the Python of a separate environment that has ``mace-torch`` (MACE pins its own
e3nn, which ml4ms does not depend on; see ../shared/reference/peers.md), never with ml4ms's.
MACE's trainer has no time limit, so it is started with a large epoch count and stopped
(SIGINT) when the budget is spent; a second call with ``--restart_latest`` and no epochs
left then writes the model of the latest checkpoint, which is tested here on the test file.

    python _mace_peer.py --train T.xyz --valid V.xyz --test X.xyz --minutes 20 --workdir D --out R.json

Files are extxyz with ``REF_energy`` (eV) in the info and ``REF_forces`` (eV/Å) in the arrays.
The result JSON holds the test energy MAE (meV/atom), force MAE (eV/Å), epochs, minutes,
the number of parameters and the MACE settings.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def train_command(args, workdir: Path, epochs: int, restart: bool) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("mace_run_train")), "--name", "aspirin", "--work_dir", str(workdir),
        "--train_file", args.train, "--valid_file", args.valid, "--energy_key", "REF_energy",
        "--forces_key", "REF_forces", "--E0s", "average", "--model", "MACE", "--num_channels",
        str(args.channels), "--max_L", str(args.max_L), "--correlation", "3", "--num_interactions", "2",
        "--r_max", str(args.r_max), "--batch_size", str(args.batch_size), "--valid_batch_size", "20",
        "--max_num_epochs", str(epochs), "--eval_interval", "1", "--ema", "--ema_decay", "0.99",
        "--lr", "0.01", "--scheduler_patience", "5", "--patience", "1000", "--energy_weight", "1.0",
        "--forces_weight", "100.0", "--loss", "weighted", "--default_dtype", "float32", "--device", "cpu",
        "--seed", str(args.seed), "--error_table", "PerAtomMAE", "--save_cpu",
    ]
    return command + (["--restart_latest"] if restart else [])


def latest_epoch(workdir: Path) -> int:
    epochs = [int(m.group(1)) for path in glob.glob(str(workdir / "checkpoints" / "*.pt"))
              if (m := re.search(r"_epoch-(\d+)", path))]
    return max(epochs, default=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--valid", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--max-L", dest="max_L", type=int, default=0)
    parser.add_argument("--r-max", dest="r_max", type=float, default=5.0)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log = open(workdir / "train.log", "w")
    start = time.perf_counter()
    process = subprocess.Popen(train_command(args, workdir, 100000, restart=False), stdout=log,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        process.wait(timeout=args.minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    minutes = (time.perf_counter() - start) / 60
    epoch = latest_epoch(workdir)
    if epoch < 0:
        raise SystemExit(f"MACE wrote no checkpoint in {args.minutes} min; see {workdir / 'train.log'}")
    # no epochs left: MACE loads the latest checkpoint and writes the model file
    subprocess.run(train_command(args, workdir, epoch, restart=True), stdout=log, stderr=subprocess.STDOUT,
                   env=env, check=True)

    import numpy as np
    import torch
    from ase.io import read
    from mace.calculators import MACECalculator

    torch.set_num_threads(args.threads)
    model_path = workdir / "aspirin.model"
    calculator = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype="float32")
    energy_errors, force_errors = [], []
    test = read(args.test, ":")
    evaluation_start = time.perf_counter()
    for atoms in test:
        reference_energy, reference_forces = atoms.info["REF_energy"], atoms.arrays["REF_forces"]
        atoms.calc = calculator
        energy_errors.append(abs(atoms.get_potential_energy() - reference_energy) / len(atoms))
        force_errors.append(np.abs(atoms.get_forces() - reference_forces).ravel())
    evaluation = time.perf_counter() - evaluation_start
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    result = {"energy_mae": 1000 * float(np.mean(energy_errors)),
              "forces_mae": float(np.mean(np.concatenate(force_errors))), "epochs": epoch + 1,
              "train_minutes": minutes, "n_parameters": int(sum(p.numel() for p in model.parameters())),
              "us_per_atom_call": 1e6 * evaluation / sum(len(a) for a in test),
              "settings": {"channels": args.channels, "max_L": args.max_L, "correlation": 3, "interactions": 2,
                           "r_max": args.r_max, "batch_size": args.batch_size, "threads": args.threads,
                           "dtype": "float32"}}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
