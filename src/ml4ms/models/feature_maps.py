"""Per-atom basis functions of the closed-form potentials: ``E_i = φ(q_i) · w``.

A feature map turns the descriptor ``q_i`` of an atom (and its element) into the ``P``
basis functions whose weights a closed-form fit determines:

- :class:`LinearMap`: ``φ = q / s`` (SNAP-like; ``s`` a fixed per-feature scale);
- :class:`QuadraticMap`: ``φ = [q / s, (q / s)_a (q / s)_b for a <= b]`` (qSNAP-like);
- :class:`SOAPKernelMap`: ``φ_m = δ² (q̂ · x̂_m)^ζ`` over sparse environments ``x_m``
  (GAP's normalised dot-product kernel, zero between environments of different
  central elements).

Each block of weights belongs to one central element. Besides evaluating ``φ`` (a
differentiable torch function, for prediction by autograd), a map contracts its
Jacobian ``∂φ/∂q`` with the descriptor's per-edge derivatives (:meth:`edge_rows`),
which is what the force and stress rows of a fit need, and gives the square root of its
prior precision (:meth:`prior_factor`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FeatureMap(nn.Module):
    """Base class: ``forward(q, channel) -> (N, P)`` and its edge contraction."""

    n_basis: int

    def forward(self, q: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        """Basis functions (N, P) of atoms with descriptors ``q`` (N, F) and element index ``channel`` (N,)."""
        raise NotImplementedError

    def edge_rows(self, q: torch.Tensor, channel: torch.Tensor, centre: torch.Tensor,
                  gradient: torch.Tensor) -> torch.Tensor:
        """``Σ_f ∂φ_p/∂q_f (q[centre[e]]) gradient[e, a, f]``, shape (E, 3, P)."""
        raise NotImplementedError

    def prior_factor(self) -> np.ndarray:
        """(P, P) ``U`` of the prior penalty ``|U w|²`` (before any ridge strength)."""
        return np.eye(self.n_basis)


def _per_element(values: torch.Tensor, channel: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Place (..., K) rows into the block of their element: (..., n_channels K)."""
    if n_channels == 1:
        return values
    one_hot = torch.nn.functional.one_hot(channel, n_channels).to(values.dtype)
    shape = channel.shape + (1,) * (values.dim() - channel.dim() - 1)
    return (one_hot.view(*shape, n_channels, 1) * values.unsqueeze(-2)).flatten(-2)


class LinearMap(FeatureMap):
    """``φ = q / scale``, one block of weights per central element.

    Parameters
    ----------
    n_features
        F, the descriptor length.
    n_channels
        Number of elements (blocks of weights).
    """

    def __init__(self, n_features: int, n_channels: int) -> None:
        super().__init__()
        self.n_features, self.n_channels = int(n_features), int(n_channels)
        self.n_basis = self.n_features * self.n_channels
        self.register_buffer("scale", torch.ones(self.n_features, dtype=torch.float64))

    def set_scale(self, features: torch.Tensor) -> None:
        """Scale each feature by its root mean square over the training atoms (so that one
        ridge strength suits all features); features that are always zero keep scale 1."""
        rms = features.pow(2).mean(0).sqrt()
        self.scale.copy_(torch.where(rms > 0, rms, torch.ones_like(rms)))

    def _single(self, q: torch.Tensor) -> torch.Tensor:
        return q / self.scale.to(q.dtype)

    def forward(self, q, channel):
        return _per_element(self._single(q), channel, self.n_channels)

    def edge_rows(self, q, channel, centre, gradient):
        return _per_element(gradient / self.scale.to(gradient.dtype), channel[centre], self.n_channels)


class QuadraticMap(LinearMap):
    """``φ = [u, u_a u_b (a <= b)]`` with ``u = q / scale``: linear plus all products, as qSNAP.

    ``P = n_channels (F + F (F + 1) / 2)``: use a compact descriptor (F of a few dozen).
    """

    def __init__(self, n_features: int, n_channels: int) -> None:
        super().__init__(n_features, n_channels)
        a, b = torch.triu_indices(self.n_features, self.n_features)
        self.register_buffer("_a", a, persistent=False)
        self.register_buffer("_b", b, persistent=False)
        self.n_basis = (self.n_features + len(a)) * self.n_channels

    def _single(self, q):
        u = q / self.scale.to(q.dtype)
        return torch.cat([u, u[:, self._a] * u[:, self._b]], 1)

    def forward(self, q, channel):
        return _per_element(self._single(q), channel, self.n_channels)

    def edge_rows(self, q, channel, centre, gradient):
        scale = self.scale.to(gradient.dtype)
        u = (q / scale)[centre]  # (E, F)
        du = gradient / scale  # (E, 3, F)
        quadratic = du[:, :, self._a] * u[:, None, self._b] + u[:, None, self._a] * du[:, :, self._b]
        return _per_element(torch.cat([du, quadratic], 2), channel[centre], self.n_channels)


