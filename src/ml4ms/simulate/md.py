"""Molecular dynamics with any ASE calculator: thermo log, trajectory, divergence and uncertainty watch.

The integrators are ASE's (velocity Verlet, Langevin, Bussi, Nosé–Hoover chain, MTK
isotropic NPT); this module adds what a production run needs around them: a thermo log
written as the run goes (a killed run keeps it), an extxyz or ASE trajectory, a progress
bar, detection of a diverging run (non-finite or huge forces, runaway temperature) that
stops it and saves the last good frame, and an **uncertainty watch** for models that
predict error bars: the largest atomic-energy sigma is logged, and frames past a
threshold are saved (and, if asked, the run stops) -- the seed of active learning.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from ..errors import Ml4msError

#: Ensembles :func:`molecular_dynamics` runs, by name.
ENSEMBLES = ("nve", "langevin", "bussi", "nose-hoover", "npt")
#: What the uncertainty watch does with a frame past the threshold.
ON_UNCERTAIN = ("stop", "save")


class SimulationDiverged(Ml4msError, RuntimeError):
    """A simulation blew up; ``step``, the ``result`` so far and the ``last_good`` frame's path."""

    def __init__(self, message: str, *, step: int, result: MDResult, last_good: Path | None) -> None:
        super().__init__(message)
        self.step, self.result, self.last_good = step, result, last_good


@dataclass
class MDResult:
    """What a run did.

    Attributes
    ----------
    log
        Thermo log columns, one value per logged step: ``step``, ``time_ps``,
        ``temperature_K``, ``epot_eV``, ``etot_eV`` (potential plus kinetic energy of the
        whole system), and where available ``pressure_GPa``, ``volume_A3``,
        ``max_sigma_eV`` (largest predicted sigma of an atomic energy).
    status
        ``"completed"``, or ``"uncertain"`` when the uncertainty watch stopped the run.
    """

    ensemble: str
    n_atoms: int
    timestep_fs: float
    steps: int
    log: dict[str, np.ndarray]
    status: str = "completed"
    wall_seconds: float = 0.0
    uncertain_steps: list[int] = field(default_factory=list)

    @property
    def us_per_atom_step(self) -> float:
        """Wall time per atom per step, µs."""
        return 1e6 * self.wall_seconds / max(self.steps, 1) / self.n_atoms

    @property
    def ns_per_day(self) -> float:
        """Simulated nanoseconds per day of wall time."""
        return self.steps * self.timestep_fs * 1e-6 / max(self.wall_seconds, 1e-12) * 86400

    def drift(self) -> float:
        """Slope of the total energy per atom against time (least squares), meV/atom/ps.

        Meaningful for NVE only: a thermostat exchanges energy with its bath.
        """
        t, e = self.log["time_ps"], self.log["etot_eV"] / self.n_atoms
        return float(np.polyfit(t, e, 1)[0] * 1000) if len(t) > 2 else float("nan")

    def energy_change(self) -> float:
        """Largest |E_tot(t) - E_tot(0)| per atom over the run, meV/atom."""
        e = self.log["etot_eV"] / self.n_atoms
        return float(np.abs(e - e[0]).max() * 1000)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures of the run (no per-step log)."""
        out = {k: v for k, v in asdict(self).items() if k != "log"}
        temperature = self.log["temperature_K"]
        out.update(
            mean_temperature_K=float(temperature[len(temperature) // 2:].mean()),
            us_per_atom_step=self.us_per_atom_step, ns_per_day=self.ns_per_day,
        )
        if self.ensemble == "nve":  # a thermostat exchanges energy with its bath
            out.update(drift_meV_per_atom_per_ps=self.drift(), max_energy_change_meV_per_atom=self.energy_change())
        if "max_sigma_eV" in self.log:
            out["max_sigma_eV"] = float(np.nanmax(self.log["max_sigma_eV"]))
        return out


class _Diverged(Exception):
    def __init__(self, step: int, reason: str) -> None:
        self.step, self.reason = step, reason


def _integrator(atoms: Atoms, ensemble: str, timestep: float, temperature_K: float, friction_per_fs: float,
                tau_fs: float, pressure_GPa: float, tau_p_fs: float, rng: np.random.Generator):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=timestep)
    if ensemble == "langevin":
        # fixcm=False: ASE's centre-of-mass fix biases the sampled distribution (ASE >= 3.28)
        return Langevin(atoms, timestep=timestep, temperature_K=temperature_K,
                        friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    if ensemble == "bussi":
        return Bussi(atoms, timestep=timestep, temperature_K=temperature_K, taut=tau_fs * units.fs, rng=rng)
    if ensemble == "nose-hoover":
        return NoseHooverChainNVT(atoms, timestep=timestep, temperature_K=temperature_K, tdamp=tau_fs * units.fs)
    if atoms.cell.rank < 3:
        raise ValueError("NPT needs a periodic cell with three lattice vectors")
    return IsotropicMTKNPT(atoms, timestep=timestep, temperature_K=temperature_K,
                           pressure_au=pressure_GPa * units.GPa, tdamp=tau_fs * units.fs,
                           pdamp=tau_p_fs * units.fs)


def _writer(path: Path | None, closers: list):
    """A function appending one frame to ``path`` (extxyz, or an ASE .traj), or None."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # a new run starts a new file
    if path.suffix == ".traj":
        from ase.io.trajectory import Trajectory

        trajectory = Trajectory(str(path), "w")
        closers.append(trajectory.close)
        return trajectory.write
    from ase.io import write

    def append(atoms: Atoms) -> None:
        write(path, atoms, format="extxyz", append=True)

    return append


