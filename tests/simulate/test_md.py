"""Molecular dynamics: conservation, thermostats, the thermo log, trajectories, the uncertainty
watch, divergence, and small periodic cells.

Oracles: conservation of the total energy under NVE; equipartition (a thermostat holds
the mean kinetic temperature at its target); the log and trajectory recomputed
independently from the frames written (EMT energy, stress and the momenta); the run
repeated without a watch, its frames' uncertainties recomputed by a fresh calculator; a
calculator that is known to fail at a given call; and the identity of a crystal's energy
per atom whichever periodic cell describes it.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.io import read

from ml4ms.simulate import Calculator, MDResult, SimulationDiverged, molecular_dynamics

LOG_COLUMNS = ["step", "time_ps", "temperature_K", "epot_eV", "etot_eV", "pressure_GPa", "volume_A3"]


def emt_atoms(crystal: Atoms, repeat: int = 1) -> Atoms:
    atoms = crystal.repeat(repeat)
    atoms.calc = EMT()
    return atoms


def gp_atoms(emt_gap, repeat: int = 1) -> Atoms:
    atoms = emt_gap.crystal.repeat(repeat)
    atoms.calc = Calculator(emt_gap.model)
    return atoms


def assert_conserves_energy(result: MDResult, n_atoms: int) -> None:
    """NVE: the total energy per atom stays within 1 meV of its start, and does not drift."""
    log = result.log
    assert result.status == "completed"
    etot = log["etot_eV"] / n_atoms
    assert np.abs(etot - etot[0]).max() < 1e-3, f"total energy wandered {np.abs(etot - etot[0]).max():.2e} eV/atom"
    slope = np.polyfit(log["time_ps"], etot, 1)[0]  # eV/atom/ps
    assert abs(slope) < 1e-4, f"total energy drifts {slope * 1e3:.3g} meV/atom/ps"
    # the run did something: the kinetic energy is exchanged with the potential energy
    assert np.ptp(log["epot_eV"] / n_atoms) > 5e-3
    assert result.energy_change() == pytest.approx(np.abs(etot - etot[0]).max() * 1e3, rel=1e-9)
    assert result.drift() == pytest.approx(slope * 1e3, rel=1e-6, abs=1e-9)


# ----------------------------------------------------------------------------- NVE
def test_nve_with_emt_conserves_energy(emt_cu):
    atoms = emt_atoms(emt_cu, 3)  # 108 atoms
    result = molecular_dynamics(atoms, ensemble="nve", steps=300, timestep_fs=1.0, temperature_K=300,
                                log_interval=10, seed=1, progress=False)
    assert result.steps == 300 and result.n_atoms == 108
    assert_conserves_energy(result, len(atoms))
    # the last log line is the state the atoms were left in
    assert result.log["etot_eV"][-1] == pytest.approx(
        EMT().get_potential_energy(atoms) + atoms.get_kinetic_energy(), abs=1e-9)
    assert result.log["time_ps"][-1] == pytest.approx(0.3)


def test_nve_with_the_gp_conserves_energy(emt_gap):
    atoms = gp_atoms(emt_gap, 3)
    result = molecular_dynamics(atoms, ensemble="nve", steps=300, timestep_fs=1.0, temperature_K=300,
                                log_interval=10, seed=2, progress=False, log_uncertainty=False)
    assert "max_sigma_eV" not in result.log
    assert_conserves_energy(result, len(atoms))


def test_nve_in_a_cell_smaller_than_twice_the_cutoff(emt_gap):
    """A 4-atom cubic cell (3.6 Å, cutoff 4.5 Å): the model sees the periodic images."""
    atoms = gp_atoms(emt_gap)
    assert min(atoms.cell.lengths()) < 2 * emt_gap.model.cutoff
    result = molecular_dynamics(atoms, ensemble="nve", steps=200, timestep_fs=1.0, temperature_K=300,
                                log_interval=10, seed=3, progress=False, log_uncertainty=False)
    assert_conserves_energy(result, len(atoms))


def test_small_cells_give_the_energy_of_the_crystal(emt_gap):
    """One crystal, three periodic cells: 1 atom (primitive), 4 (cubic), 108 (3x3x3)."""
    calc = Calculator(emt_gap.model)
    a = emt_gap.crystal.cell[0, 0]
    primitive, cubic = bulk("Cu", "fcc", a=a), bulk("Cu", "fcc", a=a, cubic=True)
    assert len(primitive) == 1 and max(primitive.cell.lengths()) < emt_gap.model.cutoff
    per_atom = {}
    for name, atoms in {"primitive": primitive, "cubic": cubic, "3x3x3": cubic.repeat(3)}.items():
        atoms.calc = calc
        per_atom[name] = atoms.get_potential_energy() / len(atoms)
        assert np.abs(atoms.get_forces()).max() < 1e-8
    assert per_atom["primitive"] == pytest.approx(per_atom["cubic"], abs=1e-8)
    assert per_atom["3x3x3"] == pytest.approx(per_atom["cubic"], abs=1e-8)
    # and it is copper's energy, not that of a few isolated atoms
    assert per_atom["cubic"] == pytest.approx(EMT().get_potential_energy(cubic) / 4, abs=5e-3)


# ----------------------------------------------------------------------------- thermostats
@pytest.mark.parametrize("ensemble, options", [("langevin", {"friction_per_fs": 0.05}), ("bussi", {"tau_fs": 20.0})])
def test_thermostat_brings_the_crystal_to_its_temperature(emt_cu, ensemble, options):
    """Started at 100 K (NVE alone would settle near 50 K), held at 500 K."""
    atoms = emt_atoms(emt_cu, 3)
    target = 500.0
    result = molecular_dynamics(atoms, ensemble=ensemble, steps=400, timestep_fs=2.0, temperature_K=target,
                                initial_temperature_K=100, log_interval=4, seed=4, progress=False, **options)
    temperature = result.log["temperature_K"]
    assert temperature[0] < 200
    equilibrated = temperature[len(temperature) // 2:]  # the last 400 fs
    # canonical fluctuations of the kinetic temperature: T sqrt(2 / 3N) per sample (~39 K);
    # the mean of ~400 fs of correlated samples is good to ~15 K
    assert equilibrated.mean() == pytest.approx(target, rel=0.08)
    assert 0.4 * target * np.sqrt(2 / (3 * len(atoms))) < equilibrated.std() < 2 * target * np.sqrt(2 / (3 * len(atoms)))
    assert result.summary()["mean_temperature_K"] == pytest.approx(equilibrated.mean())


# ----------------------------------------------------------------------------- log and trajectory
def read_log(path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


@pytest.mark.parametrize("steps, logged", [(20, [0, 5, 10, 15, 20]), (22, [0, 5, 10, 15, 20, 22])])
def test_thermo_log_and_extxyz_trajectory(emt_cu, tmp_path, steps, logged):
    atoms = emt_atoms(emt_cu, 2)
    atoms.rattle(0.02, seed=5)
    log, trajectory = tmp_path / "run" / "thermo.csv", tmp_path / "run" / "md.extxyz"
    result = molecular_dynamics(atoms, steps=steps, timestep_fs=2.0, log_interval=5, log=log,
                                trajectory=trajectory, seed=5, progress=False)
    header, table = read_log(log)
    assert header == LOG_COLUMNS and list(result.log) == LOG_COLUMNS
    np.testing.assert_array_equal(table[:, 0], logged)
    np.testing.assert_allclose(table[:, 1], np.array(logged) * 2.0 / 1000, rtol=1e-9)
    for j, name in enumerate(header):
        np.testing.assert_allclose(table[:, j], result.log[name], rtol=1e-9, atol=1e-12)
    frames = read(trajectory, ":")
    assert len(frames) == len(logged)
    np.testing.assert_allclose(frames[-1].positions, atoms.positions, atol=1e-7)
    # every log line recomputed from its frame: EMT energy and stress, and the frame's momenta
    for frame, row in zip(frames, table, strict=True):
        energy, stress = EMT().get_potential_energy(frame), EMT().get_stress(frame)
        kinetic = frame.get_kinetic_energy()
        temperature = 2 * kinetic / (3 * len(frame) * units.kB)
        pressure = (-stress[:3].sum() + 2 * kinetic / frame.get_volume()) / 3 / units.GPa
        assert kinetic > 0
        assert row[2] == pytest.approx(temperature, rel=1e-6)
        assert row[3] == pytest.approx(energy, abs=1e-6)
        assert row[4] == pytest.approx(energy + kinetic, abs=1e-6)
        assert row[5] == pytest.approx(pressure, abs=1e-5)
        assert row[6] == pytest.approx(frame.get_volume(), rel=1e-9)
        # the frame carries the model's results for that geometry
        assert frame.get_potential_energy() == pytest.approx(energy, abs=1e-6)
        np.testing.assert_allclose(frame.get_forces(), EMT().get_forces(frame), atol=1e-5)


def test_ase_trajectory_and_a_cluster_log(tmp_path):
    from ase.cluster import Octahedron
    from ase.io.trajectory import Trajectory

    atoms = Octahedron("Cu", 3)  # a cluster: no pressure, no volume
    atoms.calc = EMT()
    path = tmp_path / "md.traj"
    result = molecular_dynamics(atoms, steps=12, log_interval=4, trajectory=path, log=tmp_path / "log.csv",
                                seed=6, progress=False)
    assert list(result.log) == LOG_COLUMNS[:5]
    assert read_log(tmp_path / "log.csv")[0] == LOG_COLUMNS[:5]
    with Trajectory(str(path)) as trajectory:
        assert len(trajectory) == 4
        np.testing.assert_allclose(trajectory[-1].positions, atoms.positions, atol=1e-12)
    # a cluster keeps no net momentum or rotation from the initial velocities
    assert np.abs(atoms.get_momenta().sum(0)).max() < 1e-9


def test_bad_arguments_are_refused(emt_cu):
    atoms = emt_atoms(emt_cu)
    with pytest.raises(ValueError, match="ensemble"):
        molecular_dynamics(atoms, ensemble="nvt", steps=1, progress=False)
    with pytest.raises(ValueError, match="on_uncertain"):
        molecular_dynamics(atoms, on_uncertain="ignore", steps=1, progress=False)
    with pytest.raises(ValueError):
        molecular_dynamics(atoms, log_interval=0, steps=1, progress=False)
    with pytest.raises(ValueError, match="calculator"):
        molecular_dynamics(emt_cu.repeat(1), steps=1, progress=False)
    # nothing ran
    assert not atoms.get_momenta().any()


# ----------------------------------------------------------------------------- uncertainty watch
def sigmas_of(frames: list[Atoms], model) -> np.ndarray:
    """Largest atomic-energy sigma of each frame, by a calculator of its own."""
    out = []
    for frame in frames:
        frame = frame.copy()
        frame.calc = Calculator(model)
        out.append(float(np.max(frame.calc.get_property("energies_std", frame))))
    return np.array(out)


@pytest.fixture
def unwatched(emt_gap, tmp_path_factory):
    """A hot run of the 4-atom GP crystal without a watch: its frames and their sigmas (recomputed)."""
    path = tmp_path_factory.mktemp("unwatched") / "md.extxyz"
    atoms = gp_atoms(emt_gap)
    molecular_dynamics(atoms, steps=60, log_interval=5, initial_temperature_K=1200, seed=7, trajectory=path,
                       progress=False)
    frames = read(path, ":")
    return frames, sigmas_of(frames, emt_gap.model)


def watched(emt_gap, tmp_path, **options) -> tuple[MDResult, Atoms]:
    atoms = gp_atoms(emt_gap)
    result = molecular_dynamics(atoms, steps=60, log_interval=5, initial_temperature_K=1200, seed=7,
                                uncertain_frames=tmp_path / "uncertain.extxyz", progress=False, **options)
    return result, atoms


def test_uncertainty_watch_stops_at_the_first_frame_past_the_threshold(emt_gap, unwatched, tmp_path):
    frames, sigma = unwatched
    # a threshold the start is below and the hot frames rise above
    threshold = 0.5 * (sigma[0] + sigma.max())
    first = int(np.argmax(sigma > threshold))
    assert 1 < first < len(frames) - 1
    result, atoms = watched(emt_gap, tmp_path, uncertainty_threshold=threshold, on_uncertain="stop")
    assert result.status == "uncertain"
    assert result.steps == 5 * first and result.uncertain_steps == [5 * first]
    np.testing.assert_allclose(result.log["max_sigma_eV"], sigma[:first + 1], rtol=1e-6)
    saved = read(tmp_path / "uncertain.extxyz", ":")
    assert len(saved) == 1
    np.testing.assert_allclose(saved[0].positions, frames[first].positions, atol=1e-6)
    np.testing.assert_allclose(saved[0].positions, atoms.positions, atol=1e-7)
    assert sigmas_of(saved, emt_gap.model)[0] > threshold


def test_uncertainty_watch_saves_and_goes_on(emt_gap, unwatched, tmp_path):
    frames, sigma = unwatched
    threshold = 0.5 * (sigma[0] + sigma.max())
    result, _ = watched(emt_gap, tmp_path, uncertainty_threshold=threshold, on_uncertain="save")
    assert result.status == "completed" and result.steps == 60
    expected = [5 * k for k in np.flatnonzero(sigma > threshold)]
    assert len(expected) >= 1 and result.uncertain_steps == expected
    saved = read(tmp_path / "uncertain.extxyz", ":")
    assert len(saved) == len(expected)
    for frame, step in zip(saved, expected, strict=True):
        np.testing.assert_allclose(frame.positions, frames[step // 5].positions, atol=1e-6)
    assert result.summary()["max_sigma_eV"] == pytest.approx(sigma.max(), rel=1e-6)


def test_uncertainty_watch_with_a_tiny_threshold_stops_at_the_first_logged_step(emt_gap, tmp_path):
    result, atoms = watched(emt_gap, tmp_path, uncertainty_threshold=1e-12, on_uncertain="stop")
    assert result.status == "uncertain"
    assert result.steps == result.uncertain_steps[0] == result.log["step"][-1] <= 5
    saved = read(tmp_path / "uncertain.extxyz", ":")
    assert len(saved) == 1
    np.testing.assert_allclose(saved[0].positions, atoms.positions, atol=1e-7)


def test_uncertainty_watch_checks_the_starting_frame(emt_gap, tmp_path):
    """The docstring: 'A logged frame past it is appended to uncertain_frames; with on_uncertain="stop" the
    run stops there'. Step 0 is a logged frame."""
    result, _ = watched(emt_gap, tmp_path, uncertainty_threshold=1e-12, on_uncertain="stop")
    assert result.status == "uncertain" and result.steps == 0 and result.uncertain_steps == [0]


