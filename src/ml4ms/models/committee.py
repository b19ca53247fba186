"""Committees: independently trained models whose disagreement is the uncertainty.

A committee of ``M`` potentials predicts their mean and, as the error bar, their spread
(Behler's query-by-committee; the deep ensembles of Lakshminarayanan et al., 2017)::

    E      = (1/M) sum_m E^(m)
    C_ab   = s^2 / (M - 1) sum_m (E_a^(m) - E_a)(E_b^(m) - E_b)      (eV², any structures a, b)
    sigma  = sqrt(C_aa)

The spread of a handful of networks is a biased estimate of the error; one factor ``s``
fitted on validation data (the maximum-likelihood scale, :meth:`calibrate_uncertainty`)
removes most of the bias, and the test-set calibration in ``ml4ms eval`` says how well.
Because every member predicts every structure, the covariance between structures comes
for free, so a barrier ``E_saddle - E_initial`` gets the error bar of the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.graph import AtomicGraph
from .base import AtomisticModel, model_class


class Committee(AtomisticModel):
    """The mean of several potentials, with their spread as the predicted uncertainty.

    Parameters
    ----------
    members
        The members' descriptions, ``[{"class": "EquivariantMPNN", "config": {...}}, ...]``
        (what :attr:`AtomisticModel.config` gives): a committee is rebuilt from its file
        like any model. Use :meth:`from_models` to build one from trained models.
    species
        Elements of the committee; every member must know them.

    Notes
    -----
    Each member keeps its own reference energies; the committee's are their mean (a lone
    atom has energy E0, as for every model). The members must be at least two for an
    uncertainty.
    """

    supports_uncertainty = True

    def __init__(self, members: Sequence[Mapping[str, Any]], species: Sequence[int | str] | None = None) -> None:
        if len(members) < 1:
            raise ValueError("a committee needs at least one member")
        built = [model_class(m["class"])(**m["config"]) for m in members]
        cutoff = max(m.cutoff for m in built)
        super().__init__(cutoff=cutoff, species=species if species is not None else built[0].species)
        for k, member in enumerate(built):
            if member.species is not None and self.species is not None and \
                    not set(self.species) <= set(member.species):
                raise ValueError(f"member {k} does not know every element of the committee")
        self.members = nn.ModuleList(built)
        self.register_buffer("uncertainty_scale", torch.ones((), dtype=torch.float64))

    @classmethod
    def from_models(cls, models: Sequence[AtomisticModel]) -> Committee:
        """A committee holding (copies of the weights of) trained ``models``."""
        description = [{"class": type(m).__name__, "config": m.config} for m in models]
        committee = cls(description, species=models[0].species)
        for target, source in zip(committee.members, models):
            target.load_state_dict(source.state_dict())
        # The committee's E0 is the members' mean, so that a lone atom still has energy E0
        # when the members pin it there.
        with torch.no_grad():
            committee.reference_energies.copy_(torch.stack(
                [m.reference_energies.detach().cpu().to(torch.float64) for m in models]).mean(dim=0))
        return committee.to(dtype=models[0].reference_energies.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"members": [{"class": type(m).__name__, "config": m.config} for m in self.members]}

    @property
    def anchor_isolated_atom(self) -> bool:
        """Whether a lone atom has exactly E0: when every member pins it there."""
        return all(getattr(m, "anchor_isolated_atom", True) for m in self.members)

    @property
    def config(self) -> dict[str, Any]:
        return {**self.get_config(), "species": self.species}

    # ------------------------------------------------------------------ evaluation
    def member_atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        """Each member's atomic energies, reference energies included, shape (M, N), eV."""
        out = []
        for member in self.members:
            e = member.atomic_energies(graph)
            out.append(e + member.reference_energies.to(e.dtype)[graph.numbers])
        return torch.stack(out)

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        mean = self.member_atomic_energies(graph).mean(dim=0)
        return mean - self.reference_energies.to(mean.dtype)[graph.numbers]

    def member_energies(self, graph: AtomicGraph, atomic: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's total energies, shape (M, B), eV (from ``atomic``, (M, N), if given)."""
        atomic = self.member_atomic_energies(graph) if atomic is None else atomic
        energy = torch.zeros(len(self.members), graph.n_structures, dtype=atomic.dtype, device=atomic.device)
        return energy.index_add(1, graph.batch, atomic)

    def _spread(self, values: torch.Tensor) -> torch.Tensor:
        if len(self.members) < 2:
            raise ValueError("a committee of one model has no spread; train at least two members")
        return values.std(dim=0, unbiased=True) * self.uncertainty_scale.to(values.dtype)

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        """Scaled spread of the members' energies: ``"energy"`` (B,) and ``"energies"`` (N,), eV."""
        atomic = self.member_atomic_energies(graph)
        return {"energy": self._spread(self.member_energies(graph, atomic)), "energies": self._spread(atomic)}

    def energy_covariance(self, graph: AtomicGraph) -> torch.Tensor:
        """Scaled sample covariance of the members' total energies, (B, B), eV²."""
        if len(self.members) < 2:
            raise ValueError("a committee of one model has no spread; train at least two members")
        energy = self.member_energies(graph)
        centred = energy - energy.mean(dim=0, keepdim=True)
        covariance = centred.T @ centred / (len(self.members) - 1)
        return covariance * self.uncertainty_scale.to(covariance.dtype) ** 2
