"""Typed configuration of ``ml4ms fit``: YAML in, validated, with clear errors.

A fit configuration is a nested YAML mapping that maps one-to-one onto the models
below (``data``, ``model``, ``fit``, ``seed``, ``output``)::

    data:
      train: mlearn:Cu:train      # a file ml4ms.data.read takes, or a dataset spec
      test: mlearn:Cu:test        # optional
    model:
      type: linear_pair           # one of MODEL_TYPES
      cutoff: 5.0                 # ...and the model's own arguments
    fit:
      energy_sigma: 0.002         # eV/atom
      force_sigma: 0.05           # eV/Å
    output: runs/cu-pair/model.ml4ms

Overrides from the command line use dotted keys (``--set fit.alpha=1e-8``); values are
parsed as YAML, so numbers, lists and booleans keep their types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the structures come from, and what their labels are called."""

    train: str = Field(description="training structures: a file or a dataset spec such as mlearn:Cu:train")
    test: str | None = Field(None, description="test structures, evaluated after the fit")
    validation: float | str | None = Field(
        None, description="held-out structures that choose hyper-parameters and calibrate uncertainties: "
        "a fraction of train (e.g. 0.1, drawn from each config_type group in that share, so rare kinds "
        "such as surfaces are represented) or a file/dataset spec; never the test set")
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"


class ModelConfig(BaseModel):
    """``type`` picks the model family; every other key is passed to its constructor."""

    model_config = ConfigDict(extra="allow")
    type: str

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FitConfig(_Strict):
    """Weights of the observations (GAP's sigmas) and the regularisation of closed-form fits."""

    energy_sigma: float = Field(0.002, gt=0, description="expected energy error, eV/atom")
    force_sigma: float = Field(0.05, gt=0, description="expected force error, eV/Å")
    stress_sigma: float | None = Field(0.005, gt=0, description="expected stress error, eV/Å³; null ignores stresses")
    alpha: float | None = Field(None, ge=0, description="prior strength: ridge penalty, or the multiplier of "
                                "K_MM of a GP; null takes the model's default")
    pair_alpha: float = Field(1e-4, ge=0, description="ridge penalty of an added two-body term")
    group_sigmas: dict[str, dict[str, float | None]] | None = Field(
        None, description="per structure group (config_type): {energy, forces, stress} sigmas")
    search: dict[str, list[float | None]] | None = Field(
        None, description="candidate values of energy_sigma, force_sigma, stress_sigma, alpha, "
        "chosen on the validation structures")
    batch_size: int = Field(8, ge=1, description="structures per batch while building the fit's rows")


class TrainConfig(_Strict):
    """Gradient training of neural-network potentials (:class:`ml4ms.training.Trainer`).

    The loss weights are the ``fit:`` section's sigmas, so the same numbers mean the
    same thing for closed-form and gradient-trained models.
    """

    epochs: int = Field(100, ge=1, description="maximum number of passes over the training data")
    batch_size: int = Field(8, ge=1, description="structures per optimiser step, at most")
    max_atoms_per_batch: int = Field(4096, ge=1, description="atoms per optimiser step, at most "
                                     "(a larger structure gets a batch of its own): bounds memory")
    lr: float = Field(2e-3, gt=0, description="initial learning rate of AdamW")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="factor applied to the learning rate on a plateau")
    lr_patience: int = Field(5, ge=0, description="epochs without validation improvement before the "
                             "learning rate drops")
    min_lr: float = Field(1e-6, ge=0, description="smallest learning rate; training stops when a "
                          "plateau would take it lower")
    patience: int | None = Field(20, ge=1, description="early stopping: epochs without validation "
                                 "improvement; null trains all epochs")
    ema_decay: float | None = Field(0.99, ge=0, lt=1, description="decay of the exponential moving average "
                                    "of the weights used for validation and the final model; null: no EMA")
    clip_grad_norm: float | None = Field(10.0, gt=0, description="clip the gradient norm; null: no clipping")
    dtype: str = Field("float64", pattern="^(float32|float64)$")
    device: str = Field("auto", description="auto (a GPU when present), cpu, cuda, cuda:1, ...")
    checkpoint_every: int = Field(100, ge=1, description="optimiser steps between checkpoints "
                                  "(one is also written after every epoch)")
    validate_every: int = Field(1, ge=1, description="epochs between validations")
    time_limit_min: float | None = Field(None, gt=0, description="stop (after a checkpoint) when this "
                                         "invocation has trained this many minutes; --resume continues")


class CommitteeConfig(_Strict):
    """A committee of independently trained models whose spread is the uncertainty."""

    size: int = Field(1, ge=1, description="number of members; 1 trains a single model")
    bootstrap: bool = Field(False, description="train each member on a bootstrap resample of the training "
                            "structures (besides its own seed)")


class FitRunConfig(_Strict):
    """The whole configuration of ``ml4ms fit``."""

    data: DataConfig
    model: ModelConfig
    fit: FitConfig = FitConfig()
    train: TrainConfig = TrainConfig()
    committee: CommitteeConfig = CommitteeConfig()
    seed: int = 0
    output: str = "model.ml4ms"


def set_dotted(config: dict[str, Any], assignment: str) -> None:
    """Apply ``"a.b.c=value"`` to a nested dict; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    node = config
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(text)


def load_fit_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                    schema: type[BaseModel] = FitRunConfig) -> Any:
    """Read, override and validate a configuration (by default that of ``ml4ms fit``;
    ``schema`` is the pydantic model of another command's configuration).

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, unknown or missing keys, values of the wrong type
        or out of range -- naming the file and the dotted key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for assignment in overrides:
        set_dotted(raw, assignment)
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_dotted_key(e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def _dotted_key(loc: tuple) -> str:
    """The user's dotted key of a pydantic error location: union members' tags (class
    names such as ``ObservedReference``, or ``function-after[...]``) are pydantic's, not keys."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


def construct(cls: type, arguments: dict[str, Any], *, section: str, what: str, **fixed: Any) -> Any:
    """``cls(**fixed, **arguments)`` from a configuration section, with errors that name the
    section, the unknown keys and the allowed ones (``fixed`` arguments are not the user's).

    Raises
    ------
    ConfigError
        Unknown keys, or a value the constructor rejects.
    """
    import inspect

    allowed = [p for p in inspect.signature(cls).parameters if p not in fixed]
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)} for {what}; "
                          f"allowed: type, {', '.join(allowed)}")
    try:
        return cls(**fixed, **arguments)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section} ({cls.__name__}): {exc}") from None
