"""AtomsDataset: labelled structures with splits, statistics, reference energies and batching."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from ase.units import GPa

from .. import keys
from ..errors import DataError
from .graph import AtomicGraph
from .neighbors import NeighborList, neighbor_list


@dataclass
class DatasetStatistics:
    """Summary of a dataset, in ASE units unless a name says otherwise."""

    n_structures: int
    n_atoms: int
    elements: dict[str, int]
    atoms_per_structure: dict[str, float]
    coverage: dict[str, float]
    energy_per_atom: dict[str, float] | None
    forces: dict[str, float] | None
    stress_gpa: dict[str, float] | None
    reference_energies: dict[str, float] | None
    groups: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(x: np.ndarray) -> dict[str, float]:
    return {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std())}


class AtomsDataset(Sequence):
    """A list of labelled :class:`ase.Atoms` that knows how to split, describe and batch itself.

    Parameters
    ----------
    images
        Structures with labels at ``info["energy"]`` (eV), ``arrays["forces"]`` (eV/Å) and
        ``info["stress"]`` (Voigt-6, eV/Å³), as :func:`ml4ms.data.read` returns them.
    source
        Where the structures came from (for messages).
    require
        Labels every structure must have, e.g. ``("energy", "forces")``; a structure
        without one raises :class:`~ml4ms.errors.DataError` naming it.

    Examples
    --------
    >>> from ml4ms.data import AtomsDataset                       # doctest: +SKIP
    >>> data = AtomsDataset.from_dataset("mlearn", element="Cu", split="train")
    >>> train, valid = data.split([0.9, 0.1], seed=0)
    >>> for graph in train.graphs(cutoff=5.0, batch_size=8):
    ...     ...
    """

    def __init__(self, images: Sequence[Atoms], *, source: str | None = None, require: Sequence[str] = ()):
        self.images = list(images)
        self.source = source
        for label in require:
            where = "arrays" if label == keys.FORCES else "info"
            missing = [k for k, a in enumerate(self.images) if label not in getattr(a, where)]
            if missing:
                raise DataError(f"no {label} label ({len(missing)} structures lack it)",
                                source=source, index=missing[0], field=label)
        self._neighbor_cache: dict[float, list[NeighborList]] = {}

    # ------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | os.PathLike, *, require: Sequence[str] = (), **read_options) -> AtomsDataset:
        """Read a file (any format :func:`ml4ms.data.read` takes)."""
        from .io import read

        return cls(read(path, require=tuple(require), **read_options), source=str(path), require=require)

    @classmethod
    def from_dataset(cls, name: str, *, require: Sequence[str] = (), **options) -> AtomsDataset:
        """Load a public dataset through :func:`ml4ms.data.datasets.load`."""
        from .datasets import load

        description = ":".join([name, *map(str, options.values())])
        return cls(load(name, **options), source=description, require=require)

    # ------------------------------------------------------------ sequence protocol
    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.images[index]
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.subset(index)

    def subset(self, indices: Sequence[int] | np.ndarray) -> AtomsDataset:
        """A dataset of the given structures (shared, not copied); neighbour lists come along."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = AtomsDataset([self.images[k] for k in indices], source=self.source)
        for cutoff, lists in self._neighbor_cache.items():
            out._neighbor_cache[cutoff] = [lists[k] for k in indices]
        return out

    # ------------------------------------------------------------ splits
    def split(
        self,
        fractions: Sequence[float],
        *,
        seed: int = 0,
        by: str | None = None,
        stratify: str | None = None,
    ) -> tuple[AtomsDataset, ...]:
        """Random split into parts of the given fractions (which must sum to 1).

        Parameters
        ----------
        fractions
            Fraction of structures (or, with ``by``, of groups) in each part.
        seed
            Seed of the shuffle: the same seed gives the same split.
        by
            An ``info`` key (e.g. ``"config_type"``) whose values are kept together:
            all structures of one group land in the same part, so that correlated
            structures (frames of one MD run) do not straddle train and test.
        stratify
            An ``info`` key (e.g. ``"config_type"``) whose groups are each split in the
            given fractions (rounded per group), so that a validation part holds every
            kind of structure in its share -- a few surfaces too, not only the most
            common kind. Structures without the key form one group; with one group the
            split is the plain random one.
        """
        fractions = np.asarray(fractions, dtype=float)
        if (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-9:
            raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions.tolist()}")
        if by is not None and stratify is not None:
            raise ValueError("split: give either by= (keep groups together) or stratify= (split each group)")
        rng = np.random.default_rng(seed)
        if stratify is not None:
            strata: dict[str, list[int]] = {}
            for k, atoms in enumerate(self.images):
                strata.setdefault(str(atoms.info.get(stratify)), []).append(k)
            chosen: list[list[int]] = [[] for _ in fractions]
            for name in sorted(strata):
                members = np.asarray(strata[name])
                order = members[rng.permutation(len(members))]
                bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
                for part, indices in zip(chosen, np.split(order, bounds[:-1]), strict=True):
                    part.extend(indices.tolist())
            return tuple(self.subset(sorted(part)) for part in chosen)
        if by is None:
            units = [[k] for k in range(len(self))]
        else:
            groups: dict[Any, list[int]] = {}
            for k, atoms in enumerate(self.images):
                groups.setdefault(atoms.info.get(by), []).append(k)
            units = list(groups.values())
        order = rng.permutation(len(units))
        bounds = np.round(np.cumsum(fractions) * len(units)).astype(int)
        parts = np.split(order, bounds[:-1])
        return tuple(self.subset(sorted(k for u in part for k in units[u])) for part in parts)

    def split_by(self, key: str) -> dict[Any, AtomsDataset]:
        """Parts of the dataset keyed by the value of ``info[key]`` (e.g. ``"tag"``)."""
        groups: dict[Any, list[int]] = {}
        for k, atoms in enumerate(self.images):
            groups.setdefault(atoms.info.get(key), []).append(k)
        return {value: self.subset(idx) for value, idx in groups.items()}

    # ------------------------------------------------------------ statistics
    def composition_matrix(self) -> tuple[np.ndarray, list[int]]:
        """Counts of each element per structure, shape (n_structures, n_elements), and the elements' Z."""
        numbers = np.concatenate([a.numbers for a in self.images]) if self.images else np.zeros(0, int)
        species, column = np.unique(numbers, return_inverse=True)
        counts = np.zeros((len(self), len(species)))
        structure = np.repeat(np.arange(len(self)), [len(a) for a in self.images])
        np.add.at(counts, (structure, column), 1)
        return counts, species.tolist()

    def energies(self) -> np.ndarray:
        """Total energies, shape (n_structures,), eV; NaN where missing."""
        return np.array([float(a.info.get(keys.ENERGY, np.nan)) for a in self.images])

    def fit_reference_energies(self) -> dict[str, float]:
        """Per-element reference energies E0 (eV) by least squares: ``E_k ≈ sum_Z n_kZ E0_Z``.

        With one element this is the mean energy per atom. The fit absorbs the
        cohesive energy into E0, so a model only learns the variation around it.

        Raises
        ------
        DataError
            When no structure has an energy.
        """
        counts, species = self.composition_matrix()
        energies = self.energies()
        labelled = np.isfinite(energies)
        if not labelled.any():
            raise DataError("no structure has an energy to fit reference energies to",
                            source=self.source, field=keys.ENERGY)
        e0, *_ = np.linalg.lstsq(counts[labelled], energies[labelled], rcond=None)
        return {chemical_symbols[z]: float(v) for z, v in zip(species, e0)}

    def statistics(self) -> DatasetStatistics:
        """Counts, elements, label coverage, label ranges and fitted reference energies."""
        n = len(self)
        natoms = np.array([len(a) for a in self.images])
        numbers = np.concatenate([a.numbers for a in self.images]) if n else np.zeros(0, int)
        elements = {chemical_symbols[z]: int(c) for z, c in sorted(Counter(numbers.tolist()).items())}
        has_e = np.array([keys.ENERGY in a.info for a in self.images], dtype=bool)
        has_f = np.array([keys.FORCES in a.arrays for a in self.images], dtype=bool)
        has_s = np.array([keys.STRESS in a.info for a in self.images], dtype=bool)
        coverage = {label: float(m.mean()) if n else 0.0
                    for label, m in ((keys.ENERGY, has_e), (keys.FORCES, has_f), (keys.STRESS, has_s))}
        energy = forces = stress = e0 = None
        if has_e.any():
            energy = _summary(self.energies()[has_e] / natoms[has_e])
            e0 = self.fit_reference_energies()
        if has_f.any():
            f = np.concatenate([self.images[k].arrays[keys.FORCES] for k in np.flatnonzero(has_f)])
            norms = np.linalg.norm(f, axis=1)
            forces = {"rms_component": float(np.sqrt((f**2).mean())), "max_norm": float(norms.max()),
                      "mean_norm": float(norms.mean())}
        if has_s.any():
            s = np.array([np.asarray(self.images[k].info[keys.STRESS]).reshape(-1)[:6]
                          for k in np.flatnonzero(has_s)]) / GPa
            stress = _summary(s)
        groups = dict(Counter(str(a.info[keys.GROUP]) for a in self.images if keys.GROUP in a.info))
        return DatasetStatistics(
            n_structures=n, n_atoms=int(natoms.sum()), elements=elements,
            atoms_per_structure=_summary(natoms) if n else {},
            coverage=coverage, energy_per_atom=energy, forces=forces, stress_gpa=stress,
            reference_energies=e0, groups=groups,
        )

    def hash(self) -> str:
        """``"sha256:<hex>"`` of structures and labels, to record what a model was trained on."""
        digest = hashlib.sha256()
        for atoms in self.images:
            for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc):
                digest.update(np.ascontiguousarray(array).tobytes())
            for label in (keys.ENERGY, keys.STRESS):
                if label in atoms.info:
                    digest.update(label.encode() + np.asarray(atoms.info[label], float).tobytes())
            if keys.FORCES in atoms.arrays:
                digest.update(b"forces" + np.ascontiguousarray(atoms.arrays[keys.FORCES], float).tobytes())
        return "sha256:" + digest.hexdigest()

    # ------------------------------------------------------------ batching
    def neighbor_lists(self, cutoff: float) -> list[NeighborList]:
        """Neighbour lists of every structure for ``cutoff`` (Å), computed once and cached."""
        cutoff = float(cutoff)
        if cutoff not in self._neighbor_cache:
            self._neighbor_cache[cutoff] = [
                neighbor_list(a.positions, a.cell.array, a.pbc, cutoff) for a in self.images
            ]
        return self._neighbor_cache[cutoff]

    def graphs(
        self,
        cutoff: float,
        *,
        batch_size: int = 8,
        shuffle: bool = False,
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Iterator[AtomicGraph]:
        """Iterate over the dataset in batches of ``batch_size`` structures as :class:`AtomicGraph`.

        Neighbour lists are built once per cutoff and reused across epochs.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        lists = self.neighbor_lists(cutoff)
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            yield AtomicGraph.from_atoms([self.images[k] for k in idx], cutoff, dtype=dtype,
                                         device=device, neighbor_lists=[lists[k] for k in idx])
