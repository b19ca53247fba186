"""Intrinsic dimension: TwoNN and GRIDE on manifolds of known dimension, scale dependence, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ml4ms.analysis.intrinsic_dimension import gride_loglik, gride_mle, intrinsic_dimension, twonn_mle
from ml4ms.errors import ConfigError, DataError


def embedded(k: int, n: int, rng, ambient: int = 10) -> np.ndarray:
    """n uniform points of a k-dimensional unit cube, rotated into `ambient` dimensions."""
    Q, _ = np.linalg.qr(rng.normal(size=(ambient, k)))
    return rng.random((n, k)) @ Q.T + rng.normal(size=ambient)


def sphere(n: int, rng) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def swiss_roll(n: int, rng) -> np.ndarray:
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    h = 21 * rng.random(n)
    return np.column_stack([t * np.cos(t), h, t * np.sin(t)])


CASES = {  # name: (data, true dimension)
    "plane 2-D in 10-D": (lambda rng: embedded(2, 2000, rng), 2),
    "plane 5-D in 10-D": (lambda rng: embedded(5, 3000, rng), 5),
    "2-sphere in 3-D": (lambda rng: sphere(2000, rng), 2),
    "Swiss roll": (lambda rng: swiss_roll(2000, rng), 2),
    "3-D cube": (lambda rng: np.random.default_rng(1).random((4000, 3)), 3),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("method", ["twonn", "gride"])
def test_known_dimensions(name, method, rng):
    make, true = CASES[name]
    res = intrinsic_dimension(make(rng), method)
    # within three standard errors, plus 5 % for the known boundary bias of hard-edged samples
    assert abs(res.dimension - true) < 3 * res.error + 0.05 * true, (res.dimension, res.error)
    assert 0 < res.error < 0.1 * true


def test_twonn_line_fit_agrees(rng):
    X = sphere(3000, rng)
    fit = intrinsic_dimension(X, estimator="fit", discard_fraction=0.1)
    assert fit.dimension == pytest.approx(2.0, abs=0.15)


def test_twonn_mle_on_exact_pareto_samples():
    # mu ~ Pareto(d): log mu ~ Exponential(rate d); the MLE is N / sum(log mu), with error d / sqrt(N).
    rng = np.random.default_rng(3)
    d, n = 4.0, 20000
    log_mu = rng.exponential(1 / d, n)
    est, err = twonn_mle(log_mu)
    assert est == pytest.approx(d, abs=3 * d / np.sqrt(n))
    assert err == pytest.approx(d / np.sqrt(n), rel=0.02)
    # GRIDE with n1 = 1, n2 = 2 is the same likelihood
    est2, err2 = gride_mle(log_mu, 1, 2)
    assert est2 == pytest.approx(est, rel=1e-8) and err2 == pytest.approx(err, rel=1e-6)


def test_gride_likelihood_is_a_normalised_density():
    # integrate f(mu) of Denti et al. over mu in (1, inf) for a few (d, n1)
    from scipy.integrate import quad

    for d, n1 in [(2.0, 1), (3.5, 2), (7.0, 4)]:
        total, _ = quad(lambda mu: np.exp(gride_loglik(d, np.array([np.log(mu)]), n1, 2 * n1)), 1.0, np.inf)
        assert total == pytest.approx(1.0, abs=1e-6)


def test_gride_mle_on_exact_samples():
    # r_k of a Poisson process in d dims: the volumes are sums of exponentials, so
    # (r_{2k}/r_k)^d = V_{2k}/V_k with V_{2k} = V_k + Gamma(k) -> sample mu exactly.
    rng = np.random.default_rng(4)
    d, n1, n = 6.0, 4, 20000
    vk = rng.gamma(n1, size=n)
    v2k = vk + rng.gamma(n1, size=n)
    log_mu = np.log(v2k / vk) / d
    est, err = gride_mle(log_mu, n1)
    assert est == pytest.approx(d, abs=3 * err)


def test_scale_dependence_of_a_noisy_plane(rng):
    # a 2-D plane with isotropic noise in 10-D looks 10-D at the scale of the noise and 2-D far above it
    X = embedded(2, 3000, rng) + 0.01 * rng.normal(size=(3000, 10))
    res = intrinsic_dimension(X, "gride", max_order=64)
    assert list(res.orders) == [1, 2, 4, 8, 16, 32]
    assert np.all(np.diff(res.scales) > 0)
    assert res.dimensions[0] > 5.0
    assert res.dimensions[-1] < 3.0
    assert res.dimensions[0] > res.dimensions[-1] + 3
    assert res.errors.shape == res.dimensions.shape and (res.errors > 0).all()


def test_duplicates_are_removed_with_a_warning(rng):
    X = sphere(1000, rng)
    with pytest.warns(UserWarning, match="duplicate"):
        res = intrinsic_dimension(np.vstack([X, X[:100], X[:5] + 1e-14]))
    assert res.n_duplicates == 105
    assert res.n_points == 1000
    assert res.dimension == pytest.approx(intrinsic_dimension(X).dimension, rel=1e-12)


def test_constant_features_do_not_matter(rng):
    X = sphere(1000, rng)
    padded = np.column_stack([X, np.full(1000, 3.0), np.zeros(1000)])
    assert intrinsic_dimension(padded).dimension == pytest.approx(intrinsic_dimension(X).dimension, rel=1e-9)


def test_bad_input(rng):
    with pytest.raises(ConfigError, match="at least 3 distinct points.*constant"), pytest.warns(UserWarning):
        intrinsic_dimension(np.ones((10, 4)))  # all rows identical (constant features)
    with pytest.raises(ConfigError, match="at least 9"):
        intrinsic_dimension(rng.random((8, 3)), "gride", n1=4)
    with pytest.raises(ConfigError, match="at least 3"):
        intrinsic_dimension(rng.random((2, 3)))
    with pytest.raises(ConfigError, match="method"):
        intrinsic_dimension(rng.random((50, 3)), "mle")
    bad = rng.random((50, 3))
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match="row 7"):
        intrinsic_dimension(bad)
    with pytest.raises(DataError, match="matrix"):
        intrinsic_dimension(rng.random(50))
    from ase.build import bulk

    with pytest.raises(ConfigError, match="descriptor"):
        intrinsic_dimension([bulk("Cu")] * 5)


def test_structures_through_soap():
    # Cu MD-like samples: rattled copies of a crystal; per-atom SOAP vectors through the Featurizer
    from ase.build import bulk

    from ml4ms.descriptors.soap import SOAP

    images = []
    for k in range(30):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=k)
        images.append(atoms)
    soap = SOAP(["Cu"], r_cut=4.0, n_max=3, l_max=2)
    res = intrinsic_dimension(images, descriptor=soap, pool="none")
    assert res.n_points == 30 * 32
    # each neighbourhood has 3 x 12 displaced first neighbours and more; the SOAP image of the
    # noise is many-dimensional but bounded by the number of features
    assert 1.0 < res.dimension < soap.get_number_of_features()
