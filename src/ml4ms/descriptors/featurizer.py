"""A scikit-learn transformer from structures to feature arrays, for any descriptor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
from ase import Atoms
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..errors import DataError
from .base import Descriptor

_POOLS = ("mean", "sum", "none")


def _dense(x) -> np.ndarray:
    """A NumPy array from a dense array, a scipy sparse matrix or a pydata ``sparse`` array."""
    if hasattr(x, "toarray"):
        return x.toarray()
    if hasattr(x, "todense"):
        return np.asarray(x.todense())
    return np.asarray(x)


class Featurizer(TransformerMixin, BaseEstimator):
    """Map a list of :class:`ase.Atoms` to a feature matrix with any ml4ms descriptor.

    Per-atom descriptors (SOAP, ACSF) are pooled over the atoms of each structure so
    that there is one row per structure, as scikit-learn estimators expect.

    Parameters
    ----------
    descriptor
        Any :class:`~ml4ms.descriptors.base.Descriptor` (``SOAP``, ``ACSF``, ``CoulombMatrix``...).
    pool
        For per-atom descriptors: ``"mean"`` (default) or ``"sum"`` over the atoms of a
        structure, or ``"none"`` for one row per atom (then rows are not aligned with
        per-structure targets). Ignored for per-structure descriptors.
    n_jobs
        Threads used by the descriptor (see :meth:`Descriptor.create`).
    sparse
        Return a ``scipy.sparse.csr_matrix`` (natural for SOAP with many species).
    progress
        Show a progress bar: True, False, or ``None`` for lists longer than 500 structures.
    chunk_size
        Structures per call to the descriptor.

    Attributes
    ----------
    n_features_out_ : int
        Number of columns.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline                 # doctest: +SKIP
    >>> from sklearn.kernel_ridge import KernelRidge
    >>> from ml4ms.descriptors import SOAP, Featurizer
    >>> model = make_pipeline(Featurizer(SOAP(["Si"], r_cut=5, n_max=8, l_max=6)), KernelRidge())
    >>> model.fit(structures, energies_per_atom)
    """

    def __init__(
        self,
        descriptor: Descriptor,
        *,
        pool: str = "mean",
        n_jobs: int = 1,
        sparse: bool = False,
        progress: bool | None = None,
        chunk_size: int = 64,
    ) -> None:
        self.descriptor = descriptor
        self.pool = pool
        self.n_jobs = n_jobs
        self.sparse = sparse
        self.progress = progress
        self.chunk_size = chunk_size

    def fit(self, X: Sequence[Atoms], y=None) -> Featurizer:
        """Check the parameters (the descriptor itself needs no fitting)."""
        if not isinstance(self.descriptor, Descriptor):
            raise TypeError(f"descriptor must be an ml4ms Descriptor, got {type(self.descriptor).__name__}")
        if self.pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {self.pool!r}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        self.n_features_out_ = self.descriptor.get_number_of_features()
        return self

    def transform(self, X: Sequence[Atoms]):
        """Features of each structure, shape (n_structures, F) (or (n_atoms, F) with ``pool="none"``)."""
        check_is_fitted(self, "n_features_out_")
        images = [X] if isinstance(X, Atoms) else list(X)
        show = len(images) > 500 if self.progress is None else self.progress
        rows = []
        starts = range(0, len(images), self.chunk_size)
        for start in tqdm(starts, desc="featurize", unit="chunk", disable=not show):
            chunk = images[start:start + self.chunk_size]
            try:
                features = self.descriptor.create(chunk, n_jobs=self.n_jobs)
            except DataError as error:  # name the structure in the caller's list, not the chunk
                index = None if error.index is None else start + error.index
                raise type(error)(error.message, source=error.source, index=index, field=error.field) from None
            per_structure = [_dense(f) for f in (features if isinstance(features, list) else _dense(features))]
            if self.descriptor.per_atom:
                if self.pool == "none":
                    rows.extend(per_structure)
                    continue
                reduce = np.mean if self.pool == "mean" else np.sum
                per_structure = [reduce(f, axis=0) for f in per_structure]
            rows.extend(f[None, :] for f in per_structure)
        matrix = np.concatenate(rows) if rows else np.zeros((0, self.n_features_out_))
        return scipy.sparse.csr_matrix(matrix) if self.sparse else matrix

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The descriptor's feature labels (prefixed by the pooling for per-atom descriptors)."""
        check_is_fitted(self, "n_features_out_")
        labels = self.descriptor.feature_labels()
        if self.descriptor.per_atom and self.pool != "none":
            labels = [f"{self.pool}({label})" for label in labels]
        return np.asarray(labels, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # input is a list of structures, not a matrix
        tags.requires_fit = True
        return tags
