"""Gradient training of any :class:`~ml4ms.models.AtomisticModel` on energies, forces and
stresses -- and of any other network, through a :class:`~ml4ms.training.tasks.TrainingTask`.

One trainer serves every gradient-trained family (atomic neural networks, message-passing
networks, committees of them, the property networks of :mod:`ml4ms.properties`): AdamW, a
learning rate that drops when the validation loss stops improving, gradient clipping, an
exponential moving average of the weights, early stopping, float64 or float32, CPU or GPU.
What depends on the model -- its data, batches and loss -- is the task's; a potential
passed directly is wrapped in a :class:`~ml4ms.training.tasks.PotentialTask`.

Nothing is lost when a run is killed: a checkpoint (safetensors + JSON) is written every
``checkpoint_every`` optimiser steps and after every epoch, and ``fit(..., resume=True)``
continues from it. The batch order of epoch ``e`` is a function of ``(seed, e)`` alone,
so the resumed run performs the same arithmetic as an uninterrupted one and ends with
the same weights, bit for bit (on the same machine and thread count).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from tqdm.auto import tqdm

from .._files import atomic_path
from ..config import TrainConfig
from ..data.dataset import AtomsDataset
from ..errors import ConfigError, TrainingDiverged
from ..models.base import AtomisticModel
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ExponentialMovingAverage
from .losses import LossWeights
from .tasks import PotentialTask, TrainingTask, batch_plan

CHECKPOINT = "checkpoint.safetensors"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
# Settings a resumed run may change: they decide when to stop or save, not the arithmetic.
_RESUMABLE_CHANGES = {"epochs", "patience", "checkpoint_every", "time_limit_min", "device"}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class TrainingResult:
    """What a training run did.

    Attributes
    ----------
    history
        One dict per epoch: ``epoch``, ``step``, ``lr``, ``train_loss`` and the weighted
        parts, and after validation ``val_loss``, ``val_energy_mae`` (meV/atom),
        ``val_forces_mae`` (eV/Å), ``val_stress_mae`` (GPa), ``time_s``.
    best_epoch
        Epoch (1-based) whose averaged weights the model now holds; 0 without validation.
    stopped
        Why training ended: ``"epochs"``, ``"patience"`` (early stopping), ``"min_lr"`` or
        ``"time_limit"`` (resume to continue).
    steps
        Optimiser steps taken in all, including those of earlier, resumed runs.
    wall_s
        Seconds of training in all.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    stopped: str
    steps: int
    wall_s: float
    directory: Path | None = None
    best_validation: dict[str, float] = field(default_factory=dict)

    @property
    def structures_per_second(self) -> float:
        """Training throughput: structures seen per second of training."""
        seen = sum(h.get("n_structures", 0) for h in self.history)
        return seen / self.wall_s if self.wall_s > 0 else float("nan")


