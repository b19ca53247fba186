"""What the property networks share: element embeddings, the output head and its loss,
the training task for the shared :class:`~ml4ms.training.Trainer`, and the estimator
base class that fits an ensemble of networks, predicts with an error bar and turns
itself into arrays plus JSON.

A network maps a batch (a dict of tensors made by the estimator's ``_collate``) to a
``(B, 2)`` tensor: the predicted *standardised* target ``mu`` and ``s``, the log of the
predicted scale of its error. Targets are standardised inside the estimator,
``t = (y - y_mean) / y_scale``, so that one learning rate suits every unit.

Losses (``loss=``):

``"laplace"``
    CrabNet's robust L1: ``sqrt(2) |t - mu| exp(-s) + s`` (the negative log-likelihood
    of a Laplace distribution with standard deviation ``exp(s)``, up to a constant).
    Its mean is driven as by an L1 loss, which suits targets with many exact values
    (metals' zero band gaps), and ``exp(s)`` is an input-dependent error bar.
``"gaussian"``
    ``0.5 ((t - mu) / exp(s))^2 + s``, the Gaussian negative log-likelihood.
``"l1"``, ``"mse"``
    Mean absolute or squared error of ``mu``; ``s`` is not trained and the error bar
    comes from the ensemble's spread alone (``n_models >= 2`` needed).

The reported uncertainty is ``sqrt(mean_k sigma_k^2 + var_k mu_k)``: the members'
predicted (aleatoric) variance plus the spread of the members' means (epistemic),
the decomposition of Lakshminarayanan et al. (deep ensembles, NeurIPS 2017).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._threads import torch_threads
from ..config import TrainConfig
from ..descriptors.elements import N_ROWS, element_table
from ..errors import ConfigError, DataError
from ..training.tasks import TrainingTask, batch_plan
from ..training.trainer import CHECKPOINT, Trainer, TrainingResult
from .base import PropertyModel

__all__ = ["ELEMENT_PROPERTIES", "ElementEmbedding", "NetworkPropertyModel", "PropertyData", "PropertyTask",
           "element_features"]

LOSSES = ("laplace", "gaussian", "l1", "mse")
#: Elemental properties (see :mod:`ml4ms.descriptors.elements`) that initialise the embeddings.
ELEMENT_PROPERTIES = "all"
#: Elements whose properties set the standardisation (those with most data: H .. Lr).
_STANDARDISE_OVER = slice(1, 104)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def element_features() -> np.ndarray:
    """Standardised elemental properties, shape (119, P): row ``Z`` for element ``Z``.

    Each column of :func:`~ml4ms.descriptors.elements.element_table` (``"all"``: the
    Magpie set plus ionisation energy, electron affinity, polarisability, van der Waals
    radius, boiling point and Pettifor number) is shifted and scaled to mean 0 and
    standard deviation 1 over H .. Lr; a missing value becomes 0, the mean. Row 0 is 0.
    This plays the part of CrabNet's mat2vec vectors, which ml4ms does not ship.
    """
    table = np.array(element_table(ELEMENT_PROPERTIES), dtype=np.float64)
    known = table[_STANDARDISE_OVER]
    mean = np.nanmean(known, axis=0)
    std = np.nanstd(known, axis=0)
    std[~(std > 0)] = 1.0
    out = (table - mean) / std
    out[~np.isfinite(out)] = 0.0
    out[0] = 0.0
    return out


class ElementEmbedding(nn.Module):
    """Element vectors: a learned linear map of the standardised elemental properties
    plus a learned per-element correction that starts at zero.

    At initialisation, chemically similar elements therefore have similar vectors (as
    with CrabNet's mat2vec), and an element never seen in training still gets a
    sensible vector from its properties.

    Parameters
    ----------
    dim
        Width of the embedding.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        features = torch.tensor(element_features())
        self.register_buffer("features", features)
        self.project = nn.Linear(features.shape[1], dim)
        self.correction = nn.Parameter(torch.zeros(N_ROWS, dim, dtype=features.dtype))

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        """(..., dim) vectors of the atomic numbers ``numbers`` (any shape, int64)."""
        return self.project(self.features[numbers].to(self.correction.dtype)) + self.correction[numbers]


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


@torch.no_grad()
def initialise(module: nn.Module, seed: int) -> None:
    """Glorot-uniform weights and zero biases for every ``nn.Linear`` of ``module``, drawn
    from a generator seeded with ``seed`` (never the global random state); the last
    layer of an output head is scaled by 0.1 so that training starts near the mean."""
    generator = torch.Generator().manual_seed(int(seed))
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            fan_out, fan_in = sub.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight = (2 * torch.rand(sub.weight.shape, generator=generator, dtype=torch.float64) - 1) * bound
            sub.weight.copy_(weight.to(sub.weight.dtype))
            if sub.bias is not None:
                sub.bias.zero_()
    head = getattr(module, "head", None)
    if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
        head[-1].weight.mul_(0.1)


# --------------------------------------------------------------------------- data and task
@dataclass
class PropertyData:
    """Featurised inputs of a property network, with their standardised targets.

    Attributes
    ----------
    items
        One featurised input per sample (a tuple of arrays; its meaning is the model's).
    targets
        (n,) standardised targets, or None at prediction time.
    sizes
        Cost of each item (atoms of a structure, elements of a composition).
    source
        What the data is, for error messages.
    """

    items: list[Any]
    targets: np.ndarray | None
    sizes: list[int]
    source: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        """SHA-256 of every array of every item and of the targets."""
        digest = hashlib.sha256()
        for item in self.items:
            for part in item:
                array = np.ascontiguousarray(part)
                digest.update(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
        if self.targets is not None:
            digest.update(np.ascontiguousarray(self.targets, dtype=np.float64).tobytes())
        return digest.hexdigest()


def head_loss(out: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss (see the module docstring) of the head's ``(B, 2)`` output on standardised targets (B,)."""
    mu, s = out[:, 0], out[:, 1]
    if loss == "laplace":
        return (math.sqrt(2.0) * (target - mu).abs() * torch.exp(-s) + s).mean()
    if loss == "gaussian":
        return (0.5 * ((target - mu) * torch.exp(-s)).square() + s).mean()
    if loss == "l1":
        return (target - mu).abs().mean()
    return (target - mu).square().mean()


class PropertyTask(TrainingTask):
    """One property network on :class:`PropertyData`, for the shared trainer.

    Parameters
    ----------
    model
        The network: a batch dict -> ``(B, 2)`` (standardised mean, log scale).
    collate
        ``collate(data, indices, dtype, device)`` -> the batch dict.
    loss
        One of ``"laplace"``, ``"gaussian"``, ``"l1"``, ``"mse"``.
    y_scale
        Unit of the standardised targets, for the validation MAE in the user's unit.
    info
        The model's class name and hyper-parameters (checked when resuming).
    """

    item_name = "samples"

    def __init__(self, model: nn.Module, collate, loss: str, y_scale: float, info: dict[str, Any]) -> None:
        self.model = model
        self.collate = collate
        self.loss_name = loss
        self.y_scale = float(y_scale)
        self.info = info

    def sizes(self, data: PropertyData) -> list[int]:
        return data.sizes

    def fingerprint(self, data: PropertyData) -> str:
        return data.fingerprint()

    def check(self, data: PropertyData, name: str) -> None:
        if len(data) == 0:
            raise DataError(f"the {name} set is empty", source=data.source)

    def settings(self) -> dict[str, Any]:
        return {"loss": self.loss_name, "y_scale": self.y_scale}

    def model_info(self) -> dict[str, Any]:
        return self.info

    def _targets(self, data: PropertyData, indices: Sequence[int]) -> torch.Tensor:
        return torch.as_tensor(data.targets[list(indices)], dtype=self.dtype, device=self.device)

    def loss(self, data: PropertyData, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.model(self.collate(data, indices, self.dtype, self.device))
        target = self._targets(data, indices)
        loss = head_loss(out, target, self.loss_name)
        return loss, {"mae": float((out[:, 0].detach() - target).abs().mean()) * self.y_scale}

    @torch.no_grad()
    def evaluate(self, data: PropertyData, batch_size: int, max_atoms: int) -> dict[str, float]:
        """``loss`` (the training loss, sample-weighted) and ``mae`` in the target's unit."""
        was_training = self.model.training
        self.model.eval()
        loss_sum = error_sum = 0.0
        try:
            for indices in batch_plan(data.sizes, np.arange(len(data)), batch_size, max_atoms):
                out = self.model(self.collate(data, indices, self.dtype, self.device))
                target = self._targets(data, indices)
                loss_sum += float(head_loss(out, target, self.loss_name)) * len(indices)
                error_sum += float((out[:, 0] - target).abs().sum())
        finally:
            self.model.train(was_training)
        n = max(len(data), 1)
        return {"loss": loss_sum / n, "mae": error_sum / n * self.y_scale}

    def epoch_line(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']:4d}", f"lr {row['lr']:.2e}", f"loss {row.get('train_loss', math.nan):.4g}",
                 f"train MAE {row.get('train_mae', math.nan):.4g}"]
        if "val_mae" in row:
            parts.append(f"val MAE {row['val_mae']:.4g}")
        return "  ".join(parts)


# --------------------------------------------------------------------------- the estimator
class NetworkPropertyModel(PropertyModel):
    """Base class of the property networks: fits ``n_models`` networks (seeds ``seed``,
    ``seed + 1``, ...) with the shared trainer and predicts their mean and spread.

    Subclasses define the hyper-parameters in ``__init__`` (including every name in
    :data:`TRAIN_PARAMS`) and implement ``_featurize``, ``_collate`` and ``_network``.
    """

    #: Hyper-parameters every subclass has, passed to the trainer.
    TRAIN_PARAMS = ("n_models", "loss", "epochs", "batch_size", "lr", "weight_decay", "validation_fraction",
                    "patience", "ema_decay", "clip_grad_norm", "dtype", "device", "seed", "target_min",
                    "train_options", "progress", "n_threads")

    # -- to implement -------------------------------------------------------------------
    def _featurize(self, X: Sequence[Any]) -> tuple[list[Any], list[int]]:
        """Items and sizes of the inputs ``X`` (raise ml4ms.errors naming the index)."""
        raise NotImplementedError

    def _collate(self, data: PropertyData, indices: Sequence[int], dtype: torch.dtype,
                 device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _network(self, seed: int) -> nn.Module:
        raise NotImplementedError

    def _context(self) -> dict[str, Any]:
        """Extra JSON state of the subclass (saved and restored with the model)."""
        return {}

    def _set_context(self, context: Mapping[str, Any]) -> None:
        pass

    # -- shared ---------------------------------------------------------------------------
    def _train_config(self) -> TrainConfig:
        options = dict(self.train_options or {})
        clash = sorted(set(options) & {"epochs", "batch_size", "lr", "weight_decay", "patience", "ema_decay",
                                       "clip_grad_norm", "dtype", "device"})
        if clash:
            raise ConfigError(f"train_options: {', '.join(clash)} are hyper-parameters of "
                              f"{type(self).__name__} itself; set them there")
        options.setdefault("max_atoms_per_batch", 1 << 30)
        options.setdefault("checkpoint_every", 500)
        try:
            return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                               weight_decay=self.weight_decay, patience=self.patience, ema_decay=self.ema_decay,
                               clip_grad_norm=self.clip_grad_norm, dtype=self.dtype, device=self.device, **options)
        except Exception as exc:  # pydantic's ValidationError
            raise ConfigError(f"{type(self).__name__}: invalid training settings ({exc})") from None

    def _check_params(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"{type(self).__name__}: loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if int(self.n_models) < 1:
            raise ConfigError(f"{type(self).__name__}: n_models must be >= 1, got {self.n_models}")
        if self.loss in ("l1", "mse") and int(self.n_models) < 2:
            raise ConfigError(f"{type(self).__name__}: loss={self.loss!r} predicts no error bar; use "
                              "n_models >= 2 (the ensemble's spread) or loss='laplace'/'gaussian'")
        if not 0 <= float(self.validation_fraction) < 1:
            raise ConfigError(f"{type(self).__name__}: validation_fraction must be in [0, 1), "
                              f"got {self.validation_fraction}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"{type(self).__name__}: dtype must be float32 or float64, got {self.dtype!r}")

    def _info(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        changeable = {"epochs", "patience", "device", "progress", "train_options", "n_models"}
        return {"class": type(self).__name__,
                "config": {k: v for k, v in params.items() if k not in changeable}}

    def fit(self, X: Sequence[Any], y: np.ndarray, *, directory: str | Path | None = None, resume: bool = False,
            X_val: Sequence[Any] | None = None, y_val: np.ndarray | None = None) -> NetworkPropertyModel:
        """Train ``n_models`` networks on ``(X, y)``.

        Parameters
        ----------
        X
            Inputs (see the subclass).
        y
            (n,) targets, in the unit the predictions will have.
        directory
            Where checkpoints and ``metrics.csv``/``metrics.json`` go (one sub-directory
            ``member<k>`` per network when ``n_models > 1``); None trains without them.
        resume
            Continue an interrupted fit from the checkpoints in ``directory`` (members
            without a checkpoint start afresh); the result equals an uninterrupted fit.
        X_val, y_val
            Held-out data for the schedule, early stopping and the choice of the best
            weights; by default a seeded random ``validation_fraction`` of ``(X, y)``.

        Returns
        -------
        self
        """
        self._check_params()
        config = self._train_config()
        with torch_threads(self.n_threads):
            return self._fit(config, X, y, directory, resume, X_val, y_val)

    def _fit(self, config: TrainConfig, X: Sequence[Any], y: Any, directory: str | Path | None, resume: bool,
             X_val: Sequence[Any] | None, y_val: Any) -> NetworkPropertyModel:
        y = _targets(y, len(X), "y")
        items, sizes = self._featurize(X)
        if X_val is not None:
            if y_val is None:
                raise ConfigError("X_val needs y_val")
            y_val = _targets(y_val, len(X_val), "y_val")
            val_items, val_sizes = self._featurize(X_val)
            train_idx = np.arange(len(items))
        else:
            order = np.random.default_rng([int(self.seed), 7919]).permutation(len(items))
            n_val = int(round(float(self.validation_fraction) * len(items)))
            if len(items) - n_val < 1:
                raise DataError(f"{len(items)} samples leave nothing to train on after the validation split")
            train_idx = np.sort(order[n_val:])
            val_idx = np.sort(order[:n_val])
            val_items, val_sizes, y_val = [items[k] for k in val_idx], [sizes[k] for k in val_idx], y[val_idx]
        y_train = y[train_idx]
        self.y_mean_ = float(np.mean(y_train))
        scale = float(np.std(y_train))
        self.y_scale_ = scale if scale > 0 else 1.0
        train = PropertyData([items[k] for k in train_idx], (y_train - self.y_mean_) / self.y_scale_,
                             [sizes[k] for k in train_idx], "training data")
        validation = None
        if len(val_items):
            validation = PropertyData(val_items, (y_val - self.y_mean_) / self.y_scale_, val_sizes,
                                      "validation data")
        self.networks_: list[nn.Module] = []
        self.training_: list[dict[str, Any]] = []
        for k in range(int(self.n_models)):
            member_seed = int(self.seed) + k
            network = self._network(member_seed).to(_DTYPES[self.dtype])
            where = None
            if directory is not None:
                where = Path(directory) if int(self.n_models) == 1 else Path(directory) / f"member{k}"
            again = bool(resume) and where is not None and (where / CHECKPOINT).exists()
            task = PropertyTask(network, self._collate, self.loss, self.y_scale_, self._info())
            trainer = Trainer(task, config, seed=member_seed, directory=where, progress=bool(self.progress))
            result = trainer.fit(train, validation, resume=again)
            network.eval()
            self.networks_.append(network)
            self.training_.append(_summary(result))
        self.n_train_ = len(train)
        return self

    @torch.no_grad()
    def _outputs(self, X: Sequence[Any]) -> np.ndarray:
        """(n_models, n, 2) raw outputs (standardised mean, log scale)."""
        if not hasattr(self, "networks_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        items, sizes = self._featurize(X)
        data = PropertyData(items, None, sizes)
        first = next(self.networks_[0].parameters())
        dtype, device = first.dtype, first.device
        plan = batch_plan(sizes, np.arange(len(items)), max(4 * int(self.batch_size), 256), 1 << 16)
        out = np.zeros((len(self.networks_), len(items), 2))
        with torch_threads(self.n_threads):
            for m, network in enumerate(self.networks_):
                network.eval()
                for indices in plan:
                    out[m, indices] = network(self._collate(data, indices, dtype, device)).double().cpu().numpy()
        return out

    def _predict(self, X: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        out = self._outputs(X)
        mu = out[..., 0]
        mean = self.y_mean_ + self.y_scale_ * mu.mean(0)
        variance = mu.var(0)  # the members' spread
        if self.loss in ("laplace", "gaussian"):
            scale = np.exp(np.clip(out[..., 1], -30.0, 30.0))
            variance = variance + (scale**2).mean(0)
        if self.target_min is not None:
            mean = np.maximum(mean, float(self.target_min))
        return mean, self.y_scale_ * np.sqrt(variance)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not hasattr(self, "networks_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit first")
        arrays = {f"member{k}/{name}": value.detach().cpu().numpy().copy()
                  for k, network in enumerate(self.networks_) for name, value in network.state_dict().items()}
        state = {"y_mean": self.y_mean_, "y_scale": self.y_scale_, "n_members": len(self.networks_),
                 "n_train": int(getattr(self, "n_train_", 0)), "training": self.training_,
                 "context": self._context()}
        return arrays, state

    def set_state(self, arrays: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> None:
        self.y_mean_ = float(state["y_mean"])
        self.y_scale_ = float(state["y_scale"])
        self.n_train_ = int(state.get("n_train", 0))
        self.training_ = list(state.get("training", []))
        self._set_context(state.get("context", {}))
        self.networks_ = []
        for k in range(int(state["n_members"])):
            network = self._network(int(self.seed) + k).to(_DTYPES[self.dtype])
            prefix = f"member{k}/"
            weights = {name[len(prefix):]: torch.as_tensor(np.asarray(a)) for name, a in arrays.items()
                       if name.startswith(prefix)}
            network.load_state_dict(weights)
            network.eval()
            self.networks_.append(network)


def _summary(result: TrainingResult) -> dict[str, Any]:
    last = result.history[-1] if result.history else {}
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "stopped": result.stopped,
            "steps": result.steps, "wall_s": round(result.wall_s, 3),
            "best_val_mae": result.best_validation.get("mae", math.nan),
            "last_train_mae": last.get("train_mae", math.nan)}


def _targets(y: Any, n: int, name: str) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numbers", field=name) from None
    if values.shape != (n,):
        raise DataError(f"{name} must have shape ({n},) to match the inputs, got {values.shape}", field=name)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{name} is not finite ({values[bad[0]]})", index=int(bad[0]), field=name)
    return values

