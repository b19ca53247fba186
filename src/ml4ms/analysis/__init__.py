"""Data analysis: intrinsic dimension, maps of chemical space (PCA, kernel PCA with the
SOAP kernel, autoencoder), clustering, and chemiscope files.

``ml4ms.analysis.intrinsic_dimension(X, method="twonn")`` is the function; its module
(:mod:`ml4ms.analysis.intrinsic_dimension`) also holds the TwoNN and GRIDE estimators.
"""

from .autoencoder import AutoencoderMap
from .chemiscope import chemiscope_input, read_chemiscope, write_chemiscope
from .clustering import ClusterResult, cluster, select_n_clusters
from .intrinsic_dimension import IntrinsicDimension, intrinsic_dimension
from .maps import PCAMap, SOAPKernelPCA, make_map, map_features, soap_kernel

__all__ = [
    "AutoencoderMap",
    "ClusterResult",
    "IntrinsicDimension",
    "PCAMap",
    "SOAPKernelPCA",
    "chemiscope_input",
    "cluster",
    "intrinsic_dimension",
    "make_map",
    "map_features",
    "read_chemiscope",
    "select_n_clusters",
    "soap_kernel",
    "write_chemiscope",
]