def resolve_device(name: str) -> torch.device:
    """``"auto"``: the first GPU when one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"train.device: {error}") from None


class Trainer:
    """Train a model by minimising its task's loss (for potentials, the weighted loss of
    :mod:`ml4ms.training.losses`).

    Parameters
    ----------
    model
        Any :class:`~ml4ms.models.AtomisticModel` with trainable parameters, or a
        :class:`~ml4ms.training.tasks.TrainingTask` (a model with its own data and loss).
        The model is cast to ``config.dtype`` and moved to ``config.device``.
    config
        :class:`~ml4ms.config.TrainConfig` or a mapping of its fields.
    weights
        Expected errors of energies, forces and stresses (:class:`LossWeights`); for
        potentials only (a task carries its own loss).
    seed
        Seed of the batch order (the model's own seed sets its initial weights).
    directory
        Where checkpoints and the metrics log go; None trains without them.
    progress
        Show a progress bar with the loss and the latest validation errors.

    Examples
    --------
    >>> trainer = Trainer(model, {"epochs": 50, "lr": 1e-3}, LossWeights(0.002, 0.05),
    ...                   directory="runs/cu")                                  # doctest: +SKIP
    >>> result = trainer.fit(train, validation)                                 # doctest: +SKIP
    """

    def __init__(
        self,
        model: AtomisticModel | TrainingTask,
        config: TrainConfig | dict[str, Any] | None = None,
        weights: LossWeights | None = None,
        *,
        seed: int = 0,
        directory: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config if isinstance(config, TrainConfig) else TrainConfig(**(config or {}))
        if isinstance(model, TrainingTask):
            if weights is not None:
                raise ConfigError("loss weights are for potentials; a training task carries its own loss")
            self.task = model
        else:
            self.task = PotentialTask(model, weights)
        self.weights = getattr(self.task, "weights", None)
        self.seed = int(seed)
        self.directory = None if directory is None else Path(directory)
        self.progress = progress
        self.device = resolve_device(self.config.device)
        self.dtype = _DTYPES[self.config.dtype]
        self.model = self.task.model = self.task.model.to(device=self.device, dtype=self.dtype)
        self.task.bind(self.dtype, self.device)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError(f"{type(self.model).__name__} has no trainable parameters; "
                              "closed-form models are fitted with model.fit(data)")

    # ------------------------------------------------------------------ helpers
    def _plan(self, data: Any, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.task.sizes(data)))
        return batch_plan(self.task.sizes(data), order, self.config.batch_size, self.config.max_atoms_per_batch)

    def evaluate(self, data: Any) -> dict[str, float]:
        """The task's validation figures on ``data`` with the model's current weights.

        Returns
        -------
        dict
            ``loss`` (mean over batches, item-weighted) and the task's errors; for
            potentials ``energy_mae`` meV/atom, ``forces_mae`` eV/Å, ``stress_mae`` GPa
            (the last two NaN without labels).
        """
        return self.task.evaluate(self.task.prepare(data), 4 * self.config.batch_size,
                                  self.config.max_atoms_per_batch)

    def _write_log(self, history: list[dict[str, Any]]) -> None:
        if self.directory is None:
            return
        columns = list(dict.fromkeys(key for row in history for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        with atomic_path(self.directory / METRICS_CSV) as tmp:
            tmp.write_text(text.getvalue())
        with atomic_path(self.directory / METRICS_JSON) as tmp:
            tmp.write_text(json.dumps(history, indent=1))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: AtomsDataset | Sequence[Atoms] | Any,
        validation: AtomsDataset | Sequence[Atoms] | Any | None = None,
        *,
        resume: bool = False,
        initialize: bool = True,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainingResult:
        """Train until the epochs run out, early stopping, the learning-rate floor or the time limit.

        Parameters
        ----------
        train
            Training structures with energies (and forces/stresses when weighted); for a
            task, whatever its :meth:`~ml4ms.training.tasks.TrainingTask.prepare` takes.
        validation
            Held-out structures (items) that drive the learning-rate schedule, early
            stopping and the choice of the best weights; without them the training loss does.
        resume
            Continue from ``directory/checkpoint.safetensors``.
        initialize
            Call ``model.initialize(train)`` (the task's ``initialize``) first (reference energies, scales); ignored
            when resuming (the checkpoint has them).
        callback
            Called after every optimiser step (and its checkpoint, if one is due) with the
            trainer's state, for custom logging; an exception it raises stops training
            as a kill would.

        Returns
        -------
        TrainingResult

        Raises
        ------
        TrainingDiverged
            A non-finite loss or gradient; names the step and the batch's structures.
            The last good checkpoint stays on disk.
        """
        start = time.perf_counter()
        task = self.task
        train = task.prepare(train)
        if validation is not None:
            validation = task.prepare(validation)
        task.check(train, "training")
        if validation is not None:
            task.check(validation, "validation")
        config = self.config
        model = self.model
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        ema = ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay is not None else None
        state: dict[str, Any] = {
            "epoch": 0, "batch": 0, "step": 0, "lr": config.lr, "best_loss": math.inf, "best_epoch": 0,
            "best_validation": {}, "bad_epochs": 0, "plateau": 0, "history": [], "elapsed_s": 0.0,
            "epoch_sums": {}, "epoch_structures": 0, "ema_updates": 0, "seed": self.seed,
            "train_hash": task.fingerprint(train), "config": config.model_dump(),
            "weights": task.settings(),
        }
        best: dict[str, torch.Tensor] | None = None
        checkpoint_path = None if self.directory is None else self.directory / CHECKPOINT
        model_info = task.model_info()
        if resume:
            if checkpoint_path is None:
                raise ConfigError("resume needs the directory of the interrupted run")
            saved = load_checkpoint(checkpoint_path)
            self._check_resumable(saved, state, model_info, checkpoint_path)
            model.load_state_dict({k: v.to(self.device) for k, v in saved["model"].items()})
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            state["config"] = config.model_dump()
            if ema is not None and saved["ema"] is not None:
                ema.load(saved["ema"], state["ema_updates"])
            best = saved["best"]
        elif initialize:
            task.initialize(train)
            model.to(device=self.device, dtype=self.dtype)
            if ema is not None:  # the average starts from the initialised weights
                ema = ExponentialMovingAverage(model, config.ema_decay)

        def checkpoint() -> None:
            if checkpoint_path is None:
                return
            # A checkpoint is the last good state: never overwrite it with broken weights.
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise self._diverged("weights", state, [], train, checkpoint_path)
            state["elapsed_s"] = elapsed()
            state["ema_updates"] = 0 if ema is None else ema.updates
            save_checkpoint(checkpoint_path, model=model, optimizer=optimizer,
                            ema=None if ema is None else ema.state(), best=best, state=state,
                            model_info=model_info)

        previous = float(state["elapsed_s"])

        def elapsed() -> float:
            return previous + time.perf_counter() - start

        params = [p for p in model.parameters() if p.requires_grad]
        # A run that stopped on time or ran out of epochs continues (with more epochs);
        # one that converged (patience, learning-rate floor) stays stopped.
        stopped = state.get("stopped")
        stopped = None if stopped in (None, "time_limit", "epochs") else stopped
        while stopped is None and state["epoch"] < config.epochs:
            epoch = state["epoch"]
            plan = self._plan(train, epoch)
            bar = tqdm(total=len(plan), initial=state["batch"], desc=f"epoch {epoch + 1}/{config.epochs}",
                       disable=not self.progress, leave=False, unit="batch")
            model.train()
            for b in range(state["batch"], len(plan)):
                indices = plan[b]
                optimizer.zero_grad(set_to_none=True)
                loss, parts = task.loss(train, indices)
                if not torch.isfinite(loss):
                    raise self._diverged("loss", state, indices, train, checkpoint_path)
                loss.backward()
                if config.clip_grad_norm is not None:
                    norm = torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
                    if not torch.isfinite(norm):
                        raise self._diverged("gradient", state, indices, train, checkpoint_path)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                state["step"] += 1
                state["batch"] = b + 1
                sums = state["epoch_sums"]
                for key, value in {"loss": float(loss.detach()), **parts}.items():
                    sums[key] = sums.get(key, 0.0) + value * len(indices)
                state["epoch_structures"] += len(indices)
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)
                if state["step"] % config.checkpoint_every == 0:
                    checkpoint()
                if callback is not None:
                    callback(state)
                # The limit is on this invocation, so that --resume gets a fresh budget.
                if config.time_limit_min is not None and time.perf_counter() - start > 60 * config.time_limit_min:
                    stopped = "time_limit"
                    break
            bar.close()
            if stopped == "time_limit":
                break
            # ---- end of epoch: validate with the averaged weights, schedule, log, save
            state["epoch"] += 1
            state["batch"] = 0
            n = max(state["epoch_structures"], 1)
            row: dict[str, Any] = {"epoch": state["epoch"], "step": state["step"], "lr": state["lr"],
                                   "n_structures": state["epoch_structures"]}
            row.update({f"train_{k}": v / n for k, v in state["epoch_sums"].items()})
            state["epoch_sums"], state["epoch_structures"] = {}, 0
            validate = validation is not None and (state["epoch"] % config.validate_every == 0
                                                   or state["epoch"] == config.epochs)
            if validate:
                if ema is not None:
                    with ema.applied(model):
                        metrics = task.evaluate(validation, 4 * config.batch_size, config.max_atoms_per_batch)
                else:
                    metrics = task.evaluate(validation, 4 * config.batch_size, config.max_atoms_per_batch)
                row.update({f"val_{k}": v for k, v in metrics.items()})
                score = metrics["loss"]
            else:
                score = row.get("train_loss", math.inf) if validation is None else None
            row["time_s"] = round(elapsed(), 3)
            if score is not None:
                stopped = self._schedule(state, score, optimizer)
                if state["best_epoch"] == state["epoch"]:
                    best = self._current_weights(model, ema)
                    if validate:
                        state["best_validation"] = metrics
            state["history"].append(row)
            self._write_log(state["history"])
            checkpoint()
            if self.progress:
                tqdm.write(task.epoch_line(row))
        state["stopped"] = stopped or "epochs"
        checkpoint()
        if best is not None:
            model.load_state_dict(best)
        elif ema is not None:
            ema.copy_to(model)
        model.eval()
        return TrainingResult(history=state["history"], best_epoch=state["best_epoch"], stopped=state["stopped"],
                              steps=state["step"], wall_s=elapsed(), directory=self.directory,
                              best_validation=state.get("best_validation", {}))

    # ------------------------------------------------------------------ pieces of fit
    def _schedule(self, state: dict[str, Any], score: float, optimizer: torch.optim.Optimizer) -> str | None:
        """Plateau schedule and early stopping on ``score``; returns why to stop, or None."""
        config = self.config
        if score < state["best_loss"] * (1 - 1e-4):
            state["best_loss"], state["best_epoch"] = score, state["epoch"]
            state["bad_epochs"] = state["plateau"] = 0
            return None
        state["bad_epochs"] += 1
        state["plateau"] += 1
        if config.patience is not None and state["bad_epochs"] >= config.patience:
            return "patience"
        if state["plateau"] > config.lr_patience:
            state["plateau"] = 0
            lr = state["lr"] * config.lr_factor
            if lr < config.min_lr:
                return "min_lr"
            state["lr"] = lr
            for group in optimizer.param_groups:
                group["lr"] = lr
        return None

    @staticmethod
    def _current_weights(model: torch.nn.Module, ema: ExponentialMovingAverage | None) -> dict[str, torch.Tensor]:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if ema is not None:
            weights.update({k: v.detach().clone() for k, v in ema.state().items()})
        return weights

    def _diverged(self, what: str, state: dict[str, Any], indices: list[int], data: Any,
                  checkpoint_path: Path | None) -> TrainingDiverged:
        saved = str(checkpoint_path) if checkpoint_path is not None and checkpoint_path.exists() else None
        where = f"; the last good checkpoint is {saved} (resume from it with a lower lr)" if saved \
            else "; no checkpoint was written yet"
        source = self.task.source(data)
        source = f" of {source}" if source else ""
        return TrainingDiverged(
            f"non-finite {what} at step {state['step'] + 1} (epoch {state['epoch'] + 1}), batch of training "
            f"{self.task.item_name} {indices}{source}{where}",
            step=state["step"] + 1, structures=list(indices), checkpoint=saved)

    def _check_resumable(self, saved: dict[str, Any], state: dict[str, Any], model_info: dict[str, Any],
                         path: Path) -> None:
        old = saved["state"]
        if saved["model_info"]["class"] != model_info["class"] or \
                json.loads(json.dumps(saved["model_info"]["config"])) != json.loads(json.dumps(model_info["config"])):
            raise ConfigError(f"{path}: the checkpoint is of {saved['model_info']['class']} "
                              f"{saved['model_info']['config']}, not of this model ({model_info['class']} "
                              f"{model_info['config']})")
        changed = sorted(k for k, v in old["config"].items()
                         if k not in _RESUMABLE_CHANGES and state["config"].get(k) != v)
        if changed:
            differences = ", ".join(f"{k}: {old['config'][k]} -> {state['config'][k]}" for k in changed)
            raise ConfigError(f"{path}: cannot resume with different train settings ({differences})")
        if old["weights"] != state["weights"] or old["seed"] != state["seed"]:
            raise ConfigError(f"{path}: cannot resume with different loss weights or seed")
        if old["train_hash"] != state["train_hash"]:
            raise ConfigError(f"{path}: the training {self.task.item_name} differ from those of the "
                              "interrupted run")

