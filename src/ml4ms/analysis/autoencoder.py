"""An autoencoder map: a neural encoder to a few latent coordinates and a decoder back.

The encoder is a multilayer perceptron from the (standardised) descriptor vector to
``n_components`` latent coordinates; the decoder mirrors it back to the descriptor. Both
are trained together to reproduce their input (mean squared error, Adam), with early
stopping on a held-out validation split. Unlike PCA the map can bend to follow curved
manifolds; with linear activations it spans the same subspace as PCA.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._threads import torch_threads
from ..errors import ConfigError, TrainingDiverged
from .maps import _check_n_components, _require_variance, _standard_scale, check_features

__all__ = ["AutoencoderMap"]

_ACTIVATIONS = {"tanh": torch.nn.Tanh, "silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "gelu": torch.nn.GELU,
                "linear": torch.nn.Identity}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _mlp(sizes: list[int], activation: str, generator: torch.Generator, dtype: torch.dtype) -> torch.nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last), seeded init."""
    layers: list[torch.nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.utils.skip_init(torch.nn.Linear, n_in, n_out, dtype=dtype)  # no global RNG draw
        bound = 1.0 / math.sqrt(n_in)  # PyTorch's default range, drawn from our generator
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if k < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


class AutoencoderMap(TransformerMixin, BaseEstimator):
    """A map of descriptor vectors from the bottleneck of an autoencoder.

    Parameters
    ----------
    n_components
        Dimension of the latent space (the map's coordinates).
    hidden
        Widths of the encoder's hidden layers; the decoder uses them in reverse.
    activation
        ``"tanh"`` (default), ``"silu"``, ``"relu"``, ``"gelu"`` or ``"linear"``.
    learning_rate
        Adam's step size.
    weight_decay
        L2 penalty of Adam.
    batch_size
        Samples per optimiser step.
    max_epochs
        Most passes over the training split.
    patience
        Stop after this many epochs without a better validation loss; the weights of the
        best epoch are kept.
    validation_fraction
        Share of the samples held out for early stopping (at least one sample); 0 trains
        on everything and stops at ``max_epochs`` (the last weights are kept).
    standardize
        Centre each feature and divide it by its standard deviation before encoding
        (constant features are only centred). The loss is then the mean squared error per
        standardised feature, i.e. the fraction of the variance not reproduced.
    dtype
        ``"float32"`` (default) or ``"float64"``.
    random_state
        Seed of the torch and NumPy generators used for initialisation, the validation
        split and shuffling (no global random state is touched).
    progress
        Show a progress bar over epochs: True, False or None (only for more than 10,000
        samples).
    n_threads
        Torch intra-op threads while training and encoding (restored afterwards); None
        leaves torch's setting. The default, 1, suits the small networks of a map: on a
        busy machine a thread pool mostly adds synchronisation (two threads measured
        14 times slower than one on a loaded 2-core machine).

    Attributes
    ----------
    encoder_, decoder_ : torch.nn.Sequential
        The trained networks (in ``dtype``), mapping standardised features to latent
        coordinates and back.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of the input.
    reconstruction_error_ : float
        Mean squared reconstruction error per standardised feature on the validation
        split (on the training split when there is none); with ``standardize`` this is
        the fraction of the variance the map loses.
    train_error_ : float
        The same on the training split.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``.
    best_epoch_ : int
        Epoch whose weights were kept.
    n_features_in_ : int
        Number of features seen in fit.
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        hidden: tuple[int, ...] = (64, 32),
        activation: str = "tanh",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 64,
        max_epochs: int = 500,
        patience: int = 30,
        validation_fraction: float = 0.1,
        standardize: bool = True,
        dtype: str = "float32",
        random_state: int | None = 0,
        progress: bool | None = None,
        n_threads: int | None = 1,
    ) -> None:
        self.n_components = n_components
        self.hidden = hidden
        self.activation = activation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> tuple[torch.dtype, list[int]]:
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {self.activation!r}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        hidden = [int(h) for h in self.hidden]
        if any(h < 1 for h in hidden):
            raise ConfigError(f"hidden layer widths must be positive, got {self.hidden!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        for name in ("batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_threads is not None and (not isinstance(self.n_threads, (int, np.integer)) or self.n_threads < 1):
            raise ConfigError(f"n_threads must be a positive integer or None, got {self.n_threads!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")
        return _DTYPES[self.dtype], hidden

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None) -> AutoencoderMap:
        """Train encoder and decoder on ``X`` (n_samples, n_features)."""
        dtype, hidden = self._check_params()
        with torch_threads(self.n_threads):
            return self._fit(X, dtype, hidden)

    def _fit(self, X, dtype: torch.dtype, hidden: list[int]) -> AutoencoderMap:
        X = check_features(X, min_samples=2, owner="AutoencoderMap")
        _check_n_components(self.n_components, X.shape[0], X.shape[1], "AutoencoderMap")
        _require_variance(X, "AutoencoderMap")
        n, n_features = X.shape
        self.mean_, self.scale_ = _standard_scale(X, self.standardize)
        Z = torch.as_tensor((X - self.mean_) / self.scale_, dtype=dtype)

        seed = np.random.SeedSequence(self.random_state)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(int(seed.generate_state(1, dtype=np.uint64)[0] >> 1))
        order = rng.permutation(n)
        n_val = 0 if self.validation_fraction == 0 else min(n - 1, max(1, round(self.validation_fraction * n)))
        val, train = Z[order[:n_val]], Z[order[n_val:]]

        encoder = _mlp([n_features, *hidden, self.n_components], self.activation, generator, dtype)
        decoder = _mlp([self.n_components, *hidden[::-1], n_features], self.activation, generator, dtype)
        parameters = [*encoder.parameters(), *decoder.parameters()]
        optimiser = torch.optim.Adam(parameters, lr=self.learning_rate, weight_decay=self.weight_decay)

        def loss_of(batch: torch.Tensor) -> torch.Tensor:
            return torch.mean((decoder(encoder(batch)) - batch) ** 2)

        best, best_epoch, stale = math.inf, 0, 0
        best_state = None
        history = []
        show = n > 10_000 if self.progress is None else self.progress
        bar = tqdm(range(1, self.max_epochs + 1), desc="autoencoder", unit="epoch", disable=not show)
        for epoch in bar:
            encoder.train()
            decoder.train()
            total = 0.0
            for idx in torch.randperm(len(train), generator=generator).split(self.batch_size):
                batch = train[idx]
                loss = loss_of(batch)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"the autoencoder's loss became {loss.item()} at epoch {epoch}; "
                                           "lower the learning rate", step=epoch, structures=[], checkpoint=None)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            train_loss = total / len(train)
            with torch.no_grad():
                val_loss = loss_of(val).item() if n_val else train_loss
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss if n_val else None})
            bar.set_postfix(val=f"{val_loss:.4g}")
            if n_val == 0:
                best_epoch = epoch
                continue
            if val_loss < best * (1 - 1e-4):
                best, best_epoch, stale = val_loss, epoch, 0
                best_state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(decoder.state_dict()))
            else:
                stale += 1
                if stale >= self.patience:
                    break
        bar.close()
        if best_state is not None:
            encoder.load_state_dict(best_state[0])
            decoder.load_state_dict(best_state[1])
        encoder.eval()
        decoder.eval()
        self.encoder_, self.decoder_ = encoder, decoder
        with torch.no_grad():
            self.train_error_ = loss_of(train).item()
            self.reconstruction_error_ = loss_of(val).item() if n_val else self.train_error_
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.n_features_in_ = n_features
        return self

    # ------------------------------------------------------------------ use

    def _standardised(self, X) -> torch.Tensor:
        X = check_features(X, n_features=self.n_features_in_, owner="AutoencoderMap")
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=_DTYPES[self.dtype])

    def transform(self, X) -> np.ndarray:
        """Latent coordinates of ``X`` (n_samples, n_features), shape (n_samples, n_components)."""
        check_is_fitted(self, "encoder_")
        with torch.no_grad(), torch_threads(self.n_threads):
            return self.encoder_(self._standardised(X)).double().numpy()

    def inverse_transform(self, Y) -> np.ndarray:
        """Decoded feature vectors (n_samples, n_features), in the input's units, from latent coordinates."""
        check_is_fitted(self, "encoder_")
        Y = check_features(Y, name="coordinates", n_features=self.n_components, owner="AutoencoderMap")
        with torch.no_grad(), torch_threads(self.n_threads):
            Z = self.decoder_(torch.as_tensor(Y, dtype=_DTYPES[self.dtype])).double().numpy()
        return Z * self.scale_ + self.mean_

    def reconstruction_error(self, X) -> float:
        """Mean squared error per standardised feature of encoding and decoding ``X``."""
        check_is_fitted(self, "encoder_")
        Z = self._standardised(X)
        with torch.no_grad(), torch_threads(self.n_threads):
            return float(torch.mean((self.decoder_(self.encoder_(Z)) - Z) ** 2))

    def score(self, X, y=None) -> float:
        """Minus :meth:`reconstruction_error` (greater is better, as scikit-learn expects)."""
        return -self.reconstruction_error(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return np.asarray([f"AE[{k + 1}]" for k in range(self.n_components)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # made dense
        return tags
