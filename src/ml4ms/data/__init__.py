"""Data: reading labelled structures, datasets, neighbour lists and batched graphs.

>>> from ml4ms.data import read, AtomsDataset, datasets       # doctest: +SKIP
>>> images = read("train.extxyz", energy_key="REF_energy")
>>> train = datasets.load("mlearn", element="Cu", split="train")
"""

from . import datasets
from .dataset import AtomsDataset, DatasetStatistics
from .graph import AtomicGraph
from .io import read, write
from .neighbors import NeighborList, neighbor_list
from .sources import read_structures
from .validate import validate_structure, validate_structures

__all__ = [
    "AtomicGraph",
    "AtomsDataset",
    "DatasetStatistics",
    "NeighborList",
    "datasets",
    "neighbor_list",
    "read",
    "read_structures",
    "validate_structure",
    "validate_structures",
    "write",
]
