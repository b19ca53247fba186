"""Materials-property prediction from composition and structure, with uncertainty.

Two routes share one contract (:class:`~ml4ms.properties.base.PropertyModel`: a
scikit-learn regressor whose ``predict(X, return_std=True)`` gives the value and its
calibrated sigma) and one model-file format (safetensors + JSON):

- the tabular route, :class:`TabularRegressor` on :class:`MaterialFeaturizer` features;
- the learned route, :class:`CompositionAttentionNet` (compositions) and
  :class:`CrystalGraphNet` (structures), trained with the shared trainer.

``ml4ms property fit|eval|predict|screen`` runs them from the command line.
"""

from .base import PropertyModel
from .composition_net import CompositionAttentionNet
from .crystal_graph import CrystalGraphNet
from .data import PropertyData, load_property_data
from .features import MaterialFeaturizer
from .files import load_property_model, save_property_model
from .tabular import TabularRegressor

__all__ = [
    "CompositionAttentionNet",
    "CrystalGraphNet",
    "MaterialFeaturizer",
    "PropertyData",
    "PropertyModel",
    "TabularRegressor",
    "load_property_data",
    "load_property_model",
    "save_property_model",
]
