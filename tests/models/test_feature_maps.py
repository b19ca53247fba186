"""Feature maps: their edge contraction is the chain rule of their own forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml4ms.models.feature_maps import LinearMap, QuadraticMap, SOAPKernelMap


def _map(kind):
    if kind == "linear":
        m = LinearMap(5, 2)
    elif kind == "quadratic":
        m = QuadraticMap(5, 2)
    else:
        m = SOAPKernelMap(5, 6, zeta=3.0, delta=0.7)
        points = torch.rand(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
        m.set_sparse_points(points, torch.tensor([0, 0, 1, 1, 1, 0]))
    if hasattr(m, "set_scale"):
        m.set_scale(torch.rand(20, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5)
    return m


@pytest.mark.parametrize("kind", ["linear", "quadratic", "kernel"])
def test_edge_rows_equal_the_jacobian_of_forward_contracted_with_the_descriptor_gradient(kind):
    fmap = _map(kind)
    generator = torch.Generator().manual_seed(0)
    q = torch.rand(4, 5, dtype=torch.float64, generator=generator) + 0.1
    channel = torch.tensor([0, 1, 1, 0])
    centre = torch.tensor([0, 0, 1, 2, 3, 3, 3])
    gradient = torch.randn(len(centre), 3, 5, dtype=torch.float64, generator=generator)
    jacobian = torch.func.jacrev(lambda x: fmap(x, channel))(q)  # (N, P, N, F)
    per_atom = torch.einsum("ipif->ipf", jacobian)  # each atom's basis depends on its own q only
    expected = torch.einsum("epf,eaf->eap", per_atom[centre], gradient)
    torch.testing.assert_close(fmap.edge_rows(q, channel, centre, gradient), expected, rtol=1e-12, atol=1e-12)


def test_kernel_is_the_normalised_dot_product_to_the_power_zeta_and_zero_across_elements():
    fmap = _map("kernel")
    q = torch.tensor([[1.0, 2.0, 0.5, 0.1, 0.3]], dtype=torch.float64)
    phi = fmap(q, torch.tensor([1]))
    x = fmap.sparse_points
    expected = 0.49 * (q[0] / q[0].norm() @ x.T) ** 3 * (fmap.sparse_channel == 1)
    torch.testing.assert_close(phi[0], expected)
    k = fmap.kernel_matrix()
    torch.testing.assert_close(k.diagonal(), torch.full((6,), 0.49, dtype=torch.float64))
    u = fmap.prior_factor()
    np.testing.assert_allclose(u.T @ u, k.numpy() + 1e-8 * 0.49 * np.eye(6), atol=1e-12)
