"""``ml4ms bo CONFIG.yaml``: conformer search over torsion angles by Bayesian optimisation.

The configuration names a molecule, a calculator and the torsions to turn::

    structure: molecule:trans-butane   # a file ASE reads, a dataset spec, or molecule:NAME (ASE's g2 set)
    structure_index: 0                 # which frame of a multi-frame file
    calculator: emt                    # emt | a model file | FILE.py:NAME | {name: ..., options}
    torsions:                          # atom quadruples (a, b, c, d); angle = dihedral a-b-c-d
      - [0, 1, 2, 3]
    n_iter: 30                         # acquisition rounds after the initial design
    n_initial: null                    # default max(3, 2 x torsions)
    acquisition: ei                    # ei | lcb
    batch_size: 1
    kernel: matern52                   # matern52 | matern32 | rbf
    energy_cap: null                   # eV above the input: higher energies are capped for the surrogate
    seed: 0
    output: runs/bo

Relative paths are looked up beside the configuration file when they do not exist
from the working directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..config import _Strict


class BOConfig(_Strict):
    """Configuration of ``ml4ms bo``."""

    structure: str = Field(description="structure file, dataset spec, or molecule:NAME from ASE's g2 collection")
    structure_index: int = 0
    calculator: str | dict[str, Any] = Field(
        description="emt, a model file, FILE.py:NAME (an ASE calculator class or factory), or a mapping "
        "{name: emt|lj|morse|FILE.py:NAME, ...options}")
    torsions: list[list[int]] = Field(min_length=1, description="atom quadruples (a, b, c, d)")
    n_iter: int = Field(30, ge=1)
    n_initial: int | None = Field(None, ge=1)
    acquisition: str = "ei"
    batch_size: int = Field(1, ge=1)
    kernel: str = "matern52"
    kappa: float = Field(2.0, ge=0)
    energy_cap: float | None = Field(None, description="eV above the input structure's energy: higher energies "
                                     "(clashes) reach the surrogate capped at this value")
    seed: int = 0
    output: str = "runs/bo"

    @field_validator("torsions")
    @classmethod
    def _quadruples(cls, value):
        for t in value:
            if len(t) != 4:
                raise ValueError(f"each torsion is four atom indices, got {t}")
        return value


def register(commands) -> None:
    parser = commands.add_parser(
        "bo", help="conformer search over torsion angles by Bayesian optimisation (as BOSS)",
        description="Find the lowest-energy conformer of a molecule by turning the torsions named in CONFIG "
        "(YAML) and evaluating the energy with the calculator it names, choosing each next conformer by "
        "Bayesian optimisation. Writes results.json (best and predicted-minimum angles and energies, every "
        "evaluation), best.extxyz, convergence.png and, for one or two torsions, surrogate.png.",
    )
    parser.add_argument("config", metavar="CONFIG", help="YAML configuration (see the module docstring)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration value, e.g. --set n_iter=10")
    parser.set_defaults(func=run)


def _resolve(path: str, base: Path) -> str:
    """``path`` as given when it exists, else beside the configuration file if it exists there."""
    candidate = base / path
    return path if Path(path).exists() or not candidate.exists() else str(candidate)


def load_structure(spec: str, index: int, base: Path):
    from ..errors import ConfigError

    if spec.startswith("molecule:"):
        from ase.build import molecule

        name = spec.split(":", 1)[1]
        try:
            return molecule(name)
        except KeyError:
            raise ConfigError(f"structure: {name!r} is not in ASE's g2 collection of molecules") from None
    from ..data.sources import read_structures

    images = read_structures(_resolve(spec, base))
    if not -len(images) <= index < len(images):
        raise ConfigError(f"structure_index {index} is out of range for {len(images)} structures in {spec}")
    return images[index]


def _from_python_file(spec: str, base: Path):
    import importlib.util

    from ..errors import ConfigError

    file, _, name = spec.rpartition(":")
    path = Path(_resolve(file, base))
    if not path.is_file():
        raise ConfigError(f"calculator: no such Python file {file}")
    module_spec = importlib.util.spec_from_file_location(f"_ml4ms_user_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise ConfigError(f"calculator: {path} defines no {name!r}")
    return getattr(module, name)


def calculator_from_config(spec: str | dict[str, Any], base: Path = Path(".")):
    """An ASE calculator from ``emt``, a model file, ``FILE.py:NAME`` or ``{name: ..., **options}``."""
    from ..errors import ConfigError

    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        name = str(options.pop("name", ""))
        if not name:
            raise ConfigError("calculator: a mapping needs a 'name' (emt, lj, morse, FILE.py:NAME)")
    else:
        name = spec
    lowered = name.lower()
    try:
        if lowered == "emt":
            from ase.calculators.emt import EMT

            return EMT(**options)
        if lowered == "lj":
            from ase.calculators.lj import LennardJones

            return LennardJones(**options)
        if lowered == "morse":
            from ase.calculators.morse import MorsePotential

            return MorsePotential(**options)
        if ".py:" in name:
            return _from_python_file(name, base)(**options)
    except TypeError as exc:
        raise ConfigError(f"calculator {name}: {exc}") from None
    path = _resolve(name, base)
    if not Path(path).is_file():
        raise ConfigError(f"calculator: {name!r} is neither emt, lj, morse, FILE.py:NAME nor a model file")
    from ..simulate import Calculator

    return Calculator(path, **options)


def run(args: argparse.Namespace) -> int:
    from ase.io import write as ase_write

    from .._files import atomic_path
    from ..bayes.bo import TorsionObjective, convergence_plot, minimize, surrogate_plot
    from ..config import load_fit_config
    from ..report import write_json

    config: BOConfig = load_fit_config(args.config, args.overrides, schema=BOConfig)
    base = Path(args.config).resolve().parent
    atoms = load_structure(config.structure, config.structure_index, base)
    calculator = calculator_from_config(config.calculator, base)
    objective = TorsionObjective(atoms, config.torsions, calculator)
    print(f"{atoms.get_chemical_formula()}: {len(config.torsions)} torsions, initial angles "
          + ", ".join(f"{a:.1f}" for a in objective.initial_angles) + f" deg, E0 = {objective.reference_energy:.4f} eV")
    result = minimize(objective, objective.bounds, config.n_iter, n_initial=config.n_initial,
                      acquisition=config.acquisition, periodic=objective.periodic, batch_size=config.batch_size,
                      kernel=config.kernel, kappa=config.kappa, y_cap=config.energy_cap, seed=config.seed,
                      progress=True)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    best = objective.structure(result.x_best)
    best.info["energy"] = result.f_best + objective.reference_energy
    predicted = objective.structure(result.x_min_predicted)
    with atomic_path(out / "best.extxyz") as tmp:
        ase_write(tmp, best, format="extxyz")
    with atomic_path(out / "predicted_minimum.extxyz") as tmp:
        ase_write(tmp, predicted, format="extxyz")
    labels = [f"torsion {'-'.join(map(str, t))} (deg)" for t in config.torsions]
    convergence_plot(result, out / "convergence.png", ylabel="E - E(input) (eV)")
    files = ["results.json", "best.extxyz", "predicted_minimum.extxyz", "convergence.png"]
    if len(config.torsions) <= 2:
        surrogate_plot(result, out / "surrogate.png", labels=labels, zlabel="E - E(input) (eV)")
        files.append("surrogate.png")
    summary = {"config": config.model_dump(), "formula": atoms.get_chemical_formula(),
               "initial_angles_deg": objective.initial_angles.tolist(),
               "reference_energy_eV": objective.reference_energy,
               "units": {"angles": "deg", "energies": "eV relative to the input structure"},
               **result.to_dict(), "files": files}
    write_json(out / "results.json", summary)
    print(f"best: {', '.join(f'{a:.1f}' for a in result.x_best)} deg, E - E0 = {result.f_best:.4f} eV "
          f"after {result.n_evaluations} evaluations ({result.n_failed} failed)")
    print(f"predicted minimum: {', '.join(f'{a:.1f}' for a in result.x_min_predicted)} deg, "
          f"{result.f_min_predicted:.4f} ± {result.f_min_std:.4f} eV")
    print(f"wrote {', '.join(files)} to {out}")
    return 0

