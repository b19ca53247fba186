"""What the shared :class:`~ml4ms.training.Trainer` trains: a *task* couples a model with
its kind of data and its loss.

The trainer owns everything that does not depend on the model: the batch order (a
function of seed and epoch), AdamW, the plateau schedule, the moving average of the
weights, gradient clipping, early stopping, checkpoints and bit-for-bit resume, the
metrics log and the progress bar. A task answers the few questions that do depend on it:

- :meth:`TrainingTask.prepare` turns what the user passed into the task's data object;
- :meth:`TrainingTask.sizes` gives the cost of each item (atoms per structure), which
  bounds the batches;
- :meth:`TrainingTask.loss` computes the loss of one batch of items;
- :meth:`TrainingTask.evaluate` computes the validation loss and errors.

:class:`PotentialTask` trains an :class:`~ml4ms.models.AtomisticModel` on energies,
forces and stresses; the property models of :mod:`ml4ms.properties` bring their own task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase.units import GPa
from torch import nn

from ..data.dataset import AtomsDataset
from ..data.graph import AtomicGraph
from ..errors import DataError, UnknownElementError
from ..models.base import AtomisticModel, eval_mode
from .losses import LossWeights, weighted_loss

__all__ = ["PotentialTask", "TrainingTask", "batch_plan"]


def batch_plan(sizes: Sequence[int], order: np.ndarray, batch_size: int, max_atoms: int) -> list[list[int]]:
    """Consecutive runs of ``order`` with at most ``batch_size`` structures and
    ``max_atoms`` atoms each; a structure larger than ``max_atoms`` gets a batch of its own,
    so one big cell never forces a big batch (or an out-of-memory error)."""
    batches: list[list[int]] = []
    atoms = 0
    for k in order:
        k = int(k)
        if not batches or len(batches[-1]) >= batch_size or atoms + sizes[k] > max_atoms:
            batches.append([])
            atoms = 0
        batches[-1].append(k)
        atoms += sizes[k]
    return batches


class TrainingTask:
    """A model, its data and its loss, as the :class:`~ml4ms.training.Trainer` sees them.

    Subclasses set :attr:`model` (a ``torch.nn.Module`` with trainable parameters; the
    trainer casts it to the configured dtype and device and passes both to
    :meth:`bind`) and implement the methods below. ``data`` is whatever
    :meth:`prepare` returns; the trainer only asks for its length through
    :meth:`sizes` and hands it back to the task.
    """

    #: What one training item is called in messages ("structures", "samples").
    item_name: str = "items"
    model: nn.Module
    dtype: torch.dtype = torch.float64
    device: torch.device = torch.device("cpu")

    def bind(self, dtype: torch.dtype, device: torch.device) -> None:
        """Learn the dtype and device the trainer chose."""
        self.dtype, self.device = dtype, device

    def prepare(self, data: Any) -> Any:
        """The task's data object for what the user passed (identity by default)."""
        return data

    def check(self, data: Any, name: str) -> None:
        """Raise an ``ml4ms.errors`` exception when ``data`` cannot be trained on;
        ``name`` is ``"training"`` or ``"validation"``."""

    def sizes(self, data: Any) -> list[int]:
        """Cost of each item (e.g. its number of atoms), for :func:`batch_plan`."""
        raise NotImplementedError

    def fingerprint(self, data: Any) -> str:
        """A hash of the training data: a resumed run must see the same."""
        raise NotImplementedError

    def source(self, data: Any) -> str | None:
        """Where the data came from, for error messages."""
        return getattr(data, "source", None)

    def initialize(self, data: Any) -> None:
        """Prepare the model from the training data before the first step (not on resume)."""

    def loss(self, data: Any, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of the items ``indices`` (model in training mode, graph kept for
        the backward pass) and its parts as floats for the log."""
        raise NotImplementedError

    def evaluate(self, data: Any, batch_size: int, max_atoms: int) -> dict[str, float]:
        """Validation figures with the model's current weights; ``"loss"`` drives the
        schedule, early stopping and the choice of the best weights."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """JSON settings of the loss that a resumed run must share."""
        return {}

    def model_info(self) -> dict[str, Any]:
        """Class and configuration of the model, checked on resume."""
        return {"class": type(self.model).__name__, "config": getattr(self.model, "config", {})}

    def epoch_line(self, row: dict[str, Any]) -> str:
        """One line of progress after an epoch (``row`` is the history entry)."""
        parts = [f"epoch {row['epoch']:4d}", f"lr {row['lr']:.2e}", f"loss {row.get('train_loss', math.nan):.4g}"]
        if "val_loss" in row:
            parts.append(f"val loss {row['val_loss']:.4g}")
        return "  ".join(parts)


class PotentialTask(TrainingTask):
    """An :class:`~ml4ms.models.AtomisticModel` on energies, forces and stresses, with the
    weighted loss of :mod:`ml4ms.training.losses`.

    Parameters
    ----------
    model
        The potential.
    weights
        Expected errors of energies, forces and stresses.
    """

    item_name = "structures"

    def __init__(self, model: AtomisticModel, weights: LossWeights | None = None) -> None:
        self.model = model
        self.weights = weights or LossWeights()

    def prepare(self, data: AtomsDataset | Sequence[Any]) -> AtomsDataset:
        return data if isinstance(data, AtomsDataset) else AtomsDataset(list(data))

    def sizes(self, data: AtomsDataset) -> list[int]:
        return [len(a) for a in data.images]

    def fingerprint(self, data: AtomsDataset) -> str:
        return data.hash()

    def initialize(self, data: AtomsDataset) -> None:
        self.model.initialize(data)

    def settings(self) -> dict[str, Any]:
        return {"energy_sigma": self.weights.energy_sigma, "force_sigma": self.weights.force_sigma,
                "stress_sigma": self.weights.stress_sigma}

    def model_info(self) -> dict[str, Any]:
        return {"class": type(self.model).__name__, "config": self.model.config}

    def graph(self, data: AtomsDataset, indices: Sequence[int]) -> AtomicGraph:
        """The batch ``indices`` of ``data`` as one graph, from the dataset's neighbour-list cache."""
        lists = data.neighbor_lists(self.model.cutoff)
        return AtomicGraph.from_atoms([data.images[k] for k in indices], self.model.cutoff,
                                      dtype=self.dtype, device=self.device,
                                      neighbor_lists=[lists[k] for k in indices])

    def forward(self, graph: AtomicGraph, create_graph: bool) -> dict[str, torch.Tensor]:
        stress = (self.weights.needs_stress or not create_graph) and graph.stress is not None \
            and bool((graph.volumes() > 0).all())
        return self.model(graph, compute_forces=self.weights.needs_forces or not create_graph,
                          compute_stress=stress, create_graph=create_graph)

    def loss(self, data: AtomsDataset, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        graph = self.graph(data, indices)
        return weighted_loss(self.forward(graph, create_graph=True), graph, self.weights)

    def check(self, data: AtomsDataset, name: str) -> None:
        if len(data) == 0:
            raise DataError(f"the {name} set is empty", source=data.source)
        for k, atoms in enumerate(data.images):
            if "energy" not in atoms.info and not (self.weights.needs_forces and "forces" in atoms.arrays):
                raise DataError(f"{name} structure has neither an energy nor forces to train on",
                                source=data.source, index=k, field="energy")
        known = self.model.known_elements.cpu().numpy()
        for k, atoms in enumerate(data.images):
            if not known[atoms.numbers].all():
                z = int(atoms.numbers[~known[atoms.numbers]][0])
                raise UnknownElementError(f"element Z={z} is not one of the model's elements "
                                          f"{self.model.elements}", source=data.source, index=k, field="numbers")

    def evaluate(self, data: AtomsDataset, batch_size: int, max_atoms: int) -> dict[str, float]:
        """Weighted loss and MAEs: ``loss`` (structure-weighted mean over batches),
        ``energy_mae`` meV/atom, ``forces_mae`` eV/Å, ``stress_mae`` GPa (NaN without labels)."""
        plan = batch_plan(self.sizes(data), np.arange(len(data)), batch_size, max_atoms)
        loss_sum = 0.0
        errors: dict[str, list[np.ndarray]] = {"energy": [], "forces": [], "stress": []}
        with eval_mode(self.model):
            for indices in plan:
                graph = self.graph(data, indices)
                out = self.forward(graph, create_graph=False)
                loss, _ = weighted_loss(out, graph, self.weights)
                loss_sum += float(loss.detach()) * len(indices)
                n_atoms = graph.n_atoms.to(self.dtype)
                if graph.energy is not None:
                    errors["energy"].append(((out["energy"] - graph.energy) / n_atoms).detach().cpu().numpy())
                if graph.forces is not None:
                    errors["forces"].append((out["forces"] - graph.forces).detach().cpu().numpy().ravel())
                if graph.stress is not None and "stress" in out:
                    errors["stress"].append((out["stress"] - graph.stress).detach().cpu().numpy().ravel())

        def mae(parts, unit=1.0):
            values = np.concatenate(parts) if parts else np.zeros(0)
            values = values[np.isfinite(values)]
            return float(np.abs(values).mean() / unit) if values.size else float("nan")

        return {"loss": loss_sum / max(len(data), 1), "energy_mae": 1000 * mae(errors["energy"]),
                "forces_mae": mae(errors["forces"]), "stress_mae": mae(errors["stress"], GPa)}

    def epoch_line(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']:4d}", f"lr {row['lr']:.2e}", f"loss {row.get('train_loss', float('nan')):.4g}"]
        if "val_energy_mae" in row:
            parts.append(f"val E {row['val_energy_mae']:.3f} meV/atom")
            if math.isfinite(row["val_forces_mae"]):
                parts.append(f"F {row['val_forces_mae']:.4f} eV/Å")
            if math.isfinite(row["val_stress_mae"]):
                parts.append(f"S {row['val_stress_mae']:.3f} GPa")
        return "  ".join(parts)
