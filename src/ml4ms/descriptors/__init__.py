"""Descriptors of atomic environments and materials.

Every descriptor is a ``torch.nn.Module`` on :class:`~ml4ms.data.AtomicGraph`,
differentiable in positions and cell, with DScribe's ``create`` for NumPy users;
:class:`Featurizer` turns any of them into a scikit-learn transformer.
"""

from .acsf import ACSF, standard_acsf
from .base import Descriptor
from .composition import CompositionFeatures, CompositionFeaturizer, parse_formula
from .featurizer import Featurizer
from .matrices import CoulombMatrix, SineMatrix
from .soap import SOAP

__all__ = [
    "ACSF",
    "CoulombMatrix",
    "SineMatrix",
    "standard_acsf",
    "CompositionFeatures",
    "CompositionFeaturizer",
    "Descriptor",
    "Featurizer",
    "SOAP",
    "parse_formula",
]
