"""PCA and SOAP-kernel PCA maps, checked against NumPy's SVD, scikit-learn and exact identities."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from sklearn.base import clone
from sklearn.decomposition import KernelPCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ml4ms.analysis.maps import PCAMap, SOAPKernelPCA, make_map, map_features, plot_map, soap_kernel
from ml4ms.errors import ConfigError, DataError

_ZERO_ROWS = "zero feature vectors have no normalised SOAP kernel; SOAPKernelPCA refuses them"


@parametrize_with_checks(
    [PCAMap(), SOAPKernelPCA()],
    expected_failed_checks=lambda est: {} if isinstance(est, PCAMap) else {
        "check_estimators_dtypes": _ZERO_ROWS,  # integer casts of random data hold all-zero rows
        "check_estimator_sparse_tag": _ZERO_ROWS,  # random sparse rows are often all zero
        "check_estimator_sparse_array": _ZERO_ROWS,
        "check_estimator_sparse_matrix": _ZERO_ROWS,
    },
)
def test_maps_follow_the_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


def _plane(rng, n=200, dim=12):
    """Points on a 2-D plane through an offset in ``dim`` dimensions, with unequal spreads."""
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    latent = rng.normal(size=(n, 2)) * [3.0, 0.7]
    return latent @ basis.T + rng.normal(size=dim) * 5.0, basis


def _align_signs(a, b):
    """``a`` with each column's sign flipped to agree with ``b``."""
    return a * np.sign(np.sum(a * b, axis=0))


def test_pca_recovers_the_plane_and_matches_numpy_svd(rng):
    X, basis = _plane(rng)
    pca = PCAMap(n_components=3).fit(X)
    # The first two axes span the plane: same projector as the true basis.
    axes = pca.components_[:2]
    np.testing.assert_allclose(axes.T @ axes, basis @ basis.T, atol=1e-10)
    # All the variance lies in the plane.
    np.testing.assert_allclose(pca.explained_variance_ratio_[:2].sum(), 1.0, atol=1e-12)
    assert pca.explained_variance_ratio_[2] < 1e-20
    # Independent reference: the SVD of the centred data.
    centred = X - X.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(pca.explained_variance_, s[:3] ** 2 / (len(X) - 1), rtol=1e-10, atol=1e-20)
    coordinates = pca.transform(X)[:, :2]
    np.testing.assert_allclose(_align_signs(coordinates, u[:, :2] * s[:2]), u[:, :2] * s[:2], atol=1e-9)
    # Two components reconstruct points on the plane exactly.
    pca2 = PCAMap(n_components=2).fit(X)
    np.testing.assert_allclose(pca2.inverse_transform(pca2.transform(X)), X, atol=1e-9)
    assert list(pca2.get_feature_names_out()) == ["PCA[1]", "PCA[2]"]


def test_standardised_pca_equals_svd_of_z_scores(rng):
    X, _ = _plane(rng, n=80, dim=6)
    X = X * np.array([1.0, 10.0, 0.1, 3.0, 1.0, 100.0])
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    u, s, _ = np.linalg.svd(Z, full_matrices=False)
    coordinates = PCAMap(n_components=2, standardize=True).fit_transform(X)
    np.testing.assert_allclose(_align_signs(coordinates, u[:, :2] * s[:2]), u[:, :2] * s[:2], atol=1e-9)


def test_kernel_pca_with_zeta_1_is_pca_of_normalised_vectors(rng):
    X = rng.normal(size=(60, 9)) + 2.0
    Y = rng.normal(size=(15, 9)) + 2.0
    kpca = SOAPKernelPCA(n_components=3, zeta=1).fit(X)
    # Linear kernel of unit vectors = PCA of the unit vectors (independent: NumPy SVD).
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    mean = Xn.mean(axis=0)
    u, s, vt = np.linalg.svd(Xn - mean, full_matrices=False)
    expected = u[:, :3] * s[:3]
    fitted = kpca.transform(X)
    signs = np.sign(np.sum(fitted * expected, axis=0))
    np.testing.assert_allclose(fitted * signs, expected, atol=1e-10)
    np.testing.assert_allclose(kpca.fit_transform(X) * signs, expected, atol=1e-10)
    # Out of sample: projection of the new unit vectors on the same axes, same centring.
    np.testing.assert_allclose(kpca.transform(Y) * signs, (Yn - mean) @ vt[:3].T, atol=1e-10)
    # Eigenvalues of the centred kernel are the squared singular values.
    np.testing.assert_allclose(kpca.eigenvalues_, s[:3] ** 2, rtol=1e-10)
    np.testing.assert_allclose(kpca.explained_variance_ratio_, s[:3] ** 2 / np.sum(s ** 2), rtol=1e-10)


