"""Sparse Gaussian-process potential on SOAP (GAP) with predictive variances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data.dataset import AtomsDataset
from .descriptor_potential import DescriptorPotential
from .feature_maps import FeatureMap, SOAPKernelMap
from .sparse import METHODS, select_sparse_points


class SparseGPPotential(DescriptorPotential):
    """Gaussian Approximation Potential: a sparse GP of atomic energies on SOAP.

    The atomic energy is a Gaussian process with the normalised dot-product kernel
    ``k(q, q') = δ² (q̂ · q̂')^ζ`` (zero between different central elements), observed
    through sums (total energies) and derivatives (forces, stresses). The sparse
    (projected-process) approximation expands it on ``n_sparse`` environments per
    element chosen from the training data, ``E_i = Σ_m α_m k(q_i, x_m)``, and the
    weights solve ``(K_MM + K_MN Λ⁻¹ K_NM) α = K_MN Λ⁻¹ y`` by QR (Bartók et al., Phys.
    Rev. Lett. 104, 136403 (2010); Bartók & Csányi, Int. J. Quantum Chem. 115, 1051
    (2015)).

    Uncertainty: the predictive variance of an energy is the deterministic-training-
    conditional one, ``k** - k*ᵀ K_MM⁻¹ k* + k*ᵀ (K_MM + K_MN Λ⁻¹ K_NM)⁻¹ k*``: it grows
    away from the training data, towards the prior variance.

    Parameters
    ----------
    species
        Elements of the potential.
    descriptor
        SOAP arguments, e.g. ``{"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5,
        "rbf": "gto_smooth"}``.
    n_sparse
        Sparse environments per element.
    zeta
        Kernel exponent ζ.
    delta
        Prior standard deviation of an atomic energy, eV (after the reference energies).
    sparse_method
        ``"fps"``, ``"cur"`` or ``"random"`` (:func:`~ml4ms.models.sparse.select_sparse_points`).
    seed
        Seed of the sparse-point choice ("cur", "random").
    jitter
        Added to the diagonal of ``K_MM`` relative to δ².
    pair
        Arguments of an added :class:`~ml4ms.models.LinearPairPotential` two-body term.
    """

    def __init__(self, species: Sequence[int | str], descriptor: Mapping[str, Any],
                 n_sparse: int = 1000, zeta: float = 4.0, delta: float = 0.2,
                 sparse_method: str = "cur", seed: int = 0, jitter: float = 1e-8,
                 pair: Mapping[str, Any] | None = None) -> None:
        if sparse_method not in METHODS:
            raise ValueError(f"sparse_method must be one of {METHODS}, got {sparse_method!r}")
        if int(n_sparse) < 1:
            raise ValueError(f"n_sparse must be >= 1, got {n_sparse}")
        self.n_sparse, self.zeta, self.delta = int(n_sparse), float(zeta), float(delta)
        self.sparse_method, self.seed, self.jitter = sparse_method, int(seed), float(jitter)
        super().__init__(species, descriptor, pair)
        self.register_buffer("kmm_factor", torch.zeros(self.feature_map.n_basis, self.feature_map.n_basis,
                                                       dtype=torch.float64))

    def make_feature_map(self, n_features: int, n_channels: int) -> FeatureMap:
        return SOAPKernelMap(n_features, self.n_sparse * n_channels, self.zeta, self.delta, self.jitter)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_sparse": self.n_sparse, "zeta": self.zeta, "delta": self.delta,
                "sparse_method": self.sparse_method, "seed": self.seed, "jitter": self.jitter}

    def prepare(self, data: AtomsDataset, features: torch.Tensor, channel: torch.Tensor) -> None:
        points, owners = [], []
        for c in range(len(self.species)):
            mine = torch.nonzero(channel == c)[:, 0]
            chosen = mine[select_sparse_points(features[mine], self.n_sparse, self.sparse_method, self.seed)]
            if len(chosen) < self.n_sparse:  # fewer environments than asked: repeat (jitter keeps K_MM regular)
                chosen = chosen[torch.arange(self.n_sparse) % len(chosen)]
            points.append(features[chosen])
            owners.append(torch.full((self.n_sparse,), c, dtype=torch.int64))
        self.feature_map.set_sparse_points(torch.cat(points), torch.cat(owners))
        with torch.no_grad():  # U with U^T U = K_MM + jitter
            self.kmm_factor.copy_(torch.as_tensor(self.feature_map.prior_factor()))

    def prior_factor(self, alpha: float) -> np.ndarray:
        return np.sqrt(alpha) * self.kmm_factor.numpy()

    def extra_variance(self, q, channel, batch, n_groups):
        """DTC term ``k** - k*ᵀ K_MM⁻¹ k*`` of atoms (batch None) or of structure sums."""
        if batch is not None:
            return torch.diagonal(self.extra_covariance(q, channel, batch, n_groups))
        k = self.feature_map(q, channel)  # (N, M)
        solved = torch.linalg.solve_triangular(self.kmm_factor.to(q.dtype).T, k.T, upper=False)
        return self.delta**2 - (solved**2).sum(0)

    def extra_covariance(self, q, channel, batch, n_groups):
        """DTC covariance ``Σ_{i∈a, j∈b} [k(i, j) - k_iᵀ K_MM⁻¹ k_j]`` of structure sums."""
        members = torch.nn.functional.one_hot(batch, n_groups).to(q.dtype)  # (N, B)
        unit = q / q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        same = channel[:, None] == channel[None, :]
        kernel = self.delta**2 * (unit @ unit.T).clamp_min(0).pow(self.zeta) * same
        k = members.T @ self.feature_map(q, channel)  # (B, M)
        solved = torch.linalg.solve_triangular(self.kmm_factor.to(q.dtype).T, k.T, upper=False)
        return members.T @ kernel @ members - solved.T @ solved
