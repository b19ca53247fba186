"""``ml4ms demo``: the main job -- data, fit, evaluation, simulations, report -- in one command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

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
#: The demo's potential: the sparse GP of examples/mlearn/Cu-gap.yaml with the values its
#: validation search chose for Cu (benchmarks/RESULTS.md).
MODEL = {
    "descriptor": {"type": "soap", "r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5, "rbf": "gto_smooth"},
    "n_sparse": 1000, "zeta": 4, "delta": 0.2, "pair": {"cutoff": 5.0, "n_basis": 16},
}
FIT = {"energy_sigma": 5e-4, "force_sigma": 0.05, "stress_sigma": None, "alpha": 0.3, "validation": 0.1}
#: A smaller model and shorter runs for --quick (a check that everything runs, in ~2 minutes).
QUICK_MODEL = {**MODEL, "descriptor": {**MODEL["descriptor"], "n_max": 6, "l_max": 4}, "n_sparse": 300}


def register(commands) -> None:
    parser = commands.add_parser(
        "demo", help="fit a potential with error bars to real DFT data and simulate with it (the main job)",
        description="Load the mlearn DFT data of one element; fit a sparse Gaussian-process potential (SOAP "
        "kernel plus a two-body term) with calibrated error bars; evaluate it on the test set next to the "
        "published GAP and MTP errors; save and reload the model file; compute the lattice constant, bulk "
        "modulus and elastic constants (next to the DFT values the data imply); run NVT and NVE molecular "
        "dynamics; compute the vacancy-migration barrier with its error bar; write summary.json and "
        "report.html with the plots.",
    )
    parser.add_argument("--element", default="Cu", choices=sorted(PUBLISHED), help="mlearn element (default: Cu)")
    parser.add_argument("--output", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--md-steps", type=int, default=1000, help="steps of NVT, then of NVE (default: 1000)")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller model, smaller vacancy cell and shorter runs: checks that it all works")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(func=run)


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _crystal(element: str, a: float):
    """The conventional cubic cell of the element's ASE reference structure, lattice constant ``a``."""
    from ase.build import bulk

    return bulk(element, cubic=True, a=a)


def dft_reference(images) -> dict[str, Any]:
    """What the DFT ``Elastic`` structures imply: the unstrained cell's lattice constant and C."""
    from ase.build import bulk

    from ..simulate import elastic_constants_from_data

    elastic = [a for a in images if a.info.get("config_type") == "Elastic"]
    result = elastic_constants_from_data(elastic)
    conventional = len(bulk(elastic[0].get_chemical_symbols()[0], cubic=True))
    repeats = round((result.n_atoms / conventional) ** (1 / 3))
    return {"lattice_constant_A": float(np.linalg.norm(result.reference[0]) / repeats), "elastic": result,
            "images": elastic}