class SOAPKernelMap(FeatureMap):
    """GAP's kernel columns ``φ_m(q) = δ² (q̂ · x̂_m)^ζ``, zero across central elements.

    Parameters
    ----------
    n_features
        F, the descriptor length.
    n_sparse
        M, the number of sparse (representative) environments.
    zeta
        Kernel exponent ζ (GAP's default 4).
    delta
        Prior standard deviation of an atomic energy, eV.
    jitter
        Added to the diagonal of ``K_MM`` (relative to δ²) before its Cholesky
        factorisation: duplicates among the sparse points would make it singular.
    """

    def __init__(self, n_features: int, n_sparse: int, zeta: float = 4.0, delta: float = 1.0,
                 jitter: float = 1e-8) -> None:
        super().__init__()
        if not zeta >= 1:
            raise ValueError(f"zeta must be >= 1, got {zeta}")
        if not delta > 0:
            raise ValueError(f"delta must be positive, got {delta}")
        self.n_features, self.n_basis = int(n_features), int(n_sparse)
        self.zeta, self.delta, self.jitter = float(zeta), float(delta), float(jitter)
        self.register_buffer("sparse_points", torch.zeros(self.n_basis, self.n_features, dtype=torch.float64))
        self.register_buffer("sparse_channel", torch.zeros(self.n_basis, dtype=torch.int64))

    def set_sparse_points(self, points: torch.Tensor, channel: torch.Tensor) -> None:
        """Store the (M, F) sparse environments (normalised here) and their element index (M,)."""
        if points.shape != self.sparse_points.shape:
            raise ValueError(f"expected {tuple(self.sparse_points.shape)} sparse points, got {tuple(points.shape)}")
        self.sparse_points.copy_(points / points.norm(dim=1, keepdim=True).clamp_min(1e-300))
        self.sparse_channel.copy_(channel)

    def _dot(self, q: torch.Tensor, channel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q̂ · x̂_m (N, M), q̂ (N, F), |q| (N, 1) and the same-element mask (N, M)."""
        norm = q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        unit = q / norm
        same = (channel[:, None] == self.sparse_channel[None, :]).to(q.dtype)
        return unit @ self.sparse_points.to(q.dtype).T, unit, norm, same

    def forward(self, q, channel):
        dot, _, _, same = self._dot(q, channel)
        return self.delta**2 * dot.clamp_min(0).pow(self.zeta) * same

    def kernel_matrix(self) -> torch.Tensor:
        """``K_MM`` (M, M) between the sparse points, without jitter."""
        x = self.sparse_points
        same = (self.sparse_channel[:, None] == self.sparse_channel[None, :]).to(x.dtype)
        return self.delta**2 * (x @ x.T).clamp_min(0).pow(self.zeta) * same

    def edge_rows(self, q, channel, centre, gradient):
        dot, unit, norm, same = self._dot(q, channel)
        # ∂k/∂q = δ² ζ P^(ζ-1) (x̂ - P q̂) / |q|, P = q̂·x̂
        p = dot.clamp_min(0)
        coefficient = (self.delta**2 * self.zeta * p.pow(self.zeta - 1) * same / norm)[centre]  # (E, M)
        projected = gradient @ self.sparse_points.to(gradient.dtype).T  # (E, 3, M)
        along = (gradient * unit[centre][:, None, :]).sum(2)  # (E, 3)
        # in place: these (E, 3, M) arrays are the largest of a fit
        projected.addcmul_(p[centre][:, None, :], along[:, :, None], value=-1.0)
        return projected.mul_(coefficient[:, None, :])

    def prior_factor(self) -> np.ndarray:
        k = self.kernel_matrix().double().cpu().numpy()
        k[np.diag_indices_from(k)] += self.jitter * self.delta**2
        return np.linalg.cholesky(k).T
