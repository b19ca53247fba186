"""Priors: densities and samples against scipy.stats; invalid arguments name the parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ml4ms.bayes.priors import Beta, JointPrior, LogNormal, LogUniform, Normal, Uniform, prior_from_spec
from ml4ms.errors import ConfigError

CASES = [
    (Uniform(-1.0, 3.0), stats.uniform(-1.0, 4.0)),
    (Normal(0.5, 2.0), stats.norm(0.5, 2.0)),
    (LogUniform(0.1, 10.0), stats.loguniform(0.1, 10.0)),
    (LogNormal(0.2, 0.5), stats.lognorm(0.5, scale=math.exp(0.2))),
    (Beta(2.0, 5.0), stats.beta(2.0, 5.0)),
]


@pytest.mark.parametrize("prior, reference", CASES, ids=lambda c: type(c).__name__)
def test_logpdf_matches_scipy(prior, reference):
    x = reference.ppf(np.linspace(0.01, 0.99, 25))
    np.testing.assert_allclose(prior.logpdf(x), reference.logpdf(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("prior, reference", CASES, ids=lambda c: type(c).__name__)
def test_samples_follow_the_distribution(prior, reference):
    x = prior.sample(4000, np.random.default_rng(3))
    assert x.shape == (4000,)
    assert stats.kstest(x, reference.cdf).pvalue > 1e-3


def test_logpdf_is_minus_infinity_outside_the_support():
    assert Uniform(0, 1).logpdf(np.array([-0.1, 1.1])).tolist() == [-np.inf, -np.inf]
    assert LogUniform(1, 2).logpdf(np.array([0.0, -1.0])).tolist() == [-np.inf, -np.inf]
    assert Beta(2, 2).logpdf(np.array([1.5]))[0] == -np.inf
    assert LogNormal(0, 1).logpdf(np.array([0.0]))[0] == -np.inf


def test_joint_prior_shapes_order_and_density():
    prior = JointPrior({"D": Uniform(0.2, 0.6), "r0": Normal(2.9, 0.1)})
    assert prior.names == ["D", "r0"] and prior.dim == 2
    x = prior.sample(5, np.random.default_rng(0))
    assert x.shape == (5, 2) and ((x[:, 0] >= 0.2) & (x[:, 0] <= 0.6)).all()
    expected = stats.uniform(0.2, 0.4).logpdf(x[:, 0]) + stats.norm(2.9, 0.1).logpdf(x[:, 1])
    np.testing.assert_allclose(prior.logpdf(x), expected)
    assert prior.logpdf(np.array([0.7, 2.9])) == -np.inf
    np.testing.assert_array_equal(prior.bounds, [[0.2, 0.6], [-np.inf, np.inf]])
    assert prior.as_dict(x[0]) == {"D": x[0, 0], "r0": x[0, 1]}


@pytest.mark.parametrize("spec, fragment", [
    (Uniform(1.0, 0.5), "low (1.0) must be less than high (0.5)"),
    (Uniform(0.0, float("nan")), "high must be a finite number"),
    (Normal(0.0, 0.0), "sigma must be positive"),
    (Normal(0.0, -1.0), "sigma must be positive"),
    (LogUniform(0.0, 1.0), "low must be positive"),
    (Beta(0.0, 1.0), "a and b must be positive"),
    ({"distribution": "uniform", "low": 2, "high": 1}, "low (2) must be less than high (1)"),
    ({"uniform": [0, 1, 2]}, "uniform takes 2 arguments"),
    ({"distribution": "normal", "mu": 0}, "missing: sigma"),
    ({"distribution": "gamma", "a": 1}, "distribution must be one of"),
    (["normal", 0, float("inf")], "sigma must be a finite number"),
])
def test_invalid_priors_raise_config_error_naming_the_parameter(spec, fragment):
    with pytest.raises(ConfigError) as info:
        JointPrior({"ok": Uniform(0, 1), "D": spec})
    assert "'D'" in str(info.value) or "priors.D" in str(info.value)
    assert fragment in str(info.value)


def test_a_standalone_invalid_prior_fails_when_used():
    with pytest.raises(ConfigError, match="sigma must be positive"):
        Normal(0.0, -2.0).sample(3, np.random.default_rng(0))


def test_specification_forms_are_equivalent():
    a = prior_from_spec({"distribution": "uniform", "low": 0, "high": 2})
    assert a == prior_from_spec({"uniform": [0, 2]}) == prior_from_spec(["uniform", 0, 2]) == Uniform(0, 2)
    assert prior_from_spec(a.to_dict()) == a
    with pytest.raises(ConfigError, match="non-empty mapping"):
        JointPrior({})