def run(args: argparse.Namespace) -> int:
    import torch
    from ase.data import atomic_numbers

    from ..data.dataset import AtomsDataset
    from ..models import SparseGPPotential, predict
    from ..report import (barrier_plot, eos_plot, html_report, parity_plot, time_series_plot, uncertainty_plot,
                          write_json)
    from ..serialization import load, save
    from ..simulate import (Calculator, elastic_constants, elastic_constants_from_data, equation_of_state,
                            molecular_dynamics, relax, vacancy_migration)
    from ..training.metrics import error_metrics
    from .data import format_statistics
    from .fit import format_metrics

    torch.manual_seed(args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    el = args.element
    started = time.perf_counter()
    config = QUICK_MODEL if args.quick else MODEL

    _step(f"1. Loading the mlearn DFT data for {el} (Zuo et al. 2020)")
    train = AtomsDataset.from_dataset("mlearn", element=el, split="train", require=("energy", "forces"))
    test = AtomsDataset.from_dataset("mlearn", element=el, split="test", require=("energy", "forces"))
    stats = train.statistics()
    print(format_statistics(stats, [f"mlearn:{el}:train"]))
    print(f"test set: {len(test)} structures, {test.statistics().n_atoms} atoms")

    _step("2. Fitting a sparse Gaussian-process potential (SOAP kernel + two-body term) with error bars")
    model = SparseGPPotential(species=[atomic_numbers[el]], seed=args.seed, **config)
    print(f"SOAP r_cut {config['descriptor']['r_cut']} Å, n_max {config['descriptor']['n_max']}, "
          f"l_max {config['descriptor']['l_max']}; {config['n_sparse']} sparse environments (CUR); "
          f"sigma_E {FIT['energy_sigma'] * 1000:g} meV/atom, sigma_F {FIT['force_sigma']} eV/Å; "
          f"10 % of the training data held out to calibrate the error bars")
    t0 = time.perf_counter()
    model.fit(train, progress=True, seed=args.seed, **FIT)
    fit_seconds = time.perf_counter() - t0
    print(f"fitted {model.n_parameters} weights in {fit_seconds:.0f} s; error bars scaled by "
          f"{float(model.uncertainty_scale):.2f} to match the validation errors")

    _step("3. Evaluating on the test set (never seen by the fit)")
    predictions = predict(model, test.images, uncertainty=True)
    metrics = error_metrics(test.images, predictions)
    e, f = metrics["energy"], metrics["forces"]
    print(format_metrics(metrics))
    print(f"\n{'model':<22}{'E MAE (meV/atom)':>18}{'F MAE (eV/Å)':>15}")
    print(f"{'ml4ms sparse GP':<22}{e['mae']:>18.2f}{f['mae']:>15.3f}")
    for name, (pe, pf) in PUBLISHED[el].items():
        print(f"{name + ' (published)':<22}{pe:>18.2f}{pf:>15.3f}")
    parity = parity_plot(test.images, predictions, out / "parity.png")
    calibration = uncertainty_plot(test.images, predictions, out / "uncertainty.png")

    _step("4. Saving the model file and reloading it")
    model_path = save(model, out / "model.ml4ms", metrics={"test": metrics},
                      training_data_hash=train.hash(), extra={"dataset": f"mlearn:{el}:train"})
    model = load(model_path)
    check = predict(model, test.images[:3]).energy - predictions.energy[:3]
    print(f"wrote {model_path} ({model_path.stat().st_size / 2**20:.1f} MiB); the reloaded model agrees to "
          f"{np.abs(check).max():.1e} eV")
    calc = Calculator(model)

    _step("5. Lattice constant and equation of state")
    dft = dft_reference(train.images + test.images)
    crystal = _crystal(el, dft["lattice_constant_A"])
    crystal.calc = calc
    relax(crystal, cell=True, hydrostatic=True, fmax=1e-4, steps=500)
    eos = equation_of_state(crystal)
    a0 = float(crystal.cell.lengths()[0])
    print(f"lattice constant {a0:.4f} Å (DFT reference cell of the Elastic set: {dft['lattice_constant_A']:.4f} Å, "
          f"{100 * (a0 / dft['lattice_constant_A'] - 1):+.2f} %); bulk modulus {eos.bulk_modulus_GPa:.1f} GPa")
    eos_png = eos_plot(eos.volumes, eos.energies, out / "eos.png")

    _step("6. Elastic constants from stress-strain, next to the DFT values the Elastic structures imply")
    # Like for like: the same least-squares estimator on the same strained DFT cells, once with
    # the DFT stresses and once with the model's; plus the model's own central differences
    # about the DFT reference cell.
    strained = dft["images"]
    on_cells = elastic_constants_from_data(strained, stresses=predict(model, strained).stress)
    at_reference = _crystal(el, dft["lattice_constant_A"])
    at_reference.calc = calc
    elastic = elastic_constants(at_reference)
    mine, theirs, clean = on_cells.cubic(), dft["elastic"].cubic(), elastic.cubic()
    print(f"{'':<6}{'model':>10}{'DFT':>10}{'diff':>9}{'model, ±0.5 % strains':>24}  (GPa)")
    for key in ("C11", "C12", "C44"):
        print(f"{key:<6}{mine[key]:>10.1f}{theirs[key]:>10.1f}{100 * (mine[key] / theirs[key] - 1):>+8.1f}%"
              f"{clean[key]:>24.1f}")
    print(f"(model and DFT: least-squares stress-strain over the same {dft['elastic'].n_points} strained cells "
          f"within 3 %; last column: central differences about the DFT reference cell)")

    steps = 100 if args.quick else args.md_steps
    size = 2 if args.quick else 3
    md_atoms = crystal.repeat(size)
    md_atoms.calc = calc
    _step(f"7. Molecular dynamics of {len(md_atoms)} atoms: {steps} steps NVT (Bussi, 300 K), then {steps} NVE, 2 fs")
    nvt = molecular_dynamics(md_atoms, ensemble="bussi", temperature_K=300, initial_temperature_K=600,
                             tau_fs=50, steps=steps, timestep_fs=2, seed=args.seed,
                             log=out / "nvt.csv", trajectory=out / "nvt.extxyz")
    nve = molecular_dynamics(md_atoms, ensemble="nve", steps=steps, timestep_fs=2,
                             log=out / "nve.csv", trajectory=out / "nve.extxyz")
    drift = nve.drift()
    print(f"NVT: mean T over the second half {nvt.summary()['mean_temperature_K']:.0f} K; "
          f"largest atomic sigma {np.max(nvt.log['max_sigma_eV']) * 1000:.2f} meV")
    print(f"NVE: total-energy drift {drift:.4f} meV/atom/ps, largest change {nve.energy_change():.3f} meV/atom; "
          f"{nve.us_per_atom_step:.0f} µs per atom per step ({nve.ns_per_day:.2f} ns/day)")
    log = {k: np.concatenate([nvt.log[k], nve.log[k][1:]]) for k in nvt.log if k != "step"}
    log["time_ps"] = np.concatenate([nvt.log["time_ps"], nvt.log["time_ps"][-1] + nve.log["time_ps"][1:]])
    log["etot_eV"] = log["etot_eV"] / len(md_atoms)
    log["epot_eV"] = log["epot_eV"] / len(md_atoms)
    md_png = time_series_plot({k.replace("_eV", "_eV_per_atom") if k in ("etot_eV", "epot_eV") else k: v
                               for k, v in log.items()}, "time_ps", out / "md.png")

    _step("8. Vacancy migration barrier (climbing-image NEB) with its error bar")
    barrier = vacancy_migration(crystal, calc, supercell=size, n_images=5, fmax=0.03)
    sigma = barrier.barrier_sigma
    print(f"{barrier.extra['n_atoms']}-atom cell: barrier {barrier.barrier:.3f} ± {sigma:.3f} eV (1σ, from the GP "
          f"covariance of the saddle and initial energies); NEB {'converged' if barrier.converged else 'NOT converged'}"
          f" in {barrier.steps} steps")
    barrier_png = barrier_plot(barrier.path, barrier.energies, barrier.sigma, out / "barrier.png",
                               f"vacancy migration in {el}")

    _step("9. Writing the report")
    summary = {
        "element": el,
        "model": {"class": "SparseGPPotential", "config": model.config, "file": str(model_path),
                  "fit_seconds": fit_seconds, "fit": FIT, "quick": bool(args.quick)},
        "train": {"n_structures": stats.n_structures, "n_atoms": stats.n_atoms},
        "test": metrics,
        "published_test_mae": {k: {"energy_meV_per_atom": v[0], "forces_eV_per_A": v[1]}
                               for k, v in PUBLISHED[el].items()},
        "lattice_constant_A": {"model": a0, "dft": dft["lattice_constant_A"]},
        "bulk_modulus_GPa": {"model_eos": eos.bulk_modulus_GPa, "model_elastic": elastic.bulk_modulus_GPa,
                             "dft_elastic": dft["elastic"].bulk_modulus_GPa},
        "elastic_constants_GPa": {"model": mine, "dft": theirs,
                                  "relative_difference": {k: mine[k] / theirs[k] - 1 for k in mine},
                                  "model_central_differences": clean,
                                  "method": "least-squares stress-strain over the same DFT Elastic cells"},
        "vacancy_migration": {"barrier_eV": barrier.barrier, "barrier_sigma_eV": sigma, **barrier.summary()},
        "md": {"n_atoms": len(md_atoms), "timestep_fs": 2.0, "nvt": nvt.summary(), "nve": nve.summary(),
               "nve_drift_meV_per_atom_per_ps": drift},
        "seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    u = metrics.get("uncertainty", {})
    html_report(out / "report.html", f"ml4ms demo: a sparse GP potential for {el} from mlearn DFT data", [
        ("Training data", format_statistics(stats, [f"mlearn:{el}:train"]), None),
        ("Test errors (energy meV/atom, forces eV/Å, stress GPa)",
         {"energy MAE": f"{e['mae']:.2f}", "energy RMSE": f"{e['rmse']:.2f}", "force MAE": f"{f['mae']:.3f}",
          "force RMSE": f"{f['rmse']:.3f}",
          **{f"{k} published (E, F)": f"{v[0]}, {v[1]}" for k, v in PUBLISHED[el].items()}},
         parity.name),
        ("Error bars on the test set",
         {"within 1σ (expect 0.68)": f"{u.get('within_1sigma', float('nan')):.2f}",
          "within 2σ (expect 0.95)": f"{u.get('within_2sigma', float('nan')):.2f}"}, calibration.name),
        ("Equation of state", {"lattice constant (Å)": f"{a0:.4f} (DFT {dft['lattice_constant_A']:.4f})",
                               "bulk modulus (GPa)": f"{eos.bulk_modulus_GPa:.1f} "
                                                     f"(DFT {dft['elastic'].bulk_modulus_GPa:.1f})"}, eos_png.name),
        ("Elastic constants (GPa): model vs DFT",
         {k: f"{mine[k]:.1f} vs {theirs[k]:.1f}" for k in mine}, None),
        ("Molecular dynamics (NVT then NVE)", {"atoms": len(md_atoms), "steps": f"{steps} + {steps}",
                                               "NVE drift (meV/atom/ps)": f"{drift:.4f}",
                                               "µs per atom per step": f"{nve.us_per_atom_step:.0f}"}, md_png.name),
        ("Vacancy migration", {"barrier (eV)": f"{barrier.barrier:.3f} ± {sigma:.3f} (1σ)",
                               "cell": f"{barrier.extra['n_atoms']} atoms"}, barrier_png.name),
    ])
    print(f"wrote {out / 'summary.json'} and {out / 'report.html'} (plots: parity, uncertainty, eos, md, barrier)")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0
