"""Analytic pair potentials as :class:`AtomisticModel`: Lennard-Jones and Morse.

They are defined exactly as ASE's :class:`ase.calculators.lj.LennardJones` and
:class:`ase.calculators.morse.MorsePotential` (same parameters, defaults, shift and
smooth-cutoff functions), so that they serve as independent references for the
model contract: energies, per-atom energies, forces and stresses from ml4ms's
autograd path must match ASE's hand-written derivatives.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.graph import AtomicGraph
from .base import AtomisticModel


class PairPotential(AtomisticModel):
    """A potential that is a sum of pair terms ``u(r)``, half of each given to either atom."""

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        """Energy of one pair at distance ``r`` (Å), eV; shape of ``r``."""
        raise NotImplementedError

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        r = torch.linalg.vector_norm(graph.edge_vectors(), dim=1)
        inside = r < self.cutoff
        u = torch.where(inside, self.pair_energy(torch.where(inside, r, self.cutoff)), 0.0)
        energies = torch.zeros(len(graph.numbers), dtype=r.dtype, device=r.device)
        return energies.index_add(0, graph.edge_index[0], 0.5 * u)


class LennardJones(PairPotential):
    """Lennard-Jones potential, as ASE defines it.

    ``u(r) = 4 epsilon ((sigma/r)^12 - (sigma/r)^6)``, either shifted by ``u(rc)`` so
    that it vanishes at the cutoff (``smooth=False``, ASE's default: energy continuous,
    forces jump) or multiplied by ASE's smooth cutoff function between ``ro`` and ``rc``
    (``smooth=True``: energy and forces continuous).

    Parameters
    ----------
    sigma
        Length scale, Å.
    epsilon
        Well depth, eV.
    rc
        Cutoff, Å; default ``3 * sigma``.
    ro
        Onset of the smooth cutoff, Å; default ``0.66 * rc``.
    smooth
        Use the smooth cutoff instead of the energy shift.
    """

    def __init__(
        self,
        sigma: float = 1.0,
        epsilon: float = 1.0,
        rc: float | None = None,
        ro: float | None = None,
        smooth: bool = False,
        **kwargs: Any,
    ) -> None:
        rc = 3.0 * sigma if rc is None else float(rc)
        super().__init__(cutoff=rc, **kwargs)
        self.sigma, self.epsilon, self.rc = float(sigma), float(epsilon), rc
        self.ro = 0.66 * rc if ro is None else float(ro)
        self.smooth = bool(smooth)

    def _lj(self, r: torch.Tensor | float):
        c6 = (self.sigma / r) ** 6
        return 4.0 * self.epsilon * (c6 * c6 - c6)

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        if not self.smooth:
            return self._lj(r) - self._lj(self.rc)
        # ASE's cutoff function is a cubic in r^2 (from JAX-MD): 1 below ro, 0 above rc.
        r2, rc2, ro2 = r * r, self.rc**2, self.ro**2
        switch = torch.where(
            r2 < ro2, torch.ones_like(r), (rc2 - r2) ** 2 * (rc2 + 2 * r2 - 3 * ro2) / (rc2 - ro2) ** 3
        )
        return switch * self._lj(r)

    def get_config(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "epsilon": self.epsilon, "rc": self.rc, "ro": self.ro,
                "smooth": self.smooth}


class Morse(PairPotential):
    """Morse potential, as ASE's ``MorsePotential`` defines it.

    ``u(r) = epsilon (exp(-2 rho0 (r/r0 - 1)) - 2 exp(-rho0 (r/r0 - 1))) * fcut(r)``
    with ASE's quintic smooth cutoff going from 1 at ``rcut1 * r0`` to 0 at ``rcut2 * r0``.

    Parameters
    ----------
    epsilon
        Well depth, eV.
    rho0
        Dimensionless stiffness; the force constant at the minimum is ``2 epsilon (rho0/r0)^2``.
    r0
        Position of the minimum, Å.
    rcut1, rcut2
        Start and end of the cutoff, in units of ``r0``.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        rho0: float = 6.0,
        r0: float = 1.0,
        rcut1: float = 1.9,
        rcut2: float = 2.7,
        **kwargs: Any,
    ) -> None:
        super().__init__(cutoff=rcut2 * r0, **kwargs)
        self.epsilon, self.rho0, self.r0 = float(epsilon), float(rho0), float(r0)
        self.rcut1, self.rcut2 = float(rcut1), float(rcut2)

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        expf = torch.exp(self.rho0 * (1.0 - r / self.r0))
        s = 1.0 - (r - self.rcut1 * self.r0) / ((self.rcut2 - self.rcut1) * self.r0)
        smoothstep = 6.0 * s**5 - 15.0 * s**4 + 10.0 * s**3
        fcut = torch.where(s >= 1.0, torch.ones_like(r), torch.where(s > 0.0, smoothstep, 0.0))
        return self.epsilon * expf * (expf - 2.0) * fcut

    def get_config(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "rho0": self.rho0, "r0": self.r0, "rcut1": self.rcut1,
                "rcut2": self.rcut2}
