"""The loss of gradient-trained potentials: energies, forces and stresses, each divided by
its expected error.

The weights are the same sigmas the closed-form fits use (GAP's ``sigma_E``, ``sigma_F``,
``sigma_S``), so one configuration means the same thing for a sparse GP and a network::

    L = mean_k ((E_k - E_k^ref) / n_k / sigma_E)^2        energies per atom, eV/atom
      + mean_ia ((F_ia - F_ia^ref) / sigma_F)^2           force components, eV/Å
      + mean_kab ((S_kab - S_kab^ref) / sigma_S)^2        stress components, eV/Å³

Each mean runs over the labelled entries of the batch only: a missing label is NaN in
the :class:`~ml4ms.data.AtomicGraph` and simply does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.graph import AtomicGraph
from ..errors import ConfigError


@dataclass(frozen=True)
class LossWeights:
    """Expected errors that weight each quantity of the loss.

    Attributes
    ----------
    energy_sigma
        eV/atom.
    force_sigma
        eV/Å; None leaves forces out of the loss.
    stress_sigma
        eV/Å³; None leaves stresses out of the loss.
    """

    energy_sigma: float = 0.002
    force_sigma: float | None = 0.05
    stress_sigma: float | None = None

    def __post_init__(self) -> None:
        for name in ("energy_sigma", "force_sigma", "stress_sigma"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value}")

    @property
    def needs_forces(self) -> bool:
        return self.force_sigma is not None

    @property
    def needs_stress(self) -> bool:
        return self.stress_sigma is not None


def _masked_mean_square(prediction: torch.Tensor, label: torch.Tensor, sigma: float) -> torch.Tensor | None:
    """Mean of ``((prediction - label) / sigma)²`` over the labelled entries; None when there
    are none. The mask is the label's: a non-finite *prediction* must poison the loss, so
    that the trainer stops instead of silently skipping it."""
    labelled = torch.isfinite(label)
    if not bool(labelled.any()):
        return None
    return ((prediction[labelled] - label[labelled]) / sigma).square().mean()


def weighted_loss(
    outputs: dict[str, torch.Tensor], graph: AtomicGraph, weights: LossWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss of one batch, and its parts (as floats, for logging).

    Parameters
    ----------
    outputs
        The model's ``forward`` result: ``"energy"`` (B,) eV, and ``"forces"`` (N, 3)
        eV/Å and ``"stress"`` (B, 3, 3) eV/Å³ when the weights need them.
    graph
        The batch, with its labels.
    weights
        Expected errors.

    Returns
    -------
    loss
        Scalar tensor (dimensionless).
    parts
        ``{"energy": ..., "forces": ..., "stress": ...}``: each weighted mean square that
        contributed.
    """
    terms: dict[str, torch.Tensor] = {}
    if graph.energy is not None:
        n_atoms = graph.n_atoms.to(graph.energy.dtype)
        term = _masked_mean_square(outputs["energy"] / n_atoms, graph.energy / n_atoms, weights.energy_sigma)
        if term is not None:
            terms["energy"] = term
    if weights.needs_forces and graph.forces is not None:
        term = _masked_mean_square(outputs["forces"], graph.forces, weights.force_sigma)
        if term is not None:
            terms["forces"] = term
    if weights.needs_stress and graph.stress is not None and "stress" in outputs:
        term = _masked_mean_square(outputs["stress"], graph.stress, weights.stress_sigma)
        if term is not None:
            terms["stress"] = term
    if not terms:
        raise ValueError("the batch has no label the loss weights: energies, forces or stresses")
    loss = sum(terms.values())
    return loss, {name: float(value.detach()) for name, value in terms.items()}
