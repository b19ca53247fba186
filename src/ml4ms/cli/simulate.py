"""``ml4ms md | relax | elastic | neb | vacancy-barrier``: simulations with a model file.

Each command takes a model file (or ``emt``, ASE's effective-medium potential, as a
classical reference) and a structure file, prints what it does, and writes its results as
JSON plus plots and structures into ``--output``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MODEL_HELP = "model file written by `ml4ms fit` (or `emt` for ASE's EMT, a classical reference)"


def _common(parser: argparse.ArgumentParser, name: str, structures: tuple[str, ...] = ("structure",)) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    for structure in structures:
        parser.add_argument(structure, metavar=structure.upper(), help="structure file (any format ASE reads)")
    parser.add_argument("--index", default="-1", help="which frame of a multi-frame file (default: the last)")
    parser.add_argument("--output", default=f"runs/{name}", help=f"output directory (default: runs/{name})")
    parser.add_argument("--device", default=None, help="torch device of the model (default: its own)")


def register(commands) -> None:
    md = commands.add_parser(
        "md", help="molecular dynamics (NVE, NVT, NPT) with a thermo log and an uncertainty watch",
        description="Run molecular dynamics; write the trajectory (md.extxyz), the thermo log (md.csv), a "
        "summary (md.json) and a plot of temperature and energies against time (md.png). A diverging run "
        "stops with the step and the last good frame saved.",
    )
    _common(md, "md")
    md.add_argument("--ensemble", default="nve", choices=("nve", "langevin", "bussi", "nose-hoover", "npt"))
    md.add_argument("--steps", type=int, default=1000)
    md.add_argument("--timestep", type=float, default=1.0, help="fs (default: 1)")
    md.add_argument("--temperature", type=float, default=300.0, help="K (default: 300)")
    md.add_argument("--initial-temperature", type=float, default=None,
                    help="K of the initial velocities (default: --temperature)")
    md.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default: 0.01)")
    md.add_argument("--tau", type=float, default=100.0, help="thermostat time constant, fs (default: 100)")
    md.add_argument("--pressure", type=float, default=0.0, help="NPT pressure, GPa (default: 0)")
    md.add_argument("--supercell", default=None, help="repeat the structure: N or NxMxK")
    md.add_argument("--log-interval", type=int, default=10, help="steps between log lines and frames")
    md.add_argument("--uncertainty-threshold", type=float, default=None,
                    help="eV: save frames whose largest atomic-energy sigma exceeds it")
    md.add_argument("--on-uncertain", default="save", choices=("save", "stop"),
                    help="keep going after saving an uncertain frame, or stop (default: save)")
    md.add_argument("--max-force", type=float, default=50.0, help="eV/Å above which the run counts as diverged")
    md.add_argument("--seed", type=int, default=0)
    md.set_defaults(func=run_md)

    relax = commands.add_parser(
        "relax", help="relax positions (and the cell); optionally the equation of state",
        description="Relax a structure with FIRE/BFGS (the cell through ASE's FrechetCellFilter with --cell); "
        "write relaxed.extxyz and relax.json; with --eos also the equation of state (eos.json, eos.png): "
        "equilibrium volume, lattice constant and bulk modulus.",
    )
    _common(relax, "relax")
    relax.add_argument("--cell", action="store_true", help="relax the cell too")
    relax.add_argument("--hydrostatic", action="store_true", help="keep the cell shape (with --cell)")
    relax.add_argument("--fmax", type=float, default=0.01, help="eV/Å (default: 0.01)")
    relax.add_argument("--steps", type=int, default=1000)
    relax.add_argument("--optimizer", default="FIRE", choices=("FIRE", "BFGS", "LBFGS"))
    relax.add_argument("--eos", action="store_true", help="also fit an equation of state around the result")
    relax.set_defaults(func=run_relax)

    elastic = commands.add_parser(
        "elastic", help="elastic constants from stress-strain",
        description="Relax the cell (unless --no-relax), then compute the 6x6 stiffness matrix from the "
        "stresses of ± strained cells; print C11, C12, C44 (cubic averages) and write elastic.json.",
    )
    _common(elastic, "elastic")
    elastic.add_argument("--strain", type=float, default=0.005, help="strain amplitude (default: 0.005)")
    elastic.add_argument("--no-relax", dest="relax", action="store_false", help="use the cell as given")
    elastic.add_argument("--no-relax-ions", dest="relax_ions", action="store_false",
                         help="clamped-ion constants (do not relax positions in the strained cells)")
    elastic.set_defaults(func=run_elastic)

    neb = commands.add_parser(
        "neb", help="climbing-image NEB barrier between two structures, with its error bar",
        description="Relax both end points (unless --no-relax), interpolate (IDPP) and run climbing-image "
        "NEB; write the band (neb.extxyz), neb.json (barrier, its sigma for models with uncertainties, "
        "energies along the path) and neb.png.",
    )
    _common(neb, "neb", structures=("initial", "final"))
    _neb_options(neb)
    neb.add_argument("--no-relax", dest="relax", action="store_false", help="use the end points as given")
    neb.set_defaults(func=run_neb)

    vacancy = commands.add_parser(
        "vacancy-barrier", help="vacancy-migration barrier in a crystal, with its error bar",
        description="Relax the crystal's cell (unless --no-relax), build a supercell, remove an atom, move "
        "a nearest neighbour into the vacancy, relax both end points and run climbing-image NEB; write "
        "vacancy.json, the band (vacancy.extxyz) and vacancy.png.",
    )
    _common(vacancy, "vacancy-barrier")
    vacancy.add_argument("--supercell", default=None,
                         help="N or NxMxK (default: the smallest with every height >= 10 Å)")
    vacancy.add_argument("--vacancy", type=int, default=0, help="index of the atom removed (default: 0)")
    vacancy.add_argument("--no-relax", dest="relax", action="store_false", help="use the crystal's cell as given")
    _neb_options(vacancy)
    vacancy.set_defaults(func=run_vacancy)


def _neb_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=5, help="images between the end points (default: 5)")
    parser.add_argument("--fmax", type=float, default=0.03, help="NEB force convergence, eV/Å (default: 0.03)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--no-climb", dest="climb", action="store_false", help="plain NEB, no climbing image")


def calculator_for(model: str, device: str | None = None):
    """An ASE calculator for a model file, or ASE's EMT for ``emt``."""
    if model.lower() == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    from ..simulate import Calculator

    return Calculator(model, device=device)


