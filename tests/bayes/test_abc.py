"""ABC against closed-form posteriors, determinism, parallel runs, checkpoints, failures.

Posterior means and standard deviations are compared with the analytic answers of
conjugate problems within four Monte-Carlo standard errors (``sd / sqrt(ESS)`` for the
mean, ``sd / sqrt(2 ESS)`` for the standard deviation), plus the small bias the final
tolerance allows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from ml4ms.bayes.abc import ABCResult, SimulationFailed, regression_adjust, rejection, smc, weighted_quantile
from ml4ms.bayes.distances import Euclidean, Mahalanobis
from ml4ms.bayes.examples import GaussianMean, MorseFCC
from ml4ms.bayes.priors import Beta, Normal, Uniform
from ml4ms.errors import ConfigError

# Gaussian mean, known variance: the mean of 4 draws of N(mu, 2^2) is N(mu, 1); prior N(0, 3^2).
SIM = GaussianMean(n=4, sigma=2.0)
PRIOR = {"mu": Normal(0.0, 3.0)}
OBSERVED = [2.0]
POST_MEAN, POST_SD = SIM.posterior(2.0, 0.0, 3.0)


def _check(result, mean, sd, slack=0.0):
    ess = result.ess
    assert abs(result.mean()[0] - mean) < 4 * sd / math.sqrt(ess) + slack
    assert abs(result.std()[0] - sd) < 4 * sd / math.sqrt(2 * ess) + slack


def test_analytic_reference_is_what_we_think():
    assert POST_SD == pytest.approx(math.sqrt(1 / (1 / 9 + 1)))
    assert POST_MEAN == pytest.approx(POST_SD**2 * 2.0)


def test_rejection_matches_the_conjugate_normal_posterior():
    result = rejection(SIM, PRIOR, OBSERVED, "euclidean", 500, n_simulations=20000, seed=1, progress=False)
    assert result.samples.shape == (500, 1) and result.n_simulations == 20000 and result.n_failed == 0
    np.testing.assert_allclose(result.weights, 1 / 500)
    assert result.tolerance < 0.15 and (result.distances <= result.tolerance).all()
    _check(result, POST_MEAN, POST_SD)


def test_rejection_with_zero_tolerance_matches_the_beta_binomial_posterior():
    n, k = 20, 6

    def binomial(params, rng):
        return np.array([rng.binomial(n, params["p"])])

    result = rejection(binomial, {"p": Beta(2.0, 3.0)}, [k], "euclidean", 800, tolerance=0.0, seed=2,
                       progress=False)
    exact = stats.beta(2 + k, 3 + n - k)
    assert result.n_samples == 800 and (result.statistics[:, 0] == k).all()
    _check(result, exact.mean(), exact.std())
    lo, hi = result.credible_interval(0.9)["p"]
    assert abs(lo - exact.ppf(0.05)) < 0.03 and abs(hi - exact.ppf(0.95)) < 0.03


def test_smc_matches_the_conjugate_posterior_and_its_tolerance_decreases():
    result = smc(SIM, PRIOR, OBSERVED, "euclidean", 400, generations=7, quantile=0.5, seed=3, progress=False)
    tolerances = [h["tolerance"] for h in result.history]
    assert len(tolerances) == 7 and tolerances[0] == math.inf
    assert all(b < a for a, b in zip(tolerances, tolerances[1:]))
    assert result.tolerance == tolerances[-1] < 0.1
    assert result.n_simulations == sum(h["n_simulations"] for h in result.history)
    assert result.weights.sum() == pytest.approx(1.0) and result.ess > 300
    _check(result, POST_MEAN, POST_SD)


def test_smc_stops_at_min_tolerance_and_within_the_budget():
    result = smc(SIM, PRIOR, OBSERVED, None, 200, generations=30, min_tolerance=0.5, seed=4, progress=False)
    assert result.stopped == "min_tolerance" and result.tolerance == 0.5
    budget = smc(SIM, PRIOR, OBSERVED, None, 200, generations=30, max_simulations=3000, seed=4, progress=False)
    assert budget.stopped == "max_simulations" and budget.n_simulations <= 3000


def test_regression_adjustment_recovers_the_posterior_from_a_loose_tolerance():
    loose = rejection(SIM, PRIOR, OBSERVED, "euclidean", 2000, n_simulations=8000, seed=5, progress=False)
    # a quarter of the prior predictive is accepted: the raw samples are far too wide
    assert loose.std()[0] > POST_SD + 4 * POST_SD / math.sqrt(2 * 2000)
    adjusted = regression_adjust(loose)
    assert adjusted.method == "rejection+regression"
    _check(adjusted, POST_MEAN, POST_SD)


def test_regression_adjustment_keeps_bounded_parameters_inside_the_prior():
    def sim(params, rng):
        return np.array([rng.normal(params["x"], 0.3)])

    loose = rejection(sim, {"x": Uniform(0.0, 1.0)}, [0.05], "euclidean", 500, n_simulations=1000, seed=6,
                      progress=False)
    adjusted = regression_adjust(loose)
    assert ((adjusted.samples > 0) & (adjusted.samples < 1)).all()


def test_same_seed_same_result_other_seed_other_result():
    a = smc(SIM, PRIOR, OBSERVED, None, 100, generations=3, seed=7, progress=False)
    b = smc(SIM, PRIOR, OBSERVED, None, 100, generations=3, seed=7, progress=False)
    c = smc(SIM, PRIOR, OBSERVED, None, 100, generations=3, seed=8, progress=False)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.samples, c.samples)


def test_results_do_not_depend_on_workers_or_chunking():
    from dask.distributed import LocalCluster

    serial = smc(SIM, PRIOR, OBSERVED, None, 60, generations=3, seed=9, progress=False)
    threads = smc(SIM, PRIOR, OBSERVED, None, 60, generations=3, seed=9, workers=2, processes=False,
                  chunk_size=7, progress=False)
    np.testing.assert_array_equal(serial.samples, threads.samples)
    np.testing.assert_array_equal(serial.weights, threads.weights)
    assert serial.n_simulations == threads.n_simulations
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = rejection(SIM, PRIOR, OBSERVED, None, 50, n_simulations=300, seed=9,
                           scheduler=cluster.scheduler_address, progress=False)
    local = rejection(SIM, PRIOR, OBSERVED, None, 50, n_simulations=300, seed=9, progress=False)
    np.testing.assert_array_equal(remote.samples, local.samples)


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    path = tmp_path / "smc.json"
    full = smc(SIM, PRIOR, OBSERVED, None, 100, generations=5, seed=10, progress=False)
    first = smc(SIM, PRIOR, OBSERVED, None, 100, generations=2, seed=10, checkpoint=path, progress=False)
    assert path.is_file() and len(first.history) == 2
    resumed = smc(SIM, PRIOR, OBSERVED, None, 100, generations=5, seed=10, checkpoint=path, resume=True,
                  progress=False)
    np.testing.assert_array_equal(resumed.samples, full.samples)
    np.testing.assert_array_equal(resumed.weights, full.weights)
    assert resumed.n_simulations == full.n_simulations
    assert [h["tolerance"] for h in resumed.history] == [h["tolerance"] for h in full.history]
    with pytest.raises(ConfigError, match="different run"):
        smc(SIM, PRIOR, OBSERVED, None, 100, generations=5, seed=11, checkpoint=path, resume=True, progress=False)


def test_failed_simulations_are_counted_skipped_and_reported():
    def fragile(params, rng):
        if params["mu"] > 2.0:
            raise RuntimeError("diverged")
        if params["mu"] < -2.0:
            return np.array([np.nan])
        return np.array([rng.normal(params["mu"], 1.0)])

    n = 3000
    with pytest.warns(RuntimeWarning, match="simulations failed and were skipped"):
        result = rejection(fragile, PRIOR, [0.0], None, 100, n_simulations=n, seed=12, progress=False)
    p_fail = 2 * stats.norm.sf(2.0 / 3.0)
    assert abs(result.n_failed - n * p_fail) < 4 * math.sqrt(n * p_fail * (1 - p_fail))
    assert all(abs(f["parameters"]["mu"]) > 2.0 for f in result.failures)
    messages = {f["error"].split(":")[0] for f in result.failures}
    assert messages <= {"RuntimeError", "returned non-finite summary statistics at positions [0]"}
    assert len(messages) == 2
    assert (np.abs(result.samples) <= 2.0).all()
    assert result.to_dict()["n_failed"] == result.n_failed


def test_everything_failing_or_a_wrong_length_is_a_clear_error():
    def broken(params, rng):
        raise ValueError("no convergence")

    with pytest.raises(SimulationFailed, match="no convergence"):
        rejection(broken, PRIOR, [0.0], None, 10, n_simulations=50, seed=0, progress=False)
    with pytest.raises(ConfigError, match="observed data hold 2 summary statistics but the simulator returned 1"):
        smc(SIM, PRIOR, [0.0, 1.0], None, 10, generations=2, seed=0, progress=False)
    with pytest.raises(ConfigError, match="finite"):
        rejection(SIM, PRIOR, [np.nan], None, 10, seed=0, progress=False)
    with pytest.raises(ConfigError, match="prior of 'mu'"):
        rejection(SIM, {"mu": Uniform(1.0, 1.0)}, [0.0], None, 10, seed=0, progress=False)


def test_distances_scale_and_whiten():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 2)) * [1.0, 100.0]
    mad = Euclidean(scale="mad").fit(x)
    np.testing.assert_allclose(mad.scale_, [1.0, 100.0], rtol=0.05)
    np.testing.assert_allclose(Euclidean(scale=[2.0, 4.0])(np.array([[2.0, 4.0]]), np.zeros(2)), [math.sqrt(2)])
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    d = np.array([[1.0, -1.0]])
    expected = math.sqrt(d[0] @ np.linalg.inv(cov) @ d[0])
    np.testing.assert_allclose(Mahalanobis(cov)(d, np.zeros(2)), [expected])


def test_result_summary_and_save_round_trip(tmp_path):
    result = rejection(SIM, PRIOR, OBSERVED, None, 200, n_simulations=1000, seed=13, progress=False)
    path = result.save(tmp_path / "r.json")
    loaded = ABCResult.load(path)
    np.testing.assert_array_equal(loaded.samples, result.samples)
    assert loaded.credible_interval(0.9) == result.credible_interval(0.9)
    # equal weights: the weighted quantile is a plain quantile of the mid-point rule
    x = np.random.default_rng(0).normal(size=1001)
    assert weighted_quantile(x, np.ones_like(x), 0.5) == pytest.approx(np.median(x))
    assert weighted_quantile(x, np.ones_like(x), 0.9) == pytest.approx(np.quantile(x, 0.9), abs=0.01)


def test_morse_simulator_agrees_with_ase():
    from ase.build import bulk
    from ase.calculators.morse import MorsePotential
    from ase.eos import EquationOfState
    from ase.units import GPa

    sim = MorseFCC(noise={})
    p = {"D": 0.3429, "a": 1.3588, "r0": 2.866}  # Girifalco & Weizer's copper
    calc = MorsePotential(epsilon=p["D"], rho0=p["a"] * p["r0"], r0=p["r0"])
    lattice = np.linspace(3.52, 3.72, 7)
    energies = []
    for x in lattice:
        atoms = bulk("Cu", "fcc", a=x)
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
    np.testing.assert_allclose(sim.energy_per_atom(lattice, **p), energies, rtol=1e-10)
    props = sim.properties(**p)
    v0, e0, b = EquationOfState(lattice**3 / 4, energies, eos="birchmurnaghan").fit()
    assert props["lattice_constant"] == pytest.approx((4 * v0) ** (1 / 3), abs=2e-4)
    assert props["cohesive_energy"] == pytest.approx(-e0, abs=1e-4)
    assert props["bulk_modulus"] == pytest.approx(b / GPa, rel=0.01)
    forces = []
    for sign in (1.0, -1.0):
        atoms = bulk("Cu", "fcc", a=props["lattice_constant"], cubic=True).repeat(3)
        atoms.positions[0, 0] += sign * 1e-3
        atoms.calc = calc
        forces.append(atoms.get_forces()[0, 0])
    assert props["einstein_constant"] == pytest.approx(-(forces[0] - forces[1]) / 2e-3, rel=1e-4)
    # the thermalised cell: first-shell spread ~ sqrt(2 kT / k_E) of an Einstein crystal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        peak, width = MorseFCC(statistics=("rdf_peak", "rdf_width"), noise={}, temperature=600)(
            p, np.random.default_rng(0))
    from ase.units import kB
    assert peak == pytest.approx(props["lattice_constant"] / math.sqrt(2), rel=0.005)
    assert width == pytest.approx(math.sqrt(2 * kB * 600 / props["einstein_constant"]), rel=0.1)
