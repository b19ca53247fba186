"""Nudged elastic band barriers and their error bars.

Oracles: EMT's own energies and forces at the band's images (the saddle is a stationary
point, its energy the barrier); the symmetry of a vacancy hop in a perfect fcc crystal
(forward and reverse barriers equal); and, for the error bars, an independent route to
the covariance of two energies: for two structures far apart in one box,
``var(E_a + E_b) = var(E_a) + var(E_b) + 2 cov(E_a, E_b)``, each variance from the
calculator's ``energy_std`` (``model.uncertainty``), not from ``energy_covariance``.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.geometry import find_mic

from ml4ms.errors import DataError
from ml4ms.models import LennardJones
from ml4ms.simulate import Calculator, neb, vacancy_migration
from ml4ms.simulate.neb import path_sigma


def energy_std(model, atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = Calculator(model)
    return atoms.calc.get_property("energy_std", atoms)


# ----------------------------------------------------------------------------- end points
def test_end_points_must_hold_the_same_atoms():
    initial = bulk("Cu", cubic=True).repeat(2)
    fewer = initial.copy()
    del fewer[0]
    with pytest.raises(DataError, match="same atoms"):
        neb(initial, fewer, EMT())
    other = initial.copy()
    other.numbers[0] = 28  # a nickel atom
    with pytest.raises(DataError, match="same atoms"):
        neb(initial, other, EMT())
    reordered = initial.copy()
    reordered.numbers[0] = 28
    other.numbers[[0, 1]] = [29, 28]  # the same atoms, in another order
    with pytest.raises(DataError, match="same order"):
        neb(reordered, other, EMT())
    bigger = initial.copy()
    bigger.set_cell(initial.cell * 1.01, scale_atoms=True)
    with pytest.raises(DataError, match="cell"):
        neb(initial, bigger, EMT())


def test_bad_options_are_refused():
    initial = bulk("Cu", cubic=True).repeat(2)
    final = initial.copy()
    final.rattle(0.01, seed=0)
    with pytest.raises(ValueError, match="interpolation"):
        neb(initial, final, EMT(), interpolation="spline")
    with pytest.raises(ValueError, match="n_images"):
        neb(initial, final, EMT(), n_images=0)
    cluster = Atoms("Cu4", positions=np.eye(4, 3) * 2.5)
    with pytest.raises(DataError, match="periodic"):
        vacancy_migration(cluster, EMT())


# ----------------------------------------------------------------------------- EMT
def test_emt_vacancy_hop_is_a_converged_saddle(emt_cu, emt_vacancy_barrier):
    result = emt_vacancy_barrier
    assert result.converged and result.max_force < 0.01
    assert len(result.images) == 7 and result.extra["supercell"] == [2, 2, 2] and result.extra["n_atoms"] == 31
    # the hop is to a nearest-neighbour site
    assert result.extra["hop_distance_A"] == pytest.approx(emt_cu.cell[0, 0] / np.sqrt(2), abs=1e-6)
    assert np.all(np.diff(result.path) > 0) and result.path[-1] >= result.extra["hop_distance_A"]
    # EMT itself, at the band's images: energies relative to the initial state, and a
    # stationary point (all forces vanish, not only those across the band) at the saddle
    first = EMT().get_potential_energy(result.images[0])
    for image, energy in zip(result.images, result.energies, strict=True):
        assert EMT().get_potential_energy(image) - first == pytest.approx(energy, abs=1e-8)
    saddle = result.images[result.saddle_index]
    assert np.linalg.norm(EMT().get_forces(saddle), axis=1).max() < 0.02
    assert result.barrier == pytest.approx(EMT().get_potential_energy(saddle) - first, abs=1e-8)
    # copper's vacancy barrier is some tenths of an eV
    assert 0.3 < result.barrier < 1.5


def test_emt_vacancy_hop_is_symmetric(emt_vacancy_barrier):
    """In a perfect fcc crystal the vacancy and the hopped vacancy are the same defect."""
    result = emt_vacancy_barrier
    assert abs(result.energies[-1]) < 0.005
    assert result.reverse_barrier == pytest.approx(result.barrier, abs=0.005)
    assert result.saddle_index == 3  # the middle image, of seven


def test_a_model_without_uncertainties_gives_no_sigma(emt_vacancy_barrier):
    result = emt_vacancy_barrier
    assert result.sigma is None and result.barrier_sigma is None
    assert result.summary()["sigma_eV"] is None and result.summary()["barrier_sigma_eV"] is None
    assert path_sigma(EMT(), result.images) is None
    lj = Calculator(LennardJones(sigma=2.3, epsilon=0.4))
    assert path_sigma(lj, result.images) is None
    with pytest.raises(PropertyNotImplementedError):
        lj.energy_covariance(result.images)


# ----------------------------------------------------------------------------- covariance
def test_energy_covariance_diagonal_is_the_energy_std_squared(emt_gap, emt_vacancy_barrier):
    model = emt_gap.model
    images = [*emt_vacancy_barrier.images[:3], emt_gap.crystal.repeat(2)]
    covariance = Calculator(model).energy_covariance(images)
    assert covariance.shape == (4, 4) and covariance.dtype == np.float64
    stds = np.array([energy_std(model, image) for image in images])
    assert (stds > 0).all()
    np.testing.assert_allclose(np.diag(covariance), stds**2, rtol=1e-8)
    # symmetric, to the rounding of the DTC term (a difference of two sums over all pairs of atoms)
    np.testing.assert_allclose(covariance, covariance.T, rtol=0, atol=1e-8 * np.abs(covariance).max())
    assert np.linalg.eigvalsh(covariance).min() > -1e-10 * np.abs(covariance).max()


def clusters_around(images: list[Atoms], centre: np.ndarray, radius: float = 5.0) -> list[Atoms]:
    """The same atoms of each periodic image, cut out as clusters around ``centre``."""
    d0, _ = find_mic(images[0].positions - centre, images[0].cell, images[0].pbc)
    keep = np.linalg.norm(d0, axis=1) < radius
    out = []
    for image in images:
        d, _ = find_mic(image.positions[keep] - centre, image.cell, image.pbc)
        out.append(Atoms(image.numbers[keep], positions=centre + d))
    return out


def test_energy_covariance_off_diagonal_by_an_independent_route(emt_gap, emt_vacancy_barrier):
    """cov(E_a, E_b) = (var(E_a + E_b) - var(E_a) - var(E_b)) / 2, with E_a + E_b the energy of both
    clusters in one box, far beyond the cutoff from each other."""
    model = emt_gap.model
    images = emt_vacancy_barrier.images
    hopper = emt_vacancy_barrier.extra["hopping_atom"]
    a, b = clusters_around([images[0], images[2]], images[1].positions[hopper])
    assert len(a) == len(b) > 20
    both = a + Atoms(b.numbers, positions=b.positions + [60.0, 0, 0])
    var_a, var_b, var_both = (energy_std(model, x) ** 2 for x in (a, b, both))
    covariance = Calculator(model).energy_covariance([a, b])
    assert covariance[0, 1] == pytest.approx((var_both - var_a - var_b) / 2, rel=1e-6)
    np.testing.assert_allclose(np.diag(covariance), [var_a, var_b], rtol=1e-8)
    assert covariance[0, 1] > 0


def test_shared_errors_cancel_in_an_energy_difference(emt_gap, emt_vacancy_barrier):
    model = emt_gap.model
    a, b = emt_vacancy_barrier.images[:2]
    var_a, var_b = energy_std(model, a) ** 2, energy_std(model, b) ** 2
    covariance = Calculator(model).energy_covariance([a, b])
    var_difference = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    # most of the two cells is the same crystal: their errors are shared, and cancel
    assert 0 < var_difference < 0.1 * (var_a + var_b)
    sigma = path_sigma(Calculator(model), [a, b])
    assert sigma[0] == 0.0
    assert sigma[1] == pytest.approx(np.sqrt(var_difference), rel=1e-6)


def test_path_sigma_along_the_band(emt_gap, emt_vacancy_barrier):
    model = emt_gap.model
    images = emt_vacancy_barrier.images
    sigma = path_sigma(Calculator(model), images)
    assert sigma.shape == (len(images),) and sigma[0] == 0.0
    assert (sigma[1:-1] > 0).all()
    stds = np.array([energy_std(model, image) for image in images])
    # below what independent errors would give, sqrt(var_0 + var_k): the errors are shared
    assert (sigma[1:] < 0.75 * np.sqrt(stds[0] ** 2 + stds[1:] ** 2)).all()
    # the final state is the initial vacancy moved by a lattice vector: the same defect, the same error
    assert stds[-1] == pytest.approx(stds[0], rel=1e-3)
    assert sigma[-1] < 0.01 * sigma.max()
