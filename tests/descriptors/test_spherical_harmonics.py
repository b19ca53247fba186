"""Real spherical and solid harmonics: values, orthonormality, symmetry, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import eval_legendre, sph_harm_y

from ml4ms.descriptors.spherical_harmonics import (
    L_MAX,
    block_factors,
    harmonics_index,
    solid_harmonic_blocks,
    solid_harmonics,
    spherical_harmonics,
)


def _reference(vectors: np.ndarray, l_max: int) -> np.ndarray:
    """Real harmonics from SciPy's complex ones (which carry the Condon-Shortley phase)."""
    r = np.linalg.norm(vectors, axis=1)
    theta = np.arccos(np.clip(vectors[:, 2] / r, -1, 1))
    phi = np.arctan2(vectors[:, 1], vectors[:, 0])
    out = []
    for l, m in harmonics_index(l_max):
        y = sph_harm_y(l, abs(m), theta, phi)
        sign = (-1) ** abs(m)
        out.append(y.real if m == 0 else math.sqrt(2) * sign * (y.real if m > 0 else y.imag))
    return np.stack(out, axis=1)


def test_values_equal_scipy_up_to_l_max():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 3)) * rng.uniform(0.1, 5, size=(300, 1))
    vectors[:3] = [[0, 0, 2.0], [0, 0, -1.0], [1e-3, 0, 0]]  # poles and a short vector
    expected = _reference(vectors, L_MAX)
    actual = spherical_harmonics(torch.tensor(vectors), L_MAX).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
    r = np.linalg.norm(vectors, axis=1, keepdims=True)
    powers = np.concatenate([np.repeat(r**l, 2 * l + 1, axis=1) for l in range(L_MAX + 1)], axis=1)
    solid = solid_harmonics(torch.tensor(vectors), L_MAX).numpy()
    np.testing.assert_allclose(solid / powers, expected, rtol=1e-10, atol=1e-12)


def test_convention_and_order():
    v = torch.tensor([[0.3, -0.4, 1.2]], dtype=torch.float64)
    y1 = spherical_harmonics(v, 1)[0, 1:].numpy()
    unit = v[0].numpy() / np.linalg.norm(v[0].numpy())
    np.testing.assert_allclose(y1, math.sqrt(3 / (4 * math.pi)) * unit[[1, 2, 0]], rtol=1e-14)
    assert harmonics_index(2) == [
        (0, 0),
        (1, -1),
        (1, 0),
        (1, 1),
        (2, -2),
        (2, -1),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    assert spherical_harmonics(v, 7).shape == (1, 64)


def test_orthonormal_on_the_sphere():
    l_max = 10
    x, w = np.polynomial.legendre.leggauss(2 * l_max + 2)  # exact for the products up to 2 l_max
    phi = np.arange(2 * l_max + 2) * 2 * np.pi / (2 * l_max + 2)
    cos_t, ph = np.meshgrid(x, phi, indexing="ij")
    sin_t = np.sqrt(1 - cos_t**2)
    points = np.stack([sin_t * np.cos(ph), sin_t * np.sin(ph), cos_t], -1).reshape(-1, 3)
    weights = np.repeat(w, len(phi)) * (2 * np.pi / len(phi))
    y = spherical_harmonics(torch.tensor(points), l_max).numpy()
    gram = (y * weights[:, None]).T @ y
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-12)


def test_rotation_invariance_by_the_addition_theorem():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 50, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    ya, yb = (spherical_harmonics(torch.tensor(v), 12).numpy() for v in (a, b))
    ra, rb = (spherical_harmonics(torch.tensor(v @ q.T), 12).numpy() for v in (a, b))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    for l in range(13):
        block = slice(l * l, (l + 1) ** 2)
        expected = (2 * l + 1) / (4 * np.pi) * eval_legendre(l, cos)
        np.testing.assert_allclose((ya[:, block] * yb[:, block]).sum(1), expected, atol=1e-12)
        np.testing.assert_allclose((ra[:, block] * rb[:, block]).sum(1), expected, atol=1e-12)


def test_solid_harmonics_are_homogeneous_and_finite_at_zero():
    v = torch.tensor([[0.7, -1.1, 0.4]], dtype=torch.float64)
    s1 = solid_harmonics(v, 8)
    s2 = solid_harmonics(2.5 * v, 8)
    powers = torch.cat([torch.full((2 * l + 1,), 2.5**l, dtype=torch.float64) for l in range(9)])
    torch.testing.assert_close(s2, s1 * powers, rtol=1e-13, atol=0)
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    value = solid_harmonics(zero, 6)
    assert (
        value[0, 0].item() == pytest.approx(0.5 / math.sqrt(math.pi)) and (value[0, 1:] == 0).all()
    )
    (grad,) = torch.autograd.grad(
        value[0, 1:4].sum(), zero
    )  # l = 1 is linear: gradient is its coefficients
    np.testing.assert_allclose(grad.numpy()[0], math.sqrt(3 / (4 * math.pi)) * np.ones(3))
    unit = spherical_harmonics(zero, 4)
    assert torch.isfinite(unit).all() and (unit[0, 1:] == 0).all()


def test_gradients_and_second_derivatives():
    v = torch.tensor(
        [[0.3, -0.8, 0.5], [1.2, 0.1, -0.4], [0.0, 0.0, 0.9]],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(lambda x: solid_harmonics(x, 6), (v,))
    assert torch.autograd.gradgradcheck(lambda x: solid_harmonics(x, 4), (v,))
    assert torch.autograd.gradcheck(lambda x: spherical_harmonics(x, 5), (v,))


def test_blocks_are_the_same_functions_with_weights():
    rng = np.random.default_rng(2)
    v = torch.tensor(rng.normal(size=(40, 3)))
    w = torch.tensor(rng.uniform(size=40))
    x, y, z = v.T
    blocks = solid_harmonic_blocks(x, y, z, x * x + y * y + z * z, 9, w)
    standard = solid_harmonics(v, 9)
    for l, (block, factor) in enumerate(zip(blocks, block_factors(9), strict=True)):
        rows = block.T.numpy() * factor / w.numpy()[:, None]
        # block order: m = 0, cos m = 1..l, sin m = 1..l; standard order m = -l..l
        order = [l] + [l + m for m in range(1, l + 1)] + [l - m for m in range(1, l + 1)]
        np.testing.assert_allclose(
            rows, standard[:, l * l : (l + 1) ** 2].numpy()[:, order], rtol=1e-11, atol=1e-12
        )


def test_float32_and_batch_shapes():
    v = torch.randn(4, 5, 3)
    y = spherical_harmonics(v, 6)
    assert y.shape == (4, 5, 49) and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), spherical_harmonics(v.double(), 6), rtol=1e-4, atol=1e-5)


def test_bad_input_raises():
    v = torch.randn(3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="l_max"):
        spherical_harmonics(v, L_MAX + 1)
    with pytest.raises(ValueError, match="l_max"):
        solid_harmonics(v, -1)
    with pytest.raises(TypeError, match="l_max"):
        spherical_harmonics(v, 2.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        spherical_harmonics(torch.randn(3, 2, dtype=torch.float64), 2)
    with pytest.raises(TypeError, match="floating"):
        spherical_harmonics(torch.ones(3, 3, dtype=torch.long), 2)
