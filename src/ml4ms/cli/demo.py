"""``ml4ms demo``: the main job -- data, fit, evaluation, simulation, report -- in one command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

# Published test MAEs on the same split (Zuo et al., J. Phys. Chem. A 124, 731 (2020)),
# energy meV/atom and force eV/Å, as tabulated in shared/reference/anchors.md.
PUBLISHED = {
    "Ni": {"GAP": (0.42, 0.02), "MTP": (0.48, 0.01)},
    "Cu": {"GAP": (0.46, 0.01), "MTP": (0.41, 0.01)},
    "Li": {"GAP": (0.49, 0.01), "MTP": (0.49, 0.01)},
    "Mo": {"GAP": (2.24, 0.09), "MTP": (2.83, 0.09)},
    "Si": {"GAP": (2.91, 0.07), "MTP": (2.21, 0.06)},
    "Ge": {"GAP": (2.06, 0.05), "MTP": (1.79, 0.05)},
}


def register(commands) -> None:
    parser = commands.add_parser(
        "demo", help="fit, evaluate and simulate with a potential on real DFT data (the main job)",
        description="Load the mlearn DFT data of one element, report its statistics, fit a potential "
        "to energies, forces and stresses, evaluate it on the test set next to published numbers, save "
        "and reload the model file, run NVE molecular dynamics with it, and write a report.",
    )
    parser.add_argument("--element", default="Cu", choices=sorted(PUBLISHED), help="mlearn element (default: Cu)")
    parser.add_argument("--output", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--md-steps", type=int, default=500, help="NVE steps of 2 fs (default: 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(func=run)


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    import torch
    from ase import units
    from ase.build import bulk
    from ase.md.velocitydistribution import Stationary

    try:  # ASE >= 3.29 renamed MaxwellBoltzmannDistribution
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    from ase.md.verlet import VelocityVerlet
    from tqdm.auto import tqdm

    from ..data.dataset import AtomsDataset
    from ..models import LinearPairPotential, predict
    from ..report import html_report, parity_plot, time_series_plot, write_json
    from ..serialization import load, save
    from ..simulate import Calculator
    from ..training.metrics import error_metrics
    from .data import format_statistics

    torch.manual_seed(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    el = args.element
    started = time.perf_counter()

    _step(f"1. Loading the mlearn DFT data for {el} (Zuo et al. 2020)")
    train = AtomsDataset.from_dataset("mlearn", element=el, split="train", require=("energy", "forces"))
    test = AtomsDataset.from_dataset("mlearn", element=el, split="test", require=("energy", "forces"))
    stats = train.statistics()
    print(format_statistics(stats, [f"mlearn:{el}:train"]))
    print(f"test set: {len(test)} structures, {test.statistics().n_atoms} atoms")

    _step("2. Fitting a linear two-body potential to energies, forces and stresses (closed form)")
    from ase.data import atomic_numbers

    model = LinearPairPotential(species=[atomic_numbers[el]], cutoff=5.0, n_basis=16, r_min=1.5)
    t0 = time.perf_counter()
    model.fit(train, energy_sigma=0.002, force_sigma=0.05, stress_sigma=0.005, progress=True)
    fit_seconds = time.perf_counter() - t0
    print(f"fitted {model.weights.numel()} weights and E0 = {model.get_reference_energies()} eV "
          f"in {fit_seconds:.1f} s")

    _step("3. Evaluating on the test set")
    predictions = predict(model, test.images, progress=False)
    metrics = error_metrics(test.images, predictions)
    e, f, s = metrics["energy"], metrics["forces"], metrics["stress"]
    print(f"{'model':<22}{'E MAE (meV/atom)':>18}{'F MAE (eV/Å)':>15}{'S MAE (GPa)':>13}")
    print(f"{'ml4ms 2-body (this)':<22}{e['mae']:>18.2f}{f['mae']:>15.3f}{s['mae'] if s else float('nan'):>13.3f}")
    for name, (pe, pf) in PUBLISHED[el].items():
        print(f"{name + ' (published)':<22}{pe:>18.2f}{pf:>15.3f}{'':>13}")
    print("(a two-body potential is the baseline; many-body models come with the potential issues)")
    for group, g in metrics["by_group"].items():
        print(f"  {group:<12} E MAE {g['energy']['mae']:7.2f} meV/atom   F MAE {g['forces']['mae']:.3f} eV/Å")
    parity = parity_plot(test.images, predictions, out / "parity.png")

    _step("4. Saving the model file and reloading it")
    model_path = save(model, out / "model.ml4ms", metrics={"test": metrics},
                      training_data_hash=train.hash(), extra={"dataset": f"mlearn:{el}:train"})
    reloaded = load(model_path)
    check = predict(reloaded, test.images[:3]).energy - predictions.energy[:3]
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes); reloaded model agrees to {np.abs(check).max():.1e} eV")

    _step(f"5. NVE molecular dynamics of crystalline {el} at 300 K, {args.md_steps} steps of 2 fs")
    atoms = bulk(el, cubic=True)  # ASE's reference crystal structure of the element
    # The DFT equilibrium volume: that of the lowest-energy strained crystal of the data
    # (the reconstructed Ni/Cu sets carry no "Ground state crystal" label).
    elastic = [a for a in train.images if a.info.get("config_type") == "Elastic"] or train.images
    ground = min(elastic, key=lambda a: a.info["energy"] / len(a))
    volume = ground.get_volume() / len(ground)
    atoms.set_cell(atoms.cell * (volume * len(atoms) / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    print(f"volume {volume:.3f} Å³/atom, from the lowest-energy Elastic cell of the data")
    atoms = atoms.repeat(int(np.ceil((100 / len(atoms)) ** (1 / 3))))
    atoms.calc = Calculator(reloaded)
    rng = np.random.default_rng(args.seed)
    # Start a perfect crystal at 2T: equipartition hands half the kinetic energy to the
    # potential energy within a few vibrations, so the run settles near T.
    thermalize_momenta(atoms, temperature_K=2 * 300, rng=rng)
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
    log = {"time_ps": [], "temperature_K": [], "epot_eV_per_atom": [], "etot_eV_per_atom": []}

    def record() -> None:
        n = len(atoms)
        log["time_ps"].append(dyn.get_time() / (1000 * units.fs))
        log["temperature_K"].append(atoms.get_temperature())
        log["epot_eV_per_atom"].append(atoms.get_potential_energy() / n)
        log["etot_eV_per_atom"].append(atoms.get_total_energy() / n)

    record()
    t0 = time.perf_counter()
    for _ in tqdm(range(args.md_steps // 10), desc="MD", unit="x10 steps"):
        dyn.run(10)
        record()
    md_seconds = time.perf_counter() - t0
    series = {k: np.array(v) for k, v in log.items()}
    etot = series["etot_eV_per_atom"]
    drift = np.polyfit(series["time_ps"], etot, 1)[0] * 1000 if len(etot) > 2 else float("nan")
    us_per_atom_step = md_seconds / max(args.md_steps, 1) / len(atoms) * 1e6
    print(f"mean T over the second half {series['temperature_K'][len(etot) // 2:].mean():.0f} K; total-energy drift "
          f"{drift:.3f} meV/atom/ps, fluctuation {1000 * etot.std():.3f} meV/atom; "
          f"{us_per_atom_step:.0f} µs per atom per step")
    md_plot = time_series_plot(series, "time_ps", out / "md.png")

    _step("6. Writing the report")
    summary = {
        "element": el,
        "model": {"class": "LinearPairPotential", "config": model.config, "file": str(model_path),
                  "fit_seconds": fit_seconds},
        "train": {"n_structures": stats.n_structures, "n_atoms": stats.n_atoms},
        "test": metrics,
        "published_test_mae": {k: {"energy_meV_per_atom": v[0], "forces_eV_per_A": v[1]}
                               for k, v in PUBLISHED[el].items()},
        "md": {"n_atoms": len(atoms), "steps": args.md_steps, "timestep_fs": 2.0,
               "nve_drift_meV_per_atom_per_ps": float(drift),
               "etot_std_meV_per_atom": float(1000 * etot.std()),
               "us_per_atom_per_step": us_per_atom_step},
        "seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    html_report(out / "report.html", f"ml4ms demo: mlearn {el}", [
        ("Training data", format_statistics(stats, [f"mlearn:{el}:train"]), None),
        ("Test errors (energy meV/atom, forces eV/Å, stress GPa)",
         {"energy MAE": f"{e['mae']:.2f}", "energy RMSE": f"{e['rmse']:.2f}", "force MAE": f"{f['mae']:.3f}",
          "force RMSE": f"{f['rmse']:.3f}", "stress MAE": f"{s['mae']:.3f}" if s else "n/a",
          **{f"{k} published (E, F)": f"{v[0]}, {v[1]}" for k, v in PUBLISHED[el].items()}},
         parity.name),
        ("NVE molecular dynamics", {"atoms": len(atoms), "steps": args.md_steps,
                                    "drift (meV/atom/ps)": f"{drift:.3f}"}, md_plot.name),
    ])
    print(f"wrote {out / 'summary.json'}, {out / 'report.html'}, {parity}, {md_plot}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0
