"""A potential with three trainable numbers, and data labelled by ASE's own Morse calculator.

The trainer is tested on a problem whose answer is known independently: ASE's
``MorsePotential`` with epsilon 0.4 eV, rho0 5 and r0 2.5 Å labels the structures; a
Morse model that starts elsewhere must find those parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.morse import MorsePotential
from torch import nn

from ml4ms.models import Morse

TRUE = {"epsilon": 0.4, "rho0": 5.0, "r0": 2.5}
RCUT1, RCUT2 = 1.9, 2.4


class LearnableMorse(Morse):
    """ASE's Morse potential with epsilon, rho0 and r0 as trainable parameters (cutoff fixed)."""

    def __init__(self, epsilon: float = 0.3, rho0: float = 4.0, r0: float = 2.4, seed: int = 0,
                 species=None, **kwargs: Any) -> None:
        super().__init__(epsilon=epsilon, rho0=rho0, r0=TRUE["r0"], rcut1=RCUT1, rcut2=RCUT2, species=species)
        self.seed = seed
        jitter = 1 + 0.01 * torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.p_epsilon = nn.Parameter(torch.tensor(float(epsilon), dtype=torch.float64) * jitter[0])
        self.p_rho0 = nn.Parameter(torch.tensor(float(rho0), dtype=torch.float64) * jitter[1])
        self.p_r0 = nn.Parameter(torch.tensor(float(r0), dtype=torch.float64) * jitter[2])
        self._initial = (epsilon, rho0, r0)

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        # The cutoff window stays at the true r0's, so the cutoff radius is a constant.
        rc1, rc2 = RCUT1 * TRUE["r0"], RCUT2 * TRUE["r0"]
        expf = torch.exp(self.p_rho0 * (1.0 - r / self.p_r0))
        s = 1.0 - (r - rc1) / (rc2 - rc1)
        smoothstep = 6.0 * s**5 - 15.0 * s**4 + 10.0 * s**3
        fcut = torch.where(s >= 1.0, torch.ones_like(r), torch.where(s > 0.0, smoothstep, 0.0))
        return self.p_epsilon * expf * (expf - 2.0) * fcut

    def get_config(self) -> dict[str, Any]:
        epsilon, rho0, r0 = self._initial
        return {"epsilon": epsilon, "rho0": rho0, "r0": r0, "seed": self.seed}

    def parameters_found(self) -> dict[str, float]:
        return {name: float(getattr(self, f"p_{name}").detach()) for name in ("epsilon", "rho0", "r0")}


def morse_cells(n: int, seed: int, n_extra_atoms: int = 0):
    """Rattled, strained 32-atom fcc cells labelled by ASE's MorsePotential."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.5, cubic=True).repeat(2)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.03 * rng.normal(size=(3, 3))), scale_atoms=True)
        atoms.rattle(0.1, seed=int(rng.integers(2**31)))
        atoms.calc = MorsePotential(**TRUE, rcut1=RCUT1, rcut2=RCUT2)
        atoms.info.update(energy=atoms.get_potential_energy(), stress=atoms.get_stress())
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        out.append(atoms)
    return out


@pytest.fixture(scope="session")
def morse_train():
    return morse_cells(12, seed=0)


@pytest.fixture(scope="session")
def morse_validation():
    return morse_cells(4, seed=1)