def read_structure(path: str, index: str, calculator) -> Any:
    """One structure from ``path``, checked against the model's elements."""
    from ase.io import read

    from ..errors import FileFormatError, UnknownElementError

    try:
        atoms = read(path, index=int(index) if index.lstrip("-").isdigit() else index)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file", path=path) from None
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot read a structure: {exc}", path=path) from None
    if isinstance(atoms, list):
        raise FileFormatError(f"{path}: --index must select one structure", path=path)
    model = getattr(calculator, "model", None)
    if model is not None and model.species is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(model.elements))
        if unknown:
            raise UnknownElementError(f"{path}: elements {', '.join(unknown)} are not among the model's "
                                      f"elements ({', '.join(model.elements)})", field="numbers")
    atoms.calc = calculator
    return atoms


def _repeat(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise ValueError(f"--supercell must be N or NxMxK with positive integers; got {text!r}")
    return tuple(parts)


def _output(args: argparse.Namespace) -> Path:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_md(args: argparse.Namespace) -> int:
    from ..report import time_series_plot, write_json
    from ..simulate import molecular_dynamics

    calc = calculator_for(args.model, args.device)
    atoms = read_structure(args.structure, args.index, calc)
    repeat = _repeat(args.supercell)
    if repeat:
        atoms = atoms.repeat(repeat)
        atoms.calc = calc
    out = _output(args)
    print(f"{args.ensemble} MD of {atoms.get_chemical_formula()} ({len(atoms)} atoms), {args.steps} steps "
          f"of {args.timestep} fs at {args.temperature} K")
    result = molecular_dynamics(
        atoms, ensemble=args.ensemble, steps=args.steps, timestep_fs=args.timestep,
        temperature_K=args.temperature, initial_temperature_K=args.initial_temperature,
        friction_per_fs=args.friction, tau_fs=args.tau, pressure_GPa=args.pressure,
        log_interval=args.log_interval, trajectory=out / "md.extxyz", log=out / "md.csv",
        uncertainty_threshold=args.uncertainty_threshold, on_uncertain=args.on_uncertain,
        max_force=args.max_force, seed=args.seed,
    )
    summary = result.summary()
    write_json(out / "md.json", summary)
    columns = {k: v for k, v in result.log.items() if k != "step"}
    time_series_plot(columns, "time_ps", out / "md.png")
    drift = (f"E_tot drift {summary['drift_meV_per_atom_per_ps']:.3f} meV/atom/ps; "
             if "drift_meV_per_atom_per_ps" in summary else "")
    print(f"status {result.status}; mean T (second half) {summary['mean_temperature_K']:.0f} K; {drift}"
          f"{summary['us_per_atom_step']:.0f} µs/atom/step ({summary['ns_per_day']:.2f} ns/day)")
    if result.uncertain_steps:
        print(f"{len(result.uncertain_steps)} frames past the uncertainty threshold, first at step "
              f"{result.uncertain_steps[0]}, saved to {out / 'md.uncertain.extxyz'}")
    print(f"wrote {out / 'md.extxyz'}, {out / 'md.csv'}, {out / 'md.json'}, {out / 'md.png'}")
    return 0


def run_relax(args: argparse.Namespace) -> int:
    from ase.io import write

    from ..report import eos_plot, write_json
    from ..simulate import equation_of_state, relax

    calc = calculator_for(args.model, args.device)
    atoms = read_structure(args.structure, args.index, calc)
    out = _output(args)
    result = relax(atoms, cell=args.cell, hydrostatic=args.hydrostatic, fmax=args.fmax, steps=args.steps,
                   optimizer=args.optimizer)
    summary: dict[str, Any] = {"relax": result.summary()}
    print(f"{'converged' if result.converged else 'NOT converged'} in {result.steps} steps: "
          f"E = {result.energy:.6f} eV ({result.energy / len(atoms):.6f} eV/atom), max force "
          f"{result.max_force:.4f} eV/Å" + (f", max stress {result.max_stress_GPa:.4f} GPa" if args.cell else ""))
    if args.cell:
        print("cell lengths (Å): " + " ".join(f"{x:.5f}" for x in atoms.cell.lengths()))
    if args.eos:
        eos = equation_of_state(atoms, relax_positions=len(atoms) > 1)
        summary["eos"] = eos.summary()
        eos_plot(eos.volumes, eos.energies, out / "eos.png", eos.eos)
        print(f"equation of state: V0 {eos.volume:.4f} Å³, lattice constant {eos.lattice_constant:.5f} Å, "
              f"bulk modulus {eos.bulk_modulus_GPa:.1f} GPa")
    write(out / "relaxed.extxyz", atoms, format="extxyz")
    write_json(out / "relax.json", summary)
    print(f"wrote {out / 'relaxed.extxyz'}, {out / 'relax.json'}")
    return 0 if result.converged else 1


def run_elastic(args: argparse.Namespace) -> int:
    import numpy as np

    from ..report import write_json
    from ..simulate import elastic_constants, relax

    calc = calculator_for(args.model, args.device)
    atoms = read_structure(args.structure, args.index, calc)
    out = _output(args)
    if args.relax:
        relaxed = relax(atoms, cell=True, fmax=1e-4, steps=2000)
        print(f"relaxed the cell in {relaxed.steps} steps: lengths "
              + " ".join(f"{x:.5f}" for x in atoms.cell.lengths()) + " Å")
    result = elastic_constants(atoms, strain=args.strain, relax_ions=args.relax_ions)
    with np.printoptions(precision=1, suppress=True):
        print("C (GPa), Voigt order xx yy zz yz xz xy:")
        print(result.C)
    cubic = result.cubic()
    print(f"C11 {cubic['C11']:.1f}  C12 {cubic['C12']:.1f}  C44 {cubic['C44']:.1f} GPa (cubic averages); "
          f"Voigt bulk modulus {result.bulk_modulus_GPa:.1f} GPa")
    write_json(out / "elastic.json", {**result.summary(), "cell_A": atoms.cell.array.tolist()})
    print(f"wrote {out / 'elastic.json'}")
    return 0


def _report_barrier(result, out: Path, stem: str, title: str) -> None:
    from ase.io import write

    from ..report import barrier_plot, write_json

    sigma = result.barrier_sigma
    error = f" ± {sigma:.3f} (1σ)" if sigma is not None else ""
    print(f"barrier {result.barrier:.3f}{error} eV (reverse {result.reverse_barrier:.3f} eV); "
          f"{'converged' if result.converged else 'NOT converged'} in {result.steps} steps, "
          f"max NEB force {result.max_force:.3f} eV/Å")
    write(out / f"{stem}.extxyz", result.images, format="extxyz")
    write_json(out / f"{stem}.json", result.summary())
    barrier_plot(result.path, result.energies, result.sigma, out / f"{stem}.png", title)
    print(f"wrote {out / (stem + '.json')}, {out / (stem + '.extxyz')}, {out / (stem + '.png')}")


def run_neb(args: argparse.Namespace) -> int:
    from ..simulate import neb, relax

    calc = calculator_for(args.model, args.device)
    initial = read_structure(args.initial, args.index, calc)
    final = read_structure(args.final, args.index, calc)
    out = _output(args)
    if args.relax:
        for end in (initial, final):
            relax(end, fmax=0.01)
    result = neb(initial, final, calc, n_images=args.images, climb=args.climb, fmax=args.fmax, steps=args.steps)
    _report_barrier(result, out, "neb", "NEB")
    return 0 if result.converged else 1


def run_vacancy(args: argparse.Namespace) -> int:
    from ..simulate import relax, vacancy_migration

    calc = calculator_for(args.model, args.device)
    crystal = read_structure(args.structure, args.index, calc)
    out = _output(args)
    if args.relax:
        relax(crystal, cell=True, fmax=1e-4, steps=2000)
        print("relaxed crystal cell lengths (Å): " + " ".join(f"{x:.5f}" for x in crystal.cell.lengths()))
    result = vacancy_migration(crystal, calc, supercell=_repeat(args.supercell), vacancy=args.vacancy,
                               n_images=args.images, climb=args.climb, fmax=args.fmax, steps=args.steps)
    print(f"supercell {result.extra['supercell']} with {result.extra['n_atoms']} atoms, hop of "
          f"{result.extra['hop_distance_A']:.3f} Å")
    _report_barrier(result, out, "vacancy", f"vacancy migration in {crystal.get_chemical_formula()}")
    return 0 if result.converged else 1
