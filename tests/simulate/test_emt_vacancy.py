"""The issue's check: a sparse GP fitted to EMT labels reproduces EMT's physics.

EMT is the oracle: the GP, trained on EMT energies, forces and stresses of copper (bulk,
molecular dynamics, the vacancy and EMT's own migration path, all rattled), must give
EMT's lattice constant (to 0.5 %), elastic constants (5 %) and vacancy-migration barrier
(30 meV, with EMT's value inside the GP's own 2-sigma interval). Both potentials go
through the same procedures: ``relax(cell=True)``, ``elastic_constants`` and
``vacancy_migration`` in a 2x2x2 cubic supercell with 5 images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from ml4ms.simulate import (
    BarrierResult,
    Calculator,
    ElasticResult,
    elastic_constants,
    relax,
    vacancy_migration,
)

#: The vacancy-migration calculation of the issue (the EMT reference is done the same way).
VACANCY_NEB = {"supercell": 2, "n_images": 5, "fmax": 0.01}


@dataclass
class GapResults:
    crystal: Atoms
    elastic: ElasticResult
    barrier: BarrierResult


@pytest.fixture(scope="module")
def gap(emt_gap, single_threaded) -> GapResults:
    with single_threaded():
        calc = Calculator(emt_gap.model)
        crystal = bulk("Cu", "fcc", a=3.61, cubic=True)  # ASE's lattice constant, not EMT's
        crystal.calc = calc
        assert relax(crystal, cell=True, fmax=1e-4).converged
        return GapResults(crystal, elastic_constants(crystal), vacancy_migration(crystal, calc, **VACANCY_NEB))


@pytest.fixture(scope="module")
def emt_elastic(emt_gap, single_threaded) -> ElasticResult:
    with single_threaded():
        return elastic_constants(emt_gap.crystal)


def test_reference_is_emt_relaxed_the_same_way(emt_gap):
    crystal = emt_gap.crystal
    assert np.abs(crystal.get_stress()).max() < 1e-6 and np.ptp(crystal.cell.lengths()) < 1e-6
    barrier = emt_gap.emt_barrier
    assert barrier.extra["supercell"] == [2, 2, 2] and len(barrier.images) == 7 and barrier.converged


def test_gp_lattice_constant_is_emts(emt_gap, gap):
    a_emt = emt_gap.crystal.cell[0, 0]
    lengths = gap.crystal.cell.lengths()
    np.testing.assert_allclose(gap.crystal.cell.angles(), 90, atol=0.01)
    assert np.ptp(lengths) < 1e-4
    assert lengths.mean() == pytest.approx(a_emt, rel=0.005)


@pytest.mark.parametrize("constant", ["C11", "C12", "C44"])
def test_gp_elastic_constants_are_emts(gap, emt_elastic, constant):
    assert gap.elastic.cubic()[constant] == pytest.approx(emt_elastic.cubic()[constant], rel=0.05)


def test_gp_vacancy_migration_barrier_is_emts_within_its_error_bar(emt_gap, gap):
    emt, gp = emt_gap.emt_barrier.barrier, gap.barrier
    assert gp.extra["n_atoms"] == 31 and len(gp.images) == 7 and gp.converged
    assert gp.barrier == pytest.approx(emt, abs=0.030)
    sigma = gp.barrier_sigma
    assert sigma is not None and 0 < sigma < 0.05  # an error bar, and an informative one
    assert abs(gp.barrier - emt) <= 2 * sigma, f"EMT {emt:.4f} eV outside {gp.barrier:.4f} ± {2 * sigma:.4f} eV"
    assert gp.sigma[0] == 0.0 and (gp.sigma[1:-1] > 0).all()
    # the final state is the initial defect moved by a lattice vector: its error is the same, and cancels
    assert gp.sigma[-1] < 0.01 * sigma
    assert gp.summary()["barrier_sigma_eV"] == sigma
