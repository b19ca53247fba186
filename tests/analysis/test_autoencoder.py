"""The autoencoder map: reconstruction of low-dimensional data, cluster separation, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml4ms.analysis.autoencoder import AutoencoderMap
from ml4ms.errors import ConfigError, DataError

FAST = {"hidden": (32,), "max_epochs": 300, "patience": 30, "batch_size": 32, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def plane():
    rng = np.random.default_rng(7)
    basis, _ = np.linalg.qr(rng.normal(size=(8, 2)))
    X = (rng.normal(size=(400, 2)) * [2.0, 1.0]) @ basis.T + rng.normal(size=8)
    return X


@pytest.fixture(scope="module")
def fitted_plane(plane):
    return AutoencoderMap(n_components=2, **FAST).fit(plane)


def test_autoencoder_reconstructs_data_on_a_two_dimensional_plane(plane, fitted_plane):
    ae = fitted_plane
    # With standardised inputs the error is the share of variance lost: PCA with two
    # components loses none, a single direction would lose about a fifth of it.
    single = np.linalg.svd((plane - plane.mean(0)) / plane.std(0), compute_uv=False) ** 2
    assert single[1] / single.sum() > 0.1
    assert ae.reconstruction_error_ < 0.01
    assert ae.reconstruction_error(plane) < 0.01
    decoded = ae.inverse_transform(ae.transform(plane))
    assert np.sqrt(np.mean((decoded - plane) ** 2)) < 0.1 * plane.std()
    assert ae.transform(plane).shape == (400, 2)
    assert ae.score(plane) == pytest.approx(-ae.reconstruction_error(plane))


def test_early_stopping_keeps_the_best_validation_epoch(fitted_plane):
    history = fitted_plane.history_
    losses = [h["val_loss"] for h in history]
    assert fitted_plane.best_epoch_ == history[int(np.argmin(losses))]["epoch"]
    if len(history) < FAST["max_epochs"]:  # stopped early: patience epochs without progress
        assert len(history) - fitted_plane.best_epoch_ >= FAST["patience"]


def test_latent_space_separates_two_clusters():
    rng = np.random.default_rng(3)
    centres = np.zeros((2, 20))
    centres[1, :5] = 6.0
    truth = np.repeat([0, 1], 60)
    X = centres[truth] + rng.normal(size=(120, 20))
    latent = AutoencoderMap(n_components=2, hidden=(16,), max_epochs=150, random_state=1).fit_transform(X)
    labels = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(latent)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_seeded_training_is_reproducible_and_leaves_global_generators_alone(plane):
    options = {"hidden": (8,), "max_epochs": 5}
    torch_state, numpy_state, threads = torch.get_rng_state(), np.random.get_state(), torch.get_num_threads()
    a = AutoencoderMap(random_state=5, **options).fit(plane).transform(plane)
    assert torch.equal(torch.get_rng_state(), torch_state)  # no draw from the global generator
    torch.manual_seed(123)  # a different global state must not change the result
    b = AutoencoderMap(random_state=5, **options).fit(plane).transform(plane)
    c = AutoencoderMap(random_state=6, **options).fit(plane).transform(plane)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    torch.set_rng_state(torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    assert torch.get_num_threads() == threads  # n_threads=1 during training only


def test_dtype_clone_and_pipeline(plane):
    ae = AutoencoderMap(hidden=(4,), max_epochs=3)
    assert clone(ae).get_params() == ae.get_params()
    ae.fit(plane)
    assert next(ae.encoder_.parameters()).dtype == torch.float32
    assert ae.transform(plane).dtype == np.float64
    ae64 = AutoencoderMap(hidden=(4,), max_epochs=3, dtype="float64").fit(plane)
    assert next(ae64.decoder_.parameters()).dtype == torch.float64
    pipeline = make_pipeline(StandardScaler(), AutoencoderMap(hidden=(4,), max_epochs=3)).fit(plane)
    assert pipeline.transform(plane[:7]).shape == (7, 2)
    assert list(ae.get_feature_names_out()) == ["AE[1]", "AE[2]"]


def test_bad_input_and_parameters(plane):
    with pytest.raises(ConfigError, match="n_components=3 is more than the data allow"):
        AutoencoderMap(n_components=3).fit(plane[:, :2])
    with pytest.raises(DataError, match="every feature is constant"):
        AutoencoderMap().fit(np.full((20, 3), 2.0))
    bad = plane.copy()
    bad[10, 0] = np.inf
    with pytest.raises(DataError, match="first: row 10"):
        AutoencoderMap().fit(bad)
    with pytest.raises(ConfigError, match="activation"):
        AutoencoderMap(activation="sigmoidal").fit(plane)
    with pytest.raises(ConfigError, match="validation_fraction"):
        AutoencoderMap(validation_fraction=1.0).fit(plane)
    fitted = AutoencoderMap(hidden=(4,), max_epochs=2).fit(plane)
    with pytest.raises(DataError, match="X has 3 features, but AutoencoderMap is expecting 8"):
        fitted.transform(plane[:, :3])