def test_uncertainty_watch_needs_a_model_with_uncertainties(emt_cu):
    atoms = emt_atoms(emt_cu)
    with pytest.raises(ValueError, match="uncertaint"):
        molecular_dynamics(atoms, steps=5, uncertainty_threshold=0.01, progress=False)
    result = molecular_dynamics(atoms, steps=5, progress=False)
    assert "max_sigma_eV" not in result.log


# ----------------------------------------------------------------------------- divergence
class EMTThatFails(EMT):
    """EMT, until the ``good``-th evaluation; NaN energy and forces after it."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good, self.calls = good, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > self.good:
            self.results["energy"] = np.nan
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)


def test_a_run_that_turns_nan_stops_and_keeps_its_last_good_frame(emt_cu, tmp_path):
    # one evaluation per step: step 0, then one per velocity-Verlet step, so step 13 is the first bad one
    atoms = emt_atoms(emt_cu)
    atoms.calc = EMTThatFails(good=13)
    trajectory = tmp_path / "md.extxyz"
    with pytest.raises(SimulationDiverged, match="step 13") as caught:
        molecular_dynamics(atoms, steps=40, log_interval=5, trajectory=trajectory, log=tmp_path / "log.csv",
                           seed=8, progress=False)
    error = caught.value
    assert error.step == 13 and error.result.steps == 13
    np.testing.assert_array_equal(error.result.log["step"], [0, 5, 10])
    assert error.last_good == tmp_path / "md.last_good.extxyz" and error.last_good.is_file()
    good = read(error.last_good)
    # the same run with a plain EMT, stopped at step 10
    reference = emt_atoms(emt_cu)
    molecular_dynamics(reference, steps=10, log_interval=5, seed=8, progress=False)
    np.testing.assert_allclose(good.positions, reference.positions, atol=1e-7)
    np.testing.assert_allclose(good.get_momenta(), reference.get_momenta(), atol=1e-7)
    assert good.get_potential_energy() == pytest.approx(EMT().get_potential_energy(reference), abs=1e-6)
    # the trajectory and the log stop at the last good frame
    assert len(read(trajectory, ":")) == 3
    assert read_log(tmp_path / "log.csv")[1][:, 0].tolist() == [0, 5, 10]


def test_huge_forces_stop_the_run_at_once():
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.0]])  # 1 Å apart, sigma 3.4 Å
    atoms.calc = AseLennardJones(sigma=3.405, epsilon=0.0103, rc=10.0)
    assert np.abs(atoms.get_forces()).max() > 1e3
    with pytest.raises(SimulationDiverged, match="max_force") as caught:
        molecular_dynamics(atoms, steps=10, initial_temperature_K=0, progress=False)
    assert caught.value.step == 0 and caught.value.last_good is None


def test_a_runaway_temperature_stops_the_run(emt_cu, tmp_path):
    """A thermostat far hotter than the limit: the run stops once the temperature passes it."""
    atoms = emt_atoms(emt_cu, 2)
    last_good = tmp_path / "good.extxyz"
    with pytest.raises(SimulationDiverged, match="temperature") as caught:
        molecular_dynamics(atoms, ensemble="langevin", steps=400, log_interval=5, temperature_K=3000,
                           initial_temperature_K=100, friction_per_fs=0.1, max_temperature_K=600, seed=9,
                           last_good=last_good, progress=False)
    error = caught.value
    assert error.step > 0 and atoms.get_temperature() > 600
    logged = error.result.log
    assert logged["step"][-1] == 5 * ((error.step - 1) // 5) and (logged["temperature_K"] <= 600).all()
    assert error.last_good == last_good
    good = read(last_good)
    assert good.get_temperature() == pytest.approx(logged["temperature_K"][-1], rel=1e-6)
