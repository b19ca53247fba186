"""Models: the potential contract and the model families built on it."""

from .base import AtomisticModel, model_class
from .pair import LennardJones, Morse, PairPotential
from .linear_pair import LinearPairPotential
from .linear import LinearPotential
from .gap import SparseGPPotential
from .bpnn import AtomicNeuralNetwork
from .committee import Committee
from .mpnn import EquivariantMPNN
from .predict import Predictions, predict

__all__ = [
    "AtomicNeuralNetwork",
    "AtomisticModel",
    "Committee",
    "EquivariantMPNN",
    "LennardJones",
    "LinearPairPotential",
    "LinearPotential",
    "Morse",
    "PairPotential",
    "Predictions",
    "SparseGPPotential",
    "model_class",
    "predict",
]
