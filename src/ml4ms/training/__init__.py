"""Training: losses, metrics, checkpoints and the trainer shared by gradient-trained models."""

from .committee import train_committee
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import ExponentialMovingAverage
from .losses import LossWeights, weighted_loss
from .metrics import error_metrics
from .tasks import PotentialTask, TrainingTask
from .trainer import Trainer, TrainingResult, batch_plan

__all__ = [
    "ExponentialMovingAverage",
    "LossWeights",
    "PotentialTask",
    "Trainer",
    "TrainingResult",
    "TrainingTask",
    "batch_plan",
    "error_metrics",
    "load_checkpoint",
    "save_checkpoint",
    "train_committee",
    "weighted_loss",
]
