"""Train a committee: ``M`` members from different seeds (and optionally bootstrap resamples)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from ..config import TrainConfig
from ..data.dataset import AtomsDataset
from ..models.base import AtomisticModel
from ..models.committee import Committee
from .losses import LossWeights
from .trainer import CHECKPOINT, Trainer, TrainingResult


def train_committee(
    build: Callable[[int], AtomisticModel],
    size: int,
    train: AtomsDataset | Sequence[Atoms],
    validation: AtomsDataset | Sequence[Atoms] | None = None,
    *,
    config: TrainConfig | dict | None = None,
    weights: LossWeights | None = None,
    seed: int = 0,
    bootstrap: bool = False,
    directory: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[AtomisticModel, list[TrainingResult]]:
    """Train ``size`` models and return them as a calibrated :class:`~ml4ms.models.Committee`.

    Parameters
    ----------
    build
        ``build(seed)`` returns a fresh, untrained model whose initial weights depend on
        ``seed``; member ``k`` gets ``seed + k``, and the batch order the same seed.
    size
        Number of members; 1 returns the single trained model itself.
    train, validation
        Structures. The validation structures choose each member's best epoch and then
        calibrate the committee's spread (one scale factor, :meth:`calibrate_uncertainty`).
    config, weights
        As for :class:`Trainer`.
    bootstrap
        Train each member on a resample, with replacement, of the training structures.
    directory
        Member ``k`` keeps its checkpoints and log in ``directory/member-k``.
    resume
        Continue interrupted members; members that finished are only reloaded.

    Returns
    -------
    model, results
        The committee (or the one model) and each member's :class:`TrainingResult`.
    """
    if size < 1:
        raise ValueError(f"committee size must be >= 1, got {size}")
    train = train if isinstance(train, AtomsDataset) else AtomsDataset(list(train))
    if validation is not None and not isinstance(validation, AtomsDataset):
        validation = AtomsDataset(list(validation))
    members, results = [], []
    for k in range(size):
        member_seed = seed + k
        data = train
        if bootstrap and size > 1:
            rng = np.random.default_rng([seed, k, 1])
            data = train.subset(np.sort(rng.integers(0, len(train), len(train))))
        where = None
        if directory is not None:
            where = Path(directory) / f"member-{k}" if size > 1 else Path(directory)
        if progress and size > 1:
            print(f"committee member {k + 1}/{size} (seed {member_seed})", flush=True)
        model = build(member_seed)
        trainer = Trainer(model, config, weights, seed=member_seed, directory=where, progress=progress)
        again = resume and where is not None and (where / CHECKPOINT).exists()
        results.append(trainer.fit(data, validation, resume=again))
        members.append(trainer.model)
    if size == 1:
        return members[0], results
    committee = Committee.from_models(members)
    if validation is not None:
        committee.calibrate_uncertainty(validation)
    return committee, results