def _frame(atoms: Atoms) -> Atoms:
    """A copy of the atoms with their current results attached (for writing)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    copy = atoms.copy()
    results = {k: v for k, v in atoms.calc.results.items() if k in ("energy", "forces", "stress", "free_energy")}
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def molecular_dynamics(
    atoms: Atoms,
    *,
    ensemble: str = "nve",
    steps: int = 1000,
    timestep_fs: float = 1.0,
    temperature_K: float = 300.0,
    initial_temperature_K: float | None = None,
    friction_per_fs: float = 0.01,
    tau_fs: float = 100.0,
    pressure_GPa: float = 0.0,
    tau_p_fs: float = 1000.0,
    log_interval: int = 10,
    trajectory: str | os.PathLike | None = None,
    log: str | os.PathLike | None = None,
    uncertainty_threshold: float | None = None,
    on_uncertain: str = "save",
    uncertain_frames: str | os.PathLike | None = None,
    log_uncertainty: bool | None = None,
    max_force: float = 50.0,
    max_temperature_K: float | None = None,
    last_good: str | os.PathLike | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> MDResult:
    """Run molecular dynamics on ``atoms`` (which carry their calculator), in place.

    Parameters
    ----------
    atoms
        The system, with ``atoms.calc`` set (an ml4ms :class:`~ml4ms.simulate.Calculator`
        or any ASE calculator). Velocities already set are kept; otherwise they are drawn
        from the Maxwell–Boltzmann distribution at ``initial_temperature_K``.
    ensemble
        ``"nve"`` (velocity Verlet), ``"langevin"``, ``"bussi"`` (stochastic velocity
        rescaling, canonical), ``"nose-hoover"`` (chain of 3) or ``"npt"`` (MTK barostat,
        isotropic, with a Nosé–Hoover chain).
    steps, timestep_fs
        Number of steps and their length, fs.
    temperature_K
        Thermostat temperature, K (and the default initial temperature).
    initial_temperature_K
        Temperature of the drawn initial velocities, K; default ``temperature_K``. A perfect
        crystal started at 2T equilibrates near T under NVE (equipartition).
    friction_per_fs, tau_fs, pressure_GPa, tau_p_fs
        Langevin friction (1/fs), thermostat time constant (fs; Bussi, Nosé–Hoover, NPT),
        target pressure (GPa) and barostat time constant (fs) for NPT.
    log_interval
        Steps between log lines, trajectory frames and uncertainty checks.
    trajectory
        Path of the trajectory: ``.traj`` for an ASE trajectory, anything else extxyz.
    log
        Path of the thermo log (CSV), written as the run goes.
    uncertainty_threshold
        Largest acceptable sigma of an atomic energy, eV. A logged frame past it is
        appended to ``uncertain_frames``; with ``on_uncertain="stop"`` the run stops there.
    log_uncertainty
        Log ``max_sigma_eV``; default: when the calculator predicts ``energies_std``.
    max_force, max_temperature_K
        Divergence limits: a force above ``max_force`` (eV/Å), a non-finite energy or
        force, or a temperature above ``max_temperature_K`` (default
        ``10 × max(T, T_initial) + 1000`` K) stops the run with
        :class:`SimulationDiverged`, after saving the last good logged frame to
        ``last_good`` (default beside the trajectory or the log).
    seed
        Seed of the initial velocities and of stochastic thermostats.
    progress
        Show a progress bar.

    Returns
    -------
    MDResult
    """
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    try:  # ASE >= 3.29 renamed MaxwellBoltzmannDistribution
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    from tqdm.auto import tqdm

    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}; got {ensemble!r}")
    if on_uncertain not in ON_UNCERTAIN:
        raise ValueError(f"on_uncertain must be one of {', '.join(ON_UNCERTAIN)}; got {on_uncertain!r}")
    if steps < 0 or log_interval < 1 or timestep_fs <= 0:
        raise ValueError("steps must be >= 0, log_interval >= 1 and timestep_fs > 0")
    if atoms.calc is None:
        raise ValueError("the atoms have no calculator: set atoms.calc first")
    rng = np.random.default_rng(seed)
    t_start = temperature_K if initial_temperature_K is None else initial_temperature_K
    if not atoms.get_momenta().any() and t_start > 0:
        thermalize_momenta(atoms, temperature_K=t_start, rng=rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    limit_t = max_temperature_K if max_temperature_K is not None else 10 * max(temperature_K, t_start) + 1000
    watch = uncertainty_threshold is not None
    can_sigma = "energies_std" in getattr(atoms.calc, "implemented_properties", ())
    if watch and not can_sigma:
        raise ValueError(f"uncertainty_threshold needs a model that predicts uncertainties; "
                         f"{type(atoms.calc).__name__} gives no energies_std")
    with_sigma = can_sigma if log_uncertainty is None else bool(log_uncertainty and can_sigma)
    trajectory = None if trajectory is None else Path(trajectory)
    log_path = None if log is None else Path(log)
    anchor = trajectory or log_path
    if last_good is None and anchor is not None:
        last_good = anchor.with_name(anchor.stem + ".last_good.extxyz")
    if uncertain_frames is None and anchor is not None:
        uncertain_frames = anchor.with_name(anchor.stem + ".uncertain.extxyz")
    closers: list = []
    write_frame = _writer(trajectory, closers)
    write_uncertain = _writer(Path(uncertain_frames), closers) if watch and uncertain_frames is not None else None

    timestep = timestep_fs * units.fs
    dyn = _integrator(atoms, ensemble, timestep, temperature_K, friction_per_fs, tau_fs, pressure_GPa,
                      tau_p_fs, rng)
    periodic = atoms.cell.rank == 3
    columns = ["step", "time_ps", "temperature_K", "epot_eV", "etot_eV"]
    columns += ["pressure_GPa", "volume_A3"] if periodic else []
    columns += ["max_sigma_eV"] if with_sigma else []
    rows: list[list[float]] = []
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w", newline="", buffering=1)  # line-buffered: a killed run keeps its log
        log_writer = csv.writer(log_file)
        log_writer.writerow(columns)
    result = MDResult(ensemble, len(atoms), float(timestep_fs), 0, {})
    good: tuple[int, Atoms] | None = None
    step = 0

    def check(at_step: int) -> None:
        results = atoms.calc.results
        forces = results.get("forces")
        energy = results["energy"] if "energy" in results else atoms.get_potential_energy()
        if energy is None or forces is None or not np.isfinite(energy) or not np.isfinite(forces).all():
            raise _Diverged(at_step, "non-finite energy or forces")
        largest = float(np.sqrt((forces**2).sum(1)).max()) if len(forces) else 0.0
        if largest > max_force:
            raise _Diverged(at_step, f"a force of {largest:.3g} eV/Å exceeds max_force = {max_force:g} eV/Å")
        temperature = atoms.get_temperature()
        if not np.isfinite(temperature) or temperature > limit_t:
            raise _Diverged(at_step, f"the temperature {temperature:.4g} K exceeds {limit_t:g} K")

    def watch_frame(at_step: int, sigma: float | None, frame: Atoms) -> bool:
        """Save a frame past the threshold; True when the run must stop there."""
        if not watch or sigma is None or sigma <= uncertainty_threshold:
            return False
        result.uncertain_steps.append(at_step)
        if write_uncertain:
            write_uncertain(frame)
        if on_uncertain == "stop":
            result.status = "uncertain"
            return True
        return False

    def record(at_step: int) -> float | None:
        epot = atoms.get_potential_energy()
        row = [at_step, at_step * timestep_fs / 1000, atoms.get_temperature(), epot,
               epot + atoms.get_kinetic_energy()]
        if periodic:
            stress = atoms.get_stress(include_ideal_gas=True)
            row += [-float(stress[:3].mean()) / units.GPa, atoms.get_volume()]
        sigma = None
        if with_sigma:
            sigma = float(np.max(atoms.calc.get_property("energies_std", atoms)))
            row.append(sigma)
        rows.append(row)
        if log_file is not None:
            log_writer.writerow([f"{v:.10g}" for v in row])
        return sigma

    started = time.perf_counter()
    bar = tqdm(total=steps, desc=f"MD {ensemble}", unit="step", disable=not progress, mininterval=0.5)
    try:
        atoms.get_forces()
        check(0)
        sigma = record(0)
        good = (0, _frame(atoms))
        if write_frame:
            write_frame(good[1])
        stop = watch_frame(0, sigma, good[1])
        while step < steps and not stop:
            n = min(log_interval, steps - step)
            for _ in range(n):
                dyn.run(1)
                step += 1
                check(step)
            bar.update(n)
            sigma = record(step)
            frame = _frame(atoms)
            good = (step, frame)
            if write_frame:
                write_frame(frame)
            bar.set_postfix(T=f"{rows[-1][2]:.0f}K", Epot=f"{rows[-1][3] / len(atoms):.4f}eV/at", refresh=False)
            stop = watch_frame(step, sigma, frame)
    except _Diverged as diverged:
        result.steps, result.wall_seconds = step, time.perf_counter() - started
        result.log = {c: np.array(v) for c, v in zip(columns, zip(*rows), strict=True)} if rows else {}
        saved = None
        if good is not None and last_good is not None:
            from ase.io import write

            saved = Path(last_good)
            saved.parent.mkdir(parents=True, exist_ok=True)
            write(saved, good[1], format="extxyz")
        where = f"; the last good frame (step {good[0]}) is in {saved}" if saved else ""
        raise SimulationDiverged(f"molecular dynamics diverged at step {diverged.step}: {diverged.reason}{where}",
                                 step=diverged.step, result=result, last_good=saved) from None
    finally:
        bar.close()
        for close in closers:
            close()
        if log_file is not None:
            log_file.close()
    result.steps, result.wall_seconds = step, time.perf_counter() - started
    result.log = {c: np.array(v, dtype=np.float64) for c, v in zip(columns, zip(*rows), strict=True)}
    return result
