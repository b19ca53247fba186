"""Unweighted observation rows of a closed-form fit, kept to re-weight and re-solve cheaply.

Building the rows (descriptor Jacobians contracted with the feature map) is the costly
part of a closed-form fit; weighting them by sigmas and solving is cheap. Holding the
rows once lets a fit try many ``(energy_sigma, force_sigma, stress_sigma, alpha)``
combinations, and predict a validation set, by linear algebra alone
(:meth:`DescriptorPotential.fit <ml4ms.models.descriptor_potential.DescriptorPotential.fit>`
with ``search``).

Within one quantity and one structure group every row carries the same sigma, so the
rows of each such class can be folded once into a triangular factor
(:meth:`Observations.reduce`): a weighted solve then factorises a few (P+1)-row blocks
instead of all the observations, with the same result to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.graph import AtomicGraph
from ..keys import VOIGT_COLUMNS, VOIGT_ROWS
from .solve import triangular_factor

#: Quantities in the column order of the per-structure sigmas.
KINDS = ("energy", "forces", "stress")


@dataclass
class Observations:
    """Rows ``A`` and targets ``y`` (labels minus reference energies) by kind.

    Attributes
    ----------
    energy, forces, stress
        (n, P) rows of total energies, force components and Voigt stress components.
    energy_target, forces_target, stress_target
        (n,) labels, eV, eV/Å, eV/Å³ (energies without the reference energies).
    energy_structure, forces_structure, stress_structure
        (n,) index of the structure each row belongs to (for per-structure sigmas).
    n_atoms
        (n_structures,) atoms per structure.
    energy_extra_variance
        (n_energies,) variance of each energy not carried by the weights (a sparse GP's
        DTC term), eV², or zeros.
    """

    energy: list | np.ndarray = field(default_factory=list)
    energy_target: list | np.ndarray = field(default_factory=list)
    energy_structure: list | np.ndarray = field(default_factory=list)
    energy_extra_variance: list | np.ndarray = field(default_factory=list)
    forces: list | np.ndarray = field(default_factory=list)
    forces_target: list | np.ndarray = field(default_factory=list)
    forces_structure: list | np.ndarray = field(default_factory=list)
    stress: list | np.ndarray = field(default_factory=list)
    stress_target: list | np.ndarray = field(default_factory=list)
    stress_structure: list | np.ndarray = field(default_factory=list)
    n_atoms: list | np.ndarray = field(default_factory=list)

    def add(self, design: dict[str, torch.Tensor], graph: AtomicGraph, e0: torch.Tensor, first: int,
            extra_variance: torch.Tensor | None = None) -> None:
        """Append the rows of one batch whose first structure has index ``first``."""
        dtype = design["energy"].dtype
        n_struct = graph.n_structures
        index = torch.arange(first, first + n_struct)
        self.n_atoms.append(graph.n_atoms.cpu().numpy())
        if graph.energy is not None:
            reference = torch.zeros(n_struct, dtype=dtype).index_add(0, graph.batch, e0.to(dtype)[graph.numbers])
            has = torch.isfinite(graph.energy)
            self.energy.append(design["energy"][has].cpu().numpy())
            self.energy_target.append((graph.energy[has] - reference[has]).cpu().numpy())
            self.energy_structure.append(index[has].numpy())
            extra = torch.zeros(n_struct, dtype=dtype) if extra_variance is None else extra_variance
            self.energy_extra_variance.append(extra[has].cpu().numpy())
        if graph.forces is not None:
            has = torch.isfinite(graph.forces).all(1)
            f = design["forces"][has]
            self.forces.append(f.reshape(-1, f.shape[-1]).cpu().numpy())
            self.forces_target.append(graph.forces[has].reshape(-1).cpu().numpy())
            self.forces_structure.append(np.repeat((first + graph.batch[has]).numpy(), 3))
        if graph.stress is not None:
            has = torch.isfinite(graph.stress).all((1, 2)) & (graph.volumes() > 0)
            if bool(has.any()):
                voigt = design["stress"][has][:, VOIGT_ROWS, VOIGT_COLUMNS]
                self.stress.append(voigt.reshape(-1, voigt.shape[-1]).cpu().numpy())
                self.stress_target.append(graph.stress[has][:, VOIGT_ROWS, VOIGT_COLUMNS].reshape(-1).numpy())
                self.stress_structure.append(np.repeat(index[has].numpy(), 6))

    def finish(self, n_params: int) -> Observations:
        """Concatenate the appended blocks into arrays."""
        def cat(parts, width=None):
            if isinstance(parts, np.ndarray):
                return parts
            if parts:
                return np.concatenate(parts)
            return np.zeros((0, width)) if width is not None else np.zeros(0)

        return Observations(
            energy=cat(self.energy, n_params), energy_target=cat(self.energy_target),
            energy_structure=cat(self.energy_structure).astype(np.int64),
            energy_extra_variance=cat(self.energy_extra_variance),
            forces=cat(self.forces, n_params), forces_target=cat(self.forces_target),
            forces_structure=cat(self.forces_structure).astype(np.int64),
            stress=cat(self.stress, n_params), stress_target=cat(self.stress_target),
            stress_structure=cat(self.stress_structure).astype(np.int64),
            n_atoms=cat(self.n_atoms).astype(np.int64),
        )

    def reduce(self, labels: np.ndarray | list[str]) -> ReducedObservations:
        """Fold the rows of each (quantity, structure class) into a triangular factor.

        Parameters
        ----------
        labels
            (n_structures,) class of each structure (its group, or one label for all);
            the rows of one class must share their sigmas in every later solve.

        Returns
        -------
        ReducedObservations
            Per class, ``R`` (at most (P+1, P+1)) of the augmented rows ``[A | y]``,
            energies already divided by their number of atoms, not by any sigma.
        """
        labels = np.asarray(labels, dtype=str)
        if labels.shape != (len(self.n_atoms),):
            raise ValueError(f"labels must have one entry per structure ({len(self.n_atoms)}), got {labels.shape}")
        factors: dict[tuple[str, str], np.ndarray] = {}
        counts: dict[tuple[str, str], int] = {}
        per_atom = 1.0 / self.n_atoms[self.energy_structure] if len(self.energy) else np.zeros(0)
        parts = {"energy": (self.energy, self.energy_target, self.energy_structure, per_atom),
                 "forces": (self.forces, self.forces_target, self.forces_structure, None),
                 "stress": (self.stress, self.stress_target, self.stress_structure, None)}
        for kind, (rows, targets, structure, scale) in parts.items():
            if not len(rows):
                continue
            for label in np.unique(labels[structure]):
                members = np.flatnonzero(labels[structure] == label)
                augmented = np.hstack([rows[members], targets[members, None]])
                if scale is not None:
                    augmented *= scale[members, None]
                factors[(kind, str(label))] = triangular_factor(augmented)
                counts[(kind, str(label))] = len(members)
        return ReducedObservations(factors, counts)

    def errors(self, weights: np.ndarray) -> dict[str, float]:
        """MAE of energies (meV/atom), forces (eV/Å) and stresses (eV/Å³) for ``weights``."""
        n = self.n_atoms[self.energy_structure]
        out = {}
        if len(self.energy):
            out["energy_mae"] = float(np.abs((self.energy @ weights - self.energy_target) / n).mean() * 1000)
        if len(self.forces):
            out["forces_mae"] = float(np.abs(self.forces @ weights - self.forces_target).mean())
        if len(self.stress):
            out["stress_mae"] = float(np.abs(self.stress @ weights - self.stress_target).mean())
        return out


@dataclass
class ReducedObservations:
    """Observation rows folded per (quantity, structure class): see :meth:`Observations.reduce`.

    Attributes
    ----------
    factors
        ``(kind, label) -> R``, upper triangular with ``R^T R = [A | y]^T [A | y]`` over the
        unweighted rows of that class (energies per atom).
    counts
        ``(kind, label) -> number of rows`` folded into each factor.
    """

    factors: dict[tuple[str, str], np.ndarray]
    counts: dict[tuple[str, str], int]

    def weighted(self, sigmas: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """``(rows, targets, n_rows)`` blocks to add to a least-squares solver.

        ``sigmas`` maps each label to its (3,) sigmas of energy per atom, force component
        and stress component; an infinite sigma leaves that quantity out.
        """
        blocks = []
        for (kind, label), r in self.factors.items():
            sigma = float(sigmas[label][KINDS.index(kind)])
            if np.isfinite(sigma):
                blocks.append((r[:, :-1] / sigma, r[:, -1] / sigma, self.counts[(kind, label)]))
        return blocks

    def merged(self, other: ReducedObservations) -> ReducedObservations:
        """The factors of these rows and ``other``'s together."""
        factors, counts = dict(self.factors), dict(self.counts)
        for key, r in other.factors.items():
            factors[key] = triangular_factor(np.vstack([factors[key], r])) if key in factors else r
            counts[key] = counts.get(key, 0) + other.counts[key]
        return ReducedObservations(factors, counts)
