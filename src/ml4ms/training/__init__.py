"""Training: losses, metrics, checkpoints and the trainer shared by gradient-trained models."""

from .metrics import error_metrics

__all__ = ["error_metrics"]