@pytest.mark.parametrize("zeta, eigen_solver", [(2, "dense"), (3, "dense"), (2, "arpack")])
def test_kernel_pca_agrees_with_scikit_learn_on_the_same_kernel(rng, zeta, eigen_solver):
    X = np.abs(rng.normal(size=(70, 20)))  # like SOAP power spectra: mostly positive
    Y = np.abs(rng.normal(size=(25, 20)))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    K, K_new = (Xn @ Xn.T) ** zeta, (Yn @ Xn.T) ** zeta
    reference = KernelPCA(n_components=4, kernel="precomputed", eigen_solver="dense")
    expected = reference.fit_transform(K)
    ours = SOAPKernelPCA(n_components=4, zeta=zeta, eigen_solver=eigen_solver)
    fitted = ours.fit_transform(X)
    signs = np.sign(np.sum(fitted * expected, axis=0))
    np.testing.assert_allclose(fitted * signs, expected, atol=1e-10)
    np.testing.assert_allclose(ours.transform(Y) * signs, reference.transform(K_new), atol=1e-10)
    np.testing.assert_allclose(ours.eigenvalues_, reference.eigenvalues_, rtol=1e-9)
    np.testing.assert_allclose(soap_kernel(Y, X, zeta=zeta), K_new, atol=1e-14)


def test_maps_work_in_pipelines_and_clone(rng):
    X, _ = _plane(rng, n=50, dim=5)
    for estimator in (PCAMap(standardize=True), SOAPKernelPCA(zeta=3)):
        copy = clone(estimator)
        assert copy.get_params() == estimator.get_params()
        pipeline = make_pipeline(StandardScaler(), estimator).fit(X)
        assert pipeline.transform(X).shape == (50, 2)
    assert isinstance(make_map("kpca", 3, zeta=4), SOAPKernelPCA)
    with pytest.raises(ConfigError, match="map method must be one of"):
        make_map("tsne")
    with pytest.raises(ConfigError, match="PCAMap"):
        make_map("pca", nonsense=1)


def test_bad_input_gives_clear_errors(rng):
    X = rng.normal(size=(5, 8))
    with pytest.raises(ConfigError, match="n_components=6 is more than the data allow"):
        PCAMap(n_components=6).fit(X)
    with pytest.raises(ConfigError, match="n_components=6"):
        SOAPKernelPCA(n_components=6).fit(X)
    with pytest.raises(DataError, match="every feature is constant"):
        PCAMap().fit(np.ones((10, 4)) * 3.0)
    with pytest.raises(DataError, match="same point for the SOAP kernel"):
        SOAPKernelPCA().fit(np.outer(np.arange(1, 11), [1.0, 2.0, 3.0]))  # parallel vectors
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match=r"features: 1 row\(s\) hold NaN or infinite values \(first: row 3"):
        PCAMap().fit(bad)
    with pytest.raises(DataError, match="NaN"):
        SOAPKernelPCA().fit(bad)
    zero = X.copy()
    zero[1] = 0.0
    with pytest.raises(DataError, match="zero vectors"):
        SOAPKernelPCA().fit(zero)
    with pytest.raises(ConfigError, match="zeta must be a positive integer"):
        SOAPKernelPCA(zeta=1.5).fit(X)
    fitted = PCAMap().fit(X)
    with pytest.raises(DataError, match="X has 7 features, but PCAMap is expecting 8"):
        fitted.transform(X[:, :7])


def test_map_features_per_atom_and_per_structure():
    from ml4ms.descriptors import SOAP, CompositionFeatures

    images = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Cu", "fcc", a=3.7).repeat((2, 1, 1))]
    images[0].rattle(0.05, seed=1)
    soap = SOAP(["Cu"], r_cut=4.0, n_max=3, l_max=2, periodic=True)
    per_atom = [np.asarray(f) for f in soap.create(images)]
    atoms = map_features(images, soap, target="atom")
    assert atoms.features.shape == (6, per_atom[0].shape[1])
    np.testing.assert_array_equal(atoms.structure, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(atoms.center, [0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(atoms.features, np.concatenate(per_atom))
    structures = map_features(images, soap, target="structure")
    np.testing.assert_allclose(structures.features, [f.mean(axis=0) for f in per_atom])
    np.testing.assert_array_equal(structures.center, [-1, -1])
    with pytest.raises(ConfigError, match="per-atom descriptor"):
        map_features(images, CompositionFeatures(properties=["AtomicWeight"], stats=["mean"]), target="atom")
    with pytest.raises(ConfigError, match="target must be"):
        map_features(images, soap, target="molecule")


def test_plot_map_writes_png_for_numbers_and_categories(tmp_path, rng):
    xy = rng.normal(size=(30, 2))
    for color in (rng.normal(size=30), np.array(["a", "b", "c"] * 10), None):
        path = plot_map(xy, tmp_path / "map.png", color=color, color_label="c")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="3 colour values for 30 points"):
        plot_map(xy, tmp_path / "x.png", color=[1, 2, 3])
