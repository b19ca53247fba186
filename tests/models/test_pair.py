"""Lennard-Jones and Morse equal ASE's hand-written implementations, and are proper potentials.

ASE's ``LennardJones`` and ``MorsePotential`` derive forces and stresses by hand; ml4ms
gets them by autograd from the energy alone. Agreement to 1e-8 on random periodic
(cubic, triclinic, mixed pbc, cells smaller than the cutoff) and isolated structures
tests the model contract (energy sum, forces, stress sign and volume) as well as the
pair potentials.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.calculators.morse import MorsePotential as AseMorse
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ml4ms import testing
from ml4ms.models import LennardJones, Morse
from ml4ms.simulate import Calculator

N_CASES = 24
KINDS = ("cubic", "triclinic", "mixed_pbc", "small_cell", "molecule", "cluster")


# ------------------------------------------------------------------ random structures
def _random_cell(rng: np.random.Generator, scale: float, kind: str) -> np.ndarray:
    if kind == "cubic":
        return scale * np.eye(3)
    while True:
        cell = scale * (np.eye(3) + rng.uniform(-0.35, 0.35, (3, 3)))
        if abs(np.linalg.det(cell)) > 0.4 * scale**3:
            return cell


def _image_offsets(cell: np.ndarray, pbc, reach: float) -> np.ndarray:
    """All lattice translations that can bring an image within ``reach`` of a point in the cell."""
    if not np.any(pbc):
        return np.zeros((1, 3))
    volume = abs(np.linalg.det(cell))
    spacing = [
        volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)
    ]
    ranges = [
        np.arange(-m, m + 1) if p else [0]
        for m, p in zip((int(np.ceil(reach / d)) + 1 for d in spacing), pbc, strict=True)
    ]
    return np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3) @ cell


def _insert_atoms(rng, atoms: Atoms, n: int, min_distance: float, box: np.ndarray) -> Atoms:
    """Add up to ``n`` atoms at random points of ``box`` (rows = edges), none closer than
    ``min_distance`` to another atom or to any periodic image (random sequential insertion)."""
    offsets = _image_offsets(atoms.cell.array, atoms.pbc, min_distance)
    self_images = offsets[np.linalg.norm(offsets, axis=1) > 0]
    if len(self_images) and np.linalg.norm(self_images, axis=1).min() < min_distance:
        raise ValueError("the cell is too small for even one atom")
    positions = np.zeros((0, 3))
    for _ in range(200 * n):
        if len(positions) == n:
            break
        candidate = rng.random(3) @ box
        images = positions[:, None, :] + offsets[None, :, :]
        if np.all(np.linalg.norm(images - candidate, axis=-1) >= min_distance):
            positions = np.vstack([positions, candidate])
    return Atoms(["Ar"] * len(positions), positions=positions, cell=atoms.cell, pbc=atoms.pbc)


def random_structure(case: int, length: float) -> Atoms:
    """A random structure of kind ``KINDS[case % 6]``; ``length`` is the potential's size
    (sigma or r0): atoms are at least 0.88 ``length`` apart, also across periodic images."""
    rng = np.random.default_rng(1000 + case)
    kind = KINDS[case % len(KINDS)]
    min_distance = 0.88 * length
    if kind == "molecule":
        name = ["CH4", "H2O", "C6H6", "CH3CH2OH", "NH3", "C2H6"][(case // len(KINDS)) % 6]
        atoms = molecule(name)
        # Scale the molecule so that its shortest bond is a little above min_distance.
        shortest = ase_neighbor_list("d", atoms, 3.0).min()
        atoms.positions *= rng.uniform(1.0, 1.15) * min_distance / shortest
        return atoms
    if kind == "cluster":
        n = int(rng.integers(2, 14))
        atoms = _insert_atoms(rng, Atoms(pbc=False), n, min_distance, 2.2 * length * np.eye(3))
        return atoms
    if kind == "small_cell":  # much smaller than the cutoff: many images of every atom
        cell = _random_cell(rng, rng.uniform(1.1, 1.8) * length, "triclinic")
        atoms = Atoms(cell=cell, pbc=True)
        return _insert_atoms(rng, atoms, int(rng.integers(1, 3)), min_distance, cell)
    scale = rng.uniform(2.0, 4.0) * length
    cell = _random_cell(rng, scale, kind)
    pbc = [True, True, True]
    if kind == "mixed_pbc":
        pbc = [bool(b) for b in rng.random(3) < 0.5]
        pbc[int(rng.integers(3))] = True
        if all(pbc):
            pbc[int(rng.integers(3))] = False
    atoms = Atoms(cell=cell, pbc=pbc)
    n_max = max(2, int(0.3 * abs(np.linalg.det(cell)) / length**3))  # leave room to insert
    atoms = _insert_atoms(rng, atoms, min(int(rng.integers(2, 16)), n_max), min_distance, cell)
    if case % 4 == 0:  # atoms outside the cell must be handled like wrapped ones
        atoms.positions += rng.normal(0.0, scale, 3)
    return atoms


def lj_parameters(case: int) -> dict:
    rng = np.random.default_rng(case)
    sigma = float(rng.uniform(0.8, 1.6))
    params = {
        "sigma": sigma,
        "epsilon": float(rng.uniform(0.2, 2.0)),
        "rc": float(rng.uniform(2.0, 3.5)) * sigma,
        "smooth": bool(case % 2),
    }
    if case % 3 == 0:
        params["ro"] = float(rng.uniform(0.5, 0.85)) * params["rc"]
    return params


def morse_parameters(case: int) -> dict:
    rng = np.random.default_rng(case)
    rcut1 = float(rng.uniform(1.4, 2.0))
    return {
        "epsilon": float(rng.uniform(0.1, 3.0)),
        "rho0": float(rng.uniform(2.5, 7.0)),
        "r0": float(rng.uniform(0.8, 2.0)),
        "rcut1": rcut1,
        "rcut2": rcut1 + float(rng.uniform(0.3, 1.0)),
    }


# ------------------------------------------------------------------ comparison with ASE
def assert_same_as_ase(model, ase_calc, atoms: Atoms) -> None:
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc, theirs.calc = Calculator(model), ase_calc
    energy = ours.get_potential_energy()
    assert energy == pytest.approx(theirs.get_potential_energy(), rel=1e-8, abs=1e-8)
    np.testing.assert_allclose(
        ours.get_potential_energies(),
        theirs.get_potential_energies(),
        rtol=1e-8,
        atol=1e-8,
        err_msg="per-atom energies",
    )
    np.testing.assert_allclose(
        ours.get_forces(), theirs.get_forces(), rtol=1e-8, atol=1e-8, err_msg="forces"
    )
    if atoms.cell.rank == 3:
        np.testing.assert_allclose(
            ours.get_stress(), theirs.get_stress(), rtol=1e-8, atol=1e-8, err_msg="stress"
        )


def test_random_structures_cover_every_kind_of_cell():
    """The random cases include cells smaller than the cutoff, mixed pbc, atoms outside the cell."""
    structures = [random_structure(case, 1.0) for case in range(N_CASES)]
    assert all(len(a) >= 1 for a in structures)
    assert any(a.pbc.any() and not a.pbc.all() for a in structures)
    sees_itself = [
        a
        for a in structures
        if a.pbc.any() and (np.diff(ase_neighbor_list("ij", a, 2.0), axis=0) == 0).any()
    ]
    assert len(sees_itself) >= 3  # cells smaller than every cutoff used (>= 2 length units)
    assert any((a.get_scaled_positions(wrap=False) < 0).any() for a in structures if a.pbc.any())
    for a in structures:  # no atom too close to another or to its own image
        if len(a) > 1 or a.pbc.any():
            assert len(ase_neighbor_list("i", a, 0.879)) == 0


@pytest.mark.parametrize("case", range(N_CASES))
def test_lennard_jones_equals_ase(case):
    params = lj_parameters(case)
    atoms = random_structure(case, params["sigma"])
    assert_same_as_ase(LennardJones(**params), AseLennardJones(**params), atoms)


@pytest.mark.parametrize("case", range(N_CASES))
def test_morse_equals_ase(case):
    params = morse_parameters(case)
    atoms = random_structure(case, params["r0"])
    assert_same_as_ase(Morse(**params), AseMorse(**params), atoms)


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("rc", [2.5, 3.0, 4.0])
def test_lennard_jones_equals_ase_in_a_compressed_triclinic_crystal(smooth, rc):
    atoms = bulk("Cu", "fcc", a=1.5, cubic=True) * (2, 2, 2)  # nearest neighbours at 1.06 sigma
    atoms.set_cell(
        atoms.cell.array @ [[1.0, 0.05, 0.0], [0.02, 0.97, 0.0], [0.0, 0.03, 1.02]],
        scale_atoms=True,
    )
    atoms.rattle(0.03, seed=int(10 * rc))
    assert_same_as_ase(
        LennardJones(rc=rc, smooth=smooth), AseLennardJones(rc=rc, smooth=smooth), atoms
    )


def test_defaults_are_ases():
    lj, ase_lj = LennardJones(), AseLennardJones()
    assert (lj.sigma, lj.epsilon, lj.rc, lj.ro, lj.smooth) == (
        ase_lj.parameters.sigma,
        ase_lj.parameters.epsilon,
        ase_lj.parameters.rc,
        ase_lj.parameters.ro,
        ase_lj.parameters.smooth,
    )
    morse = Morse()
    assert morse.get_config() == AseMorse().parameters
    assert morse.cutoff == pytest.approx(AseMorse.default_parameters["rcut2"] * morse.r0)


def test_lennard_jones_dimer_has_its_minimum_of_minus_epsilon_at_two_to_the_sixth_sigma():
    model = LennardJones(sigma=1.3, epsilon=0.7, rc=100.0)
    r_min = 2 ** (1 / 6) * 1.3
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, r_min]])
    dimer.calc = Calculator(model)
    shift = 4 * 0.7 * ((1.3 / 100) ** 12 - (1.3 / 100) ** 6)
    assert dimer.get_potential_energy() == pytest.approx(-0.7 - shift, abs=1e-12)
    np.testing.assert_allclose(dimer.get_forces(), 0.0, atol=1e-12)


def test_morse_curvature_at_the_minimum_is_two_epsilon_rho0_squared_over_r0_squared():
    epsilon, rho0, r0 = 0.8, 4.0, 1.7
    model = Morse(epsilon=epsilon, rho0=rho0, r0=r0)
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, r0]])
    dimer.calc = Calculator(model)
    assert dimer.get_potential_energy() == pytest.approx(-epsilon, abs=1e-12)
    h = 1e-3
    dimer.positions[1, 2] = r0 + h
    k = -dimer.get_forces()[1, 2] / h  # F = -k (r - r0) to first order
    assert k == pytest.approx(2 * epsilon * (rho0 / r0) ** 2, rel=1e-2)


# ------------------------------------------------------------------ conformance
CONFORMANCE = {
    "lj_smooth": (lambda: LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=True), ()),
    "lj_shifted": (lambda: LennardJones(sigma=1.0, epsilon=1.0, rc=3.0), ("smooth_forces",)),
    "morse": (lambda: Morse(epsilon=1.0, rho0=6.0, r0=1.0), ()),
    "morse_soft": (lambda: Morse(epsilon=0.3, rho0=3.0, r0=1.4, rcut1=1.5, rcut2=2.5), ()),
}


@pytest.mark.parametrize("name", CONFORMANCE)
def test_pair_potentials_pass_the_conformance_checks(name):
    make, skip = CONFORMANCE[name]
    images = [
        random_structure(case, 1.0) for case in (1, 2, 3, 5)
    ]  # triclinic, mixed, small, cluster
    ran = testing.run_model_checks(make(), images, skip=skip)
    assert set(ran) == set(testing.CHECKS) - set(skip)


def test_shifted_lennard_jones_forces_jump_at_the_cutoff_as_ase_documents():
    # ASE: "If this option is chosen, the forces discontinuously jump to zero at the cutoff."
    model = LennardJones(sigma=1.0, epsilon=1.0, rc=3.0, smooth=False)
    testing.assert_smooth_at_cutoff(model, element="Ar", forces=False)
    with pytest.raises(AssertionError, match="the force jumps"):
        testing.assert_smooth_at_cutoff(model, element="Ar")


def test_isolated_pair_potential_atoms_have_their_reference_energy():
    for model in (
        LennardJones(reference_energies={"Ar": -0.1}),
        Morse(reference_energies={18: 0.4}),
    ):
        testing.assert_isolated_atom_energy(model, "Ar")
