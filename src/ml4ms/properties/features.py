"""Features of materials for the tabular route: composition and, given a structure, geometry.

:class:`MaterialFeaturizer` is a scikit-learn transformer from compositions (formula
strings, mappings or ``ase.Atoms``) or structures (``ase.Atoms``) to a feature matrix
with one labelled column per feature. Its blocks:

``magpie``
    Fraction-weighted statistics of elemental properties
    (:class:`~ml4ms.descriptors.CompositionFeaturizer`; Ward et al. 2016).
``fractions``
    The atomic fraction of every element seen in the training data (matminer's
    ``ElementFraction``, restricted to the elements that occur): trees use it to single
    out chemistries that no elemental average describes.
``stoichiometry``
    The number of elements and the p-norms of the fractions, p = 2, 3, 5, 7, 10
    (matminer's ``Stoichiometry``).
``valence``
    Fractions of the valence electrons in s, p, d and f shells (matminer's
    ``ValenceOrbital``).
``structure`` (structures only)
    Volume per atom (Å³), density (g/cm³), packing fraction (covalent spheres), nearest-
    neighbour distance statistics (Å) and coordination numbers within 1.2 × the
    covalent-radius sum, and the space-group number and crystal system (spglib).
``local_difference`` (structures only)
    Ward et al.'s local property difference (Phys. Rev. B 96, 024104 (2017)): for each
    atom, the mean absolute difference of each elemental property between it and its
    first-shell neighbours (within 1.25 × its nearest-neighbour distance); then the mean,
    mean deviation, minimum, maximum and range over the atoms. Unlike the composition,
    it tells which element sits next to which (A versus B site of a perovskite).
``soap`` (structures only)
    The structure-averaged SOAP power spectrum (``average="inner"``) with the options
    given, its species taken from the training data; by default species-agnostic
    (compression ``"mu2"``), so its width does not grow with the number of elements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, chemical_symbols, covalent_radii
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..descriptors.composition import CompositionFeaturizer, composition_of
from ..descriptors.elements import element_table
from ..errors import ConfigError, DataError

BLOCKS = ("magpie", "fractions", "stoichiometry", "valence", "structure", "local_difference", "soap")
_LPD_STATS = ("mean", "avg_dev", "minimum", "maximum", "range")
_P_NORMS = (2, 3, 5, 7, 10)
_CRYSTAL_SYSTEMS = ((2, 1), (15, 2), (74, 3), (142, 4), (167, 5), (194, 6), (230, 7))
_STRUCTURE_LABELS = (
    "volume per atom", "density", "packing fraction",
    "nn distance min", "nn distance mean", "nn distance max", "nn distance std",
    "coordination mean", "coordination min", "coordination max",
    "space group number", "crystal system",
)


def fraction_matrix(compositions: Sequence[Mapping[int, float]], n_rows: int = 119) -> np.ndarray:
    """(n, n_rows) atomic fractions by atomic number."""
    out = np.zeros((len(compositions), n_rows))
    for i, comp in enumerate(compositions):
        total = sum(comp.values())
        for z, amount in comp.items():
            out[i, z] = amount / total
    return out


def stoichiometry_features(fractions: np.ndarray) -> np.ndarray:
    """(n, 1 + len(p-norms)): number of elements and p-norms of the fractions."""
    norms = [np.count_nonzero(fractions, axis=1).astype(float)]
    norms += [np.sum(fractions**p, axis=1) ** (1.0 / p) for p in _P_NORMS]
    return np.stack(norms, axis=1)


def valence_features(fractions: np.ndarray) -> np.ndarray:
    """(n, 4): fraction of the average valence electrons in s, p, d and f shells."""
    table = element_table(["NsValence", "NpValence", "NdValence", "NfValence"])
    table = np.nan_to_num(np.asarray(table, float)[: fractions.shape[1]])
    shells = fractions @ table
    total = shells.sum(axis=1, keepdims=True)
    return np.divide(shells, total, out=np.zeros_like(shells), where=total > 0)


def structure_features(atoms: Atoms, *, index: int | None = None) -> np.ndarray:
    """Geometric features of one structure, in the order of ``_STRUCTURE_LABELS``.

    Raises
    ------
    DataError
        The structure has no atoms, no volume (a periodic structure needs three cell
        vectors), or overlapping atoms (two atoms closer than 0.1 Å).
    """
    from ..data.neighbors import neighbor_list

    if len(atoms) == 0:
        raise DataError("the structure has no atoms", index=index, field="numbers")
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise DataError("structure features need a periodic cell with three lattice vectors",
                        index=index, field="cell")
    volume = abs(atoms.get_volume())
    numbers = atoms.numbers
    radii = covalent_radii[numbers]
    mass = atomic_masses[numbers].sum()
    cutoff = 2.5 * radii.max() + 0.5
    pairs = neighbor_list(atoms.positions, np.asarray(atoms.cell), atoms.pbc, cutoff, sort=False)
    i, j = pairs.i, pairs.j
    d = np.linalg.norm(pairs.vectors(atoms.positions, atoms.cell), axis=1)
    if len(d) and d.min() < 0.1:
        raise DataError(f"two atoms are {d.min():.3f} Å apart: overlapping atoms",
                        index=index, field="positions")
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, i, d)
    bonded = d <= 1.2 * (radii[i] + radii[j])
    coordination = np.bincount(i[bonded], minlength=len(atoms)).astype(float)
    nearest = np.where(np.isfinite(nearest), nearest, cutoff)
    spacegroup = _spacegroup(atoms)
    system = next(s for top, s in _CRYSTAL_SYSTEMS if spacegroup <= top) if spacegroup > 0 else 0
    return np.array([
        volume / len(atoms),
        mass / volume * 1.66053906660,  # Da/Å³ -> g/cm³
        np.sum(4.0 / 3.0 * np.pi * radii**3) / volume,
        nearest.min(), nearest.mean(), nearest.max(), nearest.std(),
        coordination.mean(), coordination.min(), coordination.max(),
        float(spacegroup), float(system),
    ])


def local_difference_features(atoms: Atoms, table: np.ndarray) -> np.ndarray:
    """Ward's local property difference statistics of one structure, (5 P,) for the
    property ``table`` (119, P): statistic-major within each property, as ``magpie``."""
    from ..data.neighbors import neighbor_list

    numbers = atoms.numbers
    cutoff = 2.5 * covalent_radii[numbers].max() + 0.5
    pairs = neighbor_list(atoms.positions, np.asarray(atoms.cell), atoms.pbc, cutoff, sort=False)
    d = np.linalg.norm(pairs.vectors(atoms.positions, atoms.cell), axis=1)
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, pairs.i, d)
    shell = d <= 1.25 * nearest[pairs.i]
    i, j = pairs.i[shell], pairs.j[shell]
    values = table[numbers]                                     # (N, P)
    diff = np.abs(values[i] - values[j])                         # (pairs, P)
    total = np.zeros_like(values)
    np.add.at(total, i, diff)
    count = np.bincount(i, minlength=len(atoms))[:, None]
    local = np.divide(total, count, out=np.zeros_like(total), where=count > 0)   # (N, P)
    mean = local.mean(0)
    stats = np.stack([mean, np.abs(local - mean).mean(0), local.min(0), local.max(0),
                      local.max(0) - local.min(0)], axis=1)    # (P, 5)
    return stats.reshape(-1)


def _spacegroup(atoms: Atoms, symprec: float = 0.1) -> int:
    import warnings

    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():  # spglib's notice about its error-handling switch
        warnings.simplefilter("ignore", DeprecationWarning)
        data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    return int(data.number) if data is not None else 0


class MaterialFeaturizer(TransformerMixin, BaseEstimator):
    """Compositions or structures -> a labelled feature matrix (see the module docstring).

    Parameters
    ----------
    blocks
        Which feature blocks to compute, any of ``"magpie"``, ``"fractions"``,
        ``"stoichiometry"``, ``"valence"``, ``"structure"`` and ``"soap"``; the last two
        need ``ase.Atoms`` inputs.
    properties
        Elemental properties of the ``magpie`` block: ``"magpie"``, ``"all"`` or a list.
    soap
        Options of :class:`~ml4ms.descriptors.SOAP` for the ``soap`` block
        (default ``r_cut=5, n_max=4, l_max=4, compression={"mode": "mu2"}``); ``species`` and ``periodic`` are set
        from the data.

    Attributes
    ----------
    elements_ : list of int
        Atomic numbers seen by :meth:`fit` (the ``fractions`` columns).
    feature_names_out_ : ndarray of str
        One label per column.
    """

    def __init__(
        self,
        blocks: Sequence[str] = ("magpie", "fractions", "stoichiometry", "valence"),
        properties: str | Sequence[str] = "all",
        soap: Mapping[str, Any] | None = None,
    ) -> None:
        self.blocks = blocks
        self.properties = properties
        self.soap = soap

    def _check(self) -> list[str]:
        blocks = [self.blocks] if isinstance(self.blocks, str) else list(self.blocks)
        unknown = [b for b in blocks if b not in BLOCKS]
        if unknown or not blocks:
            raise ConfigError(f"features.blocks: unknown block(s) {unknown}; choose from {', '.join(BLOCKS)}")
        return blocks

    @property
    def needs_structures(self) -> bool:
        return bool({"structure", "local_difference", "soap"} & set(self._check()))

    def _compositions(self, X: Sequence) -> list[dict[int, float]]:
        return [composition_of(item, index=k) for k, item in enumerate(X)]

    def fit(self, X: Sequence, y=None) -> MaterialFeaturizer:
        """Record the elements (and, for SOAP, the species) of the training inputs."""
        blocks = self._check()
        X = _as_inputs(X)
        if self.needs_structures:
            _require_structures(X, blocks)
        comps = self._compositions(X)
        return self.fit_elements(sorted({z for c in comps for z in c}))

    def fit_elements(self, elements: Sequence[int]) -> MaterialFeaturizer:
        """Fit from the training elements alone (atomic numbers): everything :meth:`fit`
        learns from the data. Used to rebuild a featurizer from a model file."""
        blocks = self._check()
        self.elements_ = sorted(int(z) for z in elements)
        self.magpie_ = CompositionFeaturizer(properties=self.properties, progress=False).fit()
        labels: list[str] = []
        for block in blocks:
            if block == "magpie":
                labels += list(self.magpie_.get_feature_names_out())
            elif block == "fractions":
                labels += [f"fraction {chemical_symbols[z]}" for z in self.elements_]
            elif block == "stoichiometry":
                labels += ["n elements"] + [f"{p}-norm" for p in _P_NORMS]
            elif block == "valence":
                labels += [f"frac {s} valence electrons" for s in "spdf"]
            elif block == "structure":
                labels += list(_STRUCTURE_LABELS)
            elif block == "local_difference":
                labels += [f"local difference {stat} {p}" for p in self.magpie_.descriptor_.property_names
                           for stat in _LPD_STATS]
            elif block == "soap":
                self.soap_ = self._soap_descriptor()
                labels += [f"soap {name}" for name in self.soap_.feature_labels()]
        self.feature_names_out_ = np.asarray(labels, dtype=object)
        self.n_features_out_ = len(labels)
        return self

    def _soap_descriptor(self):
        from ..descriptors import SOAP

        # mu2 (one density for all species) keeps the width independent of the number of
        # elements: species-resolved SOAP of a 50-element dataset has ~10^4-10^5 columns.
        options = {"r_cut": 5.0, "n_max": 4, "l_max": 4, "compression": {"mode": "mu2"},
                   **dict(self.soap or {})}
        options.update(species=[chemical_symbols[z] for z in self.elements_], periodic=True,
                       average="inner")
        return SOAP(**options)

    def transform(self, X: Sequence) -> np.ndarray:
        """(n, n_features) float64 features of ``X``.

        Raises
        ------
        DataError
            An input cannot be read (the row and the text are named), or its elements
            were not in the training data of a ``soap`` block.
        """
        check_is_fitted(self, "feature_names_out_")
        blocks = self._check()
        X = _as_inputs(X)
        if self.needs_structures:
            _require_structures(X, blocks)
        comps = self._compositions(X)
        fractions = fraction_matrix(comps)
        parts = []
        for block in blocks:
            if block == "magpie":
                parts.append(self.magpie_.transform(comps))
            elif block == "fractions":
                parts.append(fractions[:, self.elements_])
            elif block == "stoichiometry":
                parts.append(stoichiometry_features(fractions))
            elif block == "valence":
                parts.append(valence_features(fractions))
            elif block == "structure":
                parts.append(np.array([structure_features(a, index=k) for k, a in enumerate(X)])
                             .reshape(len(X), len(_STRUCTURE_LABELS)))
            elif block == "local_difference":
                table = self.magpie_.descriptor_.table.cpu().numpy()
                table = np.nan_to_num(table)  # only row 0 (no element) is NaN after imputation
                parts.append(np.array([local_difference_features(a, table) for a in X])
                             .reshape(len(X), -1))
            elif block == "soap":
                known = set(self.elements_)
                for k, c in enumerate(comps):
                    if not set(c) <= known:
                        new = sorted(chemical_symbols[z] for z in set(c) - known)
                        raise DataError(f"elements {new} were not in the training data of the SOAP block",
                                        index=k, field="numbers")
                parts.append(np.asarray(self.soap_.create(list(X)), float).reshape(len(X), -1))
        return np.hstack(parts) if parts else np.zeros((len(X), 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def _as_inputs(X) -> list:
    if isinstance(X, (str, Mapping, Atoms)):
        raise TypeError(f"expected a list of inputs, got a single {type(X).__name__}; wrap it in a list")
    if hasattr(X, "iloc"):
        X = X.iloc[:, 0] if getattr(X, "ndim", 1) == 2 else X
    if isinstance(X, np.ndarray) and X.ndim == 2:
        X = X[:, 0]
    return list(X)


def _require_structures(X: list, blocks: list[str]) -> None:
    for k, item in enumerate(X):
        if not isinstance(item, Atoms):
            wanted = [b for b in blocks if b in ("structure", "local_difference", "soap")]
            raise DataError(f"the {'/'.join(wanted)} features need structures (ase.Atoms), "
                            f"got {type(item).__name__}", index=k, field="structure")
