"""The stored GP reproduces scikit-learn's GaussianProcessRegressor, mean and sigma."""

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge

from ml4ms.properties.kernels import GaussianProcess, fit_gp


def _data(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.array([1.0, 3.0, 0.5, 10.0])
    y = np.sin(X[:, 0]) + 0.1 * X[:, 1] + 0.05 * rng.normal(size=n)
    return X, y


def test_optimised_gp_matches_sklearn_on_standardised_data():
    X, y = _data()
    gp = fit_gp(X, y, optimize=True)
    Z = (X - X.mean(0)) / X.std(0)
    t = (y - y.mean()) / y.std()
    kernel = ConstantKernel(gp.amplitude, "fixed") * RBF(gp.length_scale, "fixed") + WhiteKernel(gp.noise, "fixed")
    reference = GaussianProcessRegressor(kernel, optimizer=None).fit(Z, t)
    X_new, _ = _data(50, seed=1)
    mean, std = gp.predict(X_new)
    ref_mean, ref_std = reference.predict((X_new - X.mean(0)) / X.std(0), return_std=True)
    np.testing.assert_allclose(mean, ref_mean * y.std() + y.mean(), atol=1e-8)
    np.testing.assert_allclose(std, ref_std * y.std(), atol=1e-8)
    # the hyper-parameters are a maximum of the marginal likelihood: sklearn started there finds no better
    refit = GaussianProcessRegressor(
        ConstantKernel(gp.amplitude, (1e-3, 1e3)) * RBF(gp.length_scale, (1e-2, 1e4)) + WhiteKernel(gp.noise, (1e-6, 10)),
    ).fit(Z, t)
    assert refit.log_marginal_likelihood_value_ <= reference.log_marginal_likelihood(reference.kernel_.theta) + 1e-3


def test_kernel_ridge_mean_equals_sklearn_kernel_ridge():
    X, y = _data()
    gp = fit_gp(X, y, optimize=False, amplitude=1.0, length_scale=2.0, noise=0.05)
    Z = (X - X.mean(0)) / X.std(0)
    t = (y - y.mean()) / y.std()
    krr = KernelRidge(alpha=0.05, kernel="rbf", gamma=1.0 / (2 * 2.0**2)).fit(Z, t)
    X_new, _ = _data(30, seed=2)
    mean, _ = gp.predict(X_new)
    np.testing.assert_allclose(mean, krr.predict((X_new - X.mean(0)) / X.std(0)) * y.std() + y.mean(), atol=1e-8)


def test_round_trip_and_constant_feature():
    X, y = _data()
    X = np.hstack([X, np.full((len(X), 1), 3.0)])  # a constant column must not divide by zero
    gp = fit_gp(X, y, optimize=False, length_scale=2.0)
    again = GaussianProcess.from_arrays(gp.arrays("gp."), "gp.")
    np.testing.assert_array_equal(again.predict(X)[0], gp.predict(X)[0])
    assert np.isfinite(gp.predict(X)[1]).all()
