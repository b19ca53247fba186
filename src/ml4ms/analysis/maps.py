"""Maps of chemical space: low-dimensional coordinates for structures or atomic environments.

Three scikit-learn transformers project descriptor vectors onto a few coordinates that
can be plotted and explored (for instance in chemiscope, see
:mod:`ml4ms.analysis.chemiscope`):

- :class:`PCAMap`: principal component analysis, optionally on standardised features.
- :class:`SOAPKernelPCA`: kernel PCA with the normalised polynomial kernel GAP and SOAP
  use, ``k(x, y) = (x·y / (|x| |y|))**zeta``, centred in feature space.
- :class:`~ml4ms.analysis.autoencoder.AutoencoderMap`: a neural encoder-decoder whose
  bottleneck gives the coordinates.

:func:`map_features` turns structures into the rows of such a map: one row per
structure (mean of the atomic descriptors, chemiscope's ``"structure"`` target) or one
row per atomic environment (chemiscope's ``"atom"`` target).

>>> from ml4ms.analysis.maps import SOAPKernelPCA, map_features     # doctest: +SKIP
>>> rows = map_features(structures, SOAP(["Si"], r_cut=5, n_max=6, l_max=4), target="atom")
>>> xy = SOAPKernelPCA(n_components=2, zeta=2).fit_transform(rows.features)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from ase import Atoms
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError, DataError

__all__ = [
    "MAP_METHODS",
    "MapFeatures",
    "PCAMap",
    "SOAPKernelPCA",
    "check_features",
    "make_map",
    "plot_map",
    "map_features",
    "soap_kernel",
]

#: Map methods by name, as :func:`make_map` and ``ml4ms map --method`` accept them.
MAP_METHODS = ("pca", "kpca", "autoencoder")


# ----------------------------------------------------------------------------- validation


def check_features(
    X,
    *,
    name: str = "features",
    min_samples: int = 1,
    n_features: int | None = None,
    owner: str = "the map",
    dtype=np.float64,
) -> np.ndarray:
    """A finite, dense, 2-D float array from ``X``, or a clear error.

    Parameters
    ----------
    X
        Array-like or scipy sparse matrix of shape (n_samples, n_features) (sparse input
        is made dense).
    name
        What the rows are called in messages.
    min_samples
        Fewest rows accepted (a :class:`~ml4ms.errors.ConfigError` below it, since it is
        the request, e.g. the number of components, that does not fit the data).
    n_features
        Columns expected (the number seen in ``fit``), or None for any.
    owner
        The estimator, named in messages.
    dtype
        Floating dtype of the result.

    Raises
    ------
    DataError
        Not 2-D, empty, complex or non-numeric, non-finite values (the first bad row is
        named), or the wrong number of columns.
    ConfigError
        Fewer than ``min_samples`` rows.
    """
    from sklearn.utils.validation import check_array

    try:  # scikit-learn's own checks and messages for shape, dtype and complex input
        array = check_array(X, accept_sparse=True, dtype=dtype, ensure_all_finite=False)
    except ValueError as exc:
        raise DataError(str(exc), field=name) from None
    if scipy.sparse.issparse(array):
        array = array.toarray()
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        n_bad = int((~finite.all(axis=1)).sum())
        raise DataError(f"{n_bad} row(s) hold NaN or infinite values (first: row {row}, column {col})",
                        field=name)
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(f"X has {array.shape[1]} features, but {owner} is expecting {n_features} features "
                        "as input (as in fit)", field=name)
    if array.shape[0] < min_samples:
        raise ConfigError(f"{name}: {array.shape[0]} sample(s) is too few; {owner} needs at least {min_samples}")
    return array


def _check_n_components(n_components, n_samples: int, n_features: int | None, owner: str) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"{owner}: n_components must be a positive integer, got {n_components!r}")
    limit = n_samples if n_features is None else min(n_samples, n_features)
    if n_components > limit:
        what = f"n_samples={n_samples}" + ("" if n_features is None else f", n_features={n_features}")
        raise ConfigError(f"{owner}: n_components={n_components} is more than the data allow "
                          f"({what}: at most {limit})")
    return int(n_components)


def _standard_scale(X: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales; constant columns keep scale 1 (as scikit-learn's StandardScaler)."""
    mean = X.mean(axis=0)
    if not standardize:
        return mean, np.ones(X.shape[1], dtype=X.dtype)
    std = X.std(axis=0)
    tiny = std <= 1e-12 * max(1.0, float(np.abs(mean).max()))
    return mean, np.where(tiny, 1.0, std)


