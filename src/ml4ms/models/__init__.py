"""Models: the potential contract and the model families built on it."""

from .base import AtomisticModel, model_class
from .pair import LennardJones, Morse, PairPotential
from .linear_pair import LinearPairPotential
from .predict import Predictions, predict

__all__ = [
    "AtomisticModel",
    "LennardJones",
    "LinearPairPotential",
    "Morse",
    "PairPotential",
    "Predictions",
    "model_class",
    "predict",
]