def _require_variance(X: np.ndarray, owner: str) -> None:
    spread = np.ptp(X, axis=0)
    if not (spread > 1e-12 * max(1.0, float(np.abs(X).max()))).any():
        raise DataError(f"every feature is constant over the {X.shape[0]} samples: there is nothing to map "
                        f"({owner})", field="features")


# ----------------------------------------------------------------------------- PCA


class PCAMap(TransformerMixin, BaseEstimator):
    """Principal component analysis of descriptor vectors.

    A thin layer over :class:`sklearn.decomposition.PCA` (full SVD, deterministic) that
    can standardise the features first, checks its input and names its outputs as
    chemiscope does (``PCA[1]``, ``PCA[2]``...).

    Parameters
    ----------
    n_components
        Number of coordinates, at most min(n_samples, n_features).
    standardize
        Divide each centred feature by its standard deviation before the projection
        (constant features are left unscaled). Off by default: SOAP power spectra share
        one scale and are usually compared as they are.
    whiten
        Scale each coordinate to unit variance.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Column means of the training features.
    scale_ : ndarray of shape (n_features,)
        Column scales (ones without ``standardize``).
    components_ : ndarray of shape (n_components, n_features)
        Principal axes in the (standardised) feature space, orthonormal rows.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the training data along each axis (in squared feature units).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Fraction of the total variance along each axis.
    pca_ : sklearn.decomposition.PCA
        The fitted scikit-learn estimator.
    n_features_in_ : int
        Number of features seen in fit.
    """

    def __init__(self, n_components: int = 2, *, standardize: bool = False, whiten: bool = False) -> None:
        self.n_components = n_components
        self.standardize = standardize
        self.whiten = whiten

    def fit(self, X, y=None) -> PCAMap:
        """Find the principal axes of ``X`` (n_samples, n_features)."""
        self._fit(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and return the coordinates of ``X``, shape (n_samples, n_components)."""
        return self._fit(X)

    def _fit(self, X) -> np.ndarray:
        X = check_features(X)
        n_components = _check_n_components(self.n_components, X.shape[0], X.shape[1], "PCAMap")
        _require_variance(X, "PCAMap")
        self.mean_, self.scale_ = _standard_scale(X, self.standardize)
        Z = (X - self.mean_) / self.scale_
        self.pca_ = PCA(n_components=n_components, whiten=self.whiten, svd_solver="full")
        coordinates = self.pca_.fit_transform(Z)
        self.components_ = self.pca_.components_
        self.explained_variance_ = self.pca_.explained_variance_
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        self.n_features_in_ = X.shape[1]
        return coordinates

    def transform(self, X) -> np.ndarray:
        """Coordinates of ``X`` on the principal axes, shape (n_samples, n_components)."""
        check_is_fitted(self, "pca_")
        X = check_features(X, n_features=self.n_features_in_, owner="PCAMap")
        return self.pca_.transform((X - self.mean_) / self.scale_)

    def inverse_transform(self, Y) -> np.ndarray:
        """Feature vectors (n_samples, n_features) back from coordinates (n_samples, n_components)."""
        check_is_fitted(self, "pca_")
        Y = check_features(Y, name="coordinates", n_features=self.pca_.n_components_, owner="PCAMap")
        return self.pca_.inverse_transform(Y) * self.scale_ + self.mean_

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "pca_")
        return np.asarray([f"PCA[{k + 1}]" for k in range(self.pca_.n_components_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # made dense
        return tags


# ----------------------------------------------------------------------------- kernel PCA


def _normalise_rows(X: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1)
    zero = norms <= np.finfo(X.dtype).tiny
    if zero.any():
        raise DataError(f"{int(zero.sum())} row(s) are zero vectors (first: row {int(np.argmax(zero))}); the "
                        "normalised SOAP kernel is undefined for them", field=name)
    return X / norms[:, None]


def _check_zeta(zeta) -> int:
    if isinstance(zeta, bool) or not float(zeta).is_integer() or zeta < 1:
        raise ConfigError(f"zeta must be a positive integer (the kernel of vectors with negative dot products "
                          f"is not real otherwise), got {zeta!r}")
    return int(zeta)


def soap_kernel(X, Y=None, *, zeta: int = 2) -> np.ndarray:
    """The normalised polynomial (SOAP) kernel ``(x·y / (|x| |y|))**zeta``.

    Parameters
    ----------
    X
        Descriptor vectors, shape (n_x, n_features).
    Y
        Second set, shape (n_y, n_features); ``X`` itself when None.
    zeta
        Positive integer exponent; 1 is the cosine similarity, 2 (the usual choice with
        SOAP power spectra) and higher sharpen it.

    Returns
    -------
    ndarray of shape (n_x, n_y)
        Values in [-1, 1] (in [0, 1] for even ``zeta``); 1 on the diagonal of ``K(X, X)``.
    """
    zeta = _check_zeta(zeta)
    Xn = _normalise_rows(check_features(X), "features")
    Yn = Xn if Y is None else _normalise_rows(check_features(Y, n_features=Xn.shape[1]), "features")
    return np.clip(Xn @ Yn.T, -1.0, 1.0) ** zeta


class SOAPKernelPCA(TransformerMixin, BaseEstimator):
    """Kernel PCA with the normalised polynomial kernel of GAP/SOAP.

    The kernel ``k(x, y) = (x̂·ŷ)**zeta`` with ``x̂ = x/|x|`` is centred in its feature
    space, ``K̃ = (I - 1/n) K (I - 1/n)``, and its leading eigenvectors ``α_k`` (unit norm)
    with eigenvalues ``λ_k`` give the coordinates ``√λ_k α_k`` of the training samples.
    A new sample ``y`` is placed with the same centring: its kernel row against the
    training set, minus the training column means, minus its own row mean, plus the
    grand mean, times ``α_k/√λ_k``. This equals scikit-learn's ``KernelPCA`` on the
    precomputed kernel; it is written out so that the kernel is built once, from
    normalised vectors, and only the wanted eigenpairs are computed
    (``scipy.linalg.eigh`` with ``subset_by_index``, or Lanczos iterations for large n).

    Memory and time grow as n² and n³ in the number of training samples; fit on a
    representative subset of a few thousand rows and ``transform`` the rest.

    Parameters
    ----------
    n_components
        Number of coordinates, at most n_samples.
    zeta
        Positive integer exponent of the kernel. With ``zeta=1`` the map is the PCA of
        the normalised vectors.
    eigen_solver
        ``"dense"``: ``scipy.linalg.eigh`` for the wanted eigenpairs only (O(n³));
        ``"arpack"``: Lanczos iterations (``scipy.sparse.linalg.eigsh``, O(n² k) per
        sweep); ``"auto"`` (default): arpack for more than 200 samples and fewer than 10
        components, as scikit-learn's KernelPCA chooses.
    random_state
        Seed of arpack's starting vector (the result does not depend on it beyond
        round-off; it makes runs bit-for-bit repeatable).

    Attributes
    ----------
    X_fit_ : ndarray of shape (n_samples, n_features)
        Normalised training vectors.
    eigenvalues_ : ndarray of shape (n_components,)
        Leading eigenvalues of the centred kernel, descending; values below
        ``1e-12 × λ_1`` are set to 0 and their coordinates are 0.
    eigenvectors_ : ndarray of shape (n_samples, n_components)
        Matching unit eigenvectors, each with its largest-magnitude entry positive.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Share of the trace of the centred kernel (the total variance in feature space)
        carried by each component.
    kernel_column_means_ : ndarray of shape (n_samples,)
        Column means of the uncentred training kernel.
    kernel_mean_ : float
        Grand mean of the uncentred training kernel.
    n_features_in_ : int
        Number of features seen in fit.
    """

    def __init__(self, n_components: int = 2, *, zeta: int = 2, eigen_solver: str = "auto",
                 random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.zeta = zeta
        self.eigen_solver = eigen_solver
        self.random_state = random_state

    def fit(self, X, y=None) -> SOAPKernelPCA:
        """Diagonalise the centred kernel of ``X`` (n_samples, n_features)."""
        self._fit(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit and return the coordinates of ``X``, shape (n_samples, n_components)."""
        return self._fit(X)

    def _fit(self, X) -> np.ndarray:
        zeta = _check_zeta(self.zeta)
        X = check_features(X)
        n = X.shape[0]
        n_components = _check_n_components(self.n_components, n, None, "SOAPKernelPCA")
        Xn = _normalise_rows(X, "features")
        K = np.clip(Xn @ Xn.T, -1.0, 1.0) ** zeta
        column_means = K.mean(axis=0)
        grand_mean = float(column_means.mean())
        K -= column_means[None, :]
        K -= column_means[:, None]
        K += grand_mean
        trace = float(np.trace(K))
        if trace <= 1e-12 * n:
            raise DataError(f"all {n} samples are the same point for the SOAP kernel (zeta={zeta}, "
                            f"n_features={X.shape[1]}): their normalised vectors are equal (up to sign for even "
                            "zeta); there is nothing to map", field="features")
        if self.eigen_solver not in ("auto", "dense", "arpack"):
            raise ConfigError(f"eigen_solver must be 'auto', 'dense' or 'arpack', got {self.eigen_solver!r}")
        solver = self.eigen_solver
        if solver == "auto":
            solver = "arpack" if n > 200 and n_components < 10 else "dense"
        if solver == "arpack" and n_components < n - 1:
            # Lanczos iterations for the few largest eigenpairs: O(n² k) per sweep instead of O(n³).
            v0 = np.random.default_rng(self.random_state).uniform(-1.0, 1.0, n)
            values, vectors = scipy.sparse.linalg.eigsh(K, k=n_components, which="LA", v0=v0)
            order = np.argsort(values)
            values, vectors = values[order], vectors[:, order]
        else:
            values, vectors = scipy.linalg.eigh(K, subset_by_index=[n - n_components, n - 1], driver="evr")
        values, vectors = values[::-1], vectors[:, ::-1]
        values = np.where(values > 1e-12 * values[0], values, 0.0)
        rows = np.argmax(np.abs(vectors), axis=0)
        vectors = vectors * np.sign(vectors[rows, np.arange(n_components)])
        self.X_fit_ = Xn
        self.eigenvalues_ = values
        self.eigenvectors_ = vectors
        self.explained_variance_ratio_ = values / trace
        self.kernel_column_means_ = column_means
        self.kernel_mean_ = grand_mean
        self.n_features_in_ = X.shape[1]
        return vectors * np.sqrt(values)

    def _projector(self) -> np.ndarray:
        inverse_root = np.zeros_like(self.eigenvalues_)
        positive = self.eigenvalues_ > 0
        inverse_root[positive] = 1.0 / np.sqrt(self.eigenvalues_[positive])
        return self.eigenvectors_ * inverse_root

    def transform(self, X) -> np.ndarray:
        """Coordinates of new samples ``X`` (n_samples, n_features), shape (n_samples, n_components)."""
        check_is_fitted(self, "eigenvectors_")
        zeta = _check_zeta(self.zeta)
        Xn = _normalise_rows(check_features(X, n_features=self.n_features_in_, owner="SOAPKernelPCA"), "features")
        K = np.clip(Xn @ self.X_fit_.T, -1.0, 1.0) ** zeta
        # K - 1ₘ·colmeans - rowmeans·1ₙ + grand mean; the grand mean is the mean of colmeans,
        # so after the first subtraction the row means already carry it.
        K -= self.kernel_column_means_[None, :]
        K -= K.mean(axis=1)[:, None]
        return K @ self._projector()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "eigenvectors_")
        return np.asarray([f"kPCA[{k + 1}]" for k in range(self.eigenvalues_.size)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # made dense
        return tags


# ----------------------------------------------------------------------------- structures to rows


@dataclass(frozen=True)
class MapFeatures:
    """Descriptor rows of a map, and which structure (and atom) each row stands for.

    Attributes
    ----------
    features : ndarray of shape (n_rows, n_features)
        One row per structure (``target="structure"``) or per atom (``"atom"``).
    target : str
        ``"structure"`` or ``"atom"``, as chemiscope names them.
    structure : ndarray of int, shape (n_rows,)
        Index of the structure of each row.
    center : ndarray of int, shape (n_rows,)
        Index of the atom within its structure (``"atom"`` rows); -1 for structure rows.
    """

    features: np.ndarray
    target: str
    structure: np.ndarray
    center: np.ndarray


def map_features(
    images: Sequence[Atoms],
    descriptor,
    *,
    target: str = "structure",
    n_jobs: int = 1,
    progress: bool | None = None,
) -> MapFeatures:
    """Descriptor rows for a map of ``images``.

    Parameters
    ----------
    images
        Structures.
    descriptor
        Any ml4ms descriptor. Per-atom descriptors (SOAP, ACSF) give one row per atomic
        environment with ``target="atom"`` and the mean over the atoms of each structure
        with ``target="structure"``; per-structure descriptors allow only ``"structure"``.
    target
        ``"structure"`` or ``"atom"``.
    n_jobs, progress
        Passed to :class:`~ml4ms.descriptors.featurizer.Featurizer`.
    """
    from ..descriptors.featurizer import Featurizer

    if target not in ("structure", "atom"):
        raise ConfigError(f"target must be 'structure' or 'atom', got {target!r}")
    images = list(images)
    if not images:
        raise DataError("no structures to map", field="structures")
    if target == "atom" and not descriptor.per_atom:
        raise ConfigError(f"{type(descriptor).__name__} describes whole structures; a per-atom map "
                          "(target='atom') needs a per-atom descriptor such as SOAP or ACSF")
    pool = "none" if target == "atom" else "mean"
    features = Featurizer(descriptor, pool=pool, n_jobs=n_jobs, progress=progress).fit(images).transform(images)
    n_atoms = np.array([len(a) for a in images])
    if target == "atom":
        structure = np.repeat(np.arange(len(images)), n_atoms)
        center = np.arange(n_atoms.sum()) - np.repeat(np.cumsum(n_atoms) - n_atoms, n_atoms)
    else:
        structure = np.arange(len(images))
        center = np.full(len(images), -1)
    return MapFeatures(np.asarray(features, dtype=np.float64), target, structure, center)


def make_map(method: str, n_components: int = 2, **options):
    """A map estimator by name: ``"pca"`` (:class:`PCAMap`), ``"kpca"``
    (:class:`SOAPKernelPCA`) or ``"autoencoder"``
    (:class:`~ml4ms.analysis.autoencoder.AutoencoderMap`), with its keyword options."""
    name = str(method).lower()
    if name == "pca":
        cls = PCAMap
    elif name == "kpca":
        cls = SOAPKernelPCA
    elif name == "autoencoder":
        from .autoencoder import AutoencoderMap as cls
    else:
        raise ConfigError(f"map method must be one of {', '.join(MAP_METHODS)}; got {method!r}")
    try:
        return cls(n_components=n_components, **options)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


# ----------------------------------------------------------------------------- plots


def plot_map(
    coordinates,
    path,
    *,
    color=None,
    color_label: str = "",
    labels: Sequence[str] = ("1", "2"),
    title: str = "",
    marker_size: float | None = None,
):
    """A scatter plot of a 2-D map, saved to ``path`` (PNG, SVG, PDF by suffix), atomically.

    Parameters
    ----------
    coordinates
        Shape (n_points, 2) (further columns are ignored; one column is plotted against
        the point index).
    path
        Output file.
    color
        One value per point: numbers (a colour bar) or strings (one colour per category,
        with a legend); None for one colour.
    color_label
        Name of the colouring property, for the colour bar or the legend title.
    labels
        Axis names.
    title
        Plot title.
    marker_size
        Marker area in points²; by default smaller for larger maps.
    """
    from ..report import _pyplot, _save_figure

    xy = np.asarray(coordinates, dtype=float)
    if xy.ndim != 2 or xy.shape[0] == 0:
        raise DataError(f"expected coordinates of shape (n_points, k), got {xy.shape}", field="coordinates")
    if xy.shape[1] == 1:
        xy = np.column_stack([np.arange(len(xy)), xy[:, 0]])
        labels = ("index", labels[0])
    n = len(xy)
    size = marker_size if marker_size is not None else float(np.clip(3000.0 / n, 3.0, 40.0))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    if color is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.8, lw=0)
    else:
        values = np.asarray(color)
        if len(values) != n:
            raise DataError(f"{len(values)} colour values for {n} points", field=color_label or "color")
        if values.dtype.kind in "USO":
            categories = sorted(set(values.tolist()), key=str)
            cmap = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")
            counts = {c: int(np.sum(values == c)) for c in categories}
            # Colours follow the sorted names; the largest categories are drawn first, under the rest.
            for k, category in sorted(enumerate(categories), key=lambda kc: -counts[kc[1]]):
                mask = values == category
                ax.scatter(xy[mask, 0], xy[mask, 1], s=size, alpha=0.8, lw=0, color=cmap(k % cmap.N),
                           label=f"{category} ({int(mask.sum())})")
            ax.legend(title=color_label or None, fontsize="small", markerscale=max(1.0, 20.0 / size) ** 0.5,
                      loc="best", framealpha=0.8)
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], c=values.astype(float), s=size, alpha=0.85, lw=0,
                                cmap="viridis")
            fig.colorbar(points, ax=ax, label=color_label)
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)
