"""Real spherical and solid harmonics in torch: vectorised, differentiable, any dtype.

Convention
----------
Real spherical harmonics orthonormal on the unit sphere (``∫ Y_lm Y_l'm' dΩ = δ_ll' δ_mm'``),
without the Condon-Shortley phase, in l-major order with ``m = -l, ..., l`` inside each l
(column ``l**2 + l + m``)::

    Y_l^m  = sqrt(2) N_l^|m| P_l^|m|(cos θ) sin(|m| φ)   for m < 0
    Y_l^0  =         N_l^0   P_l^0(cos θ)
    Y_l^m  = sqrt(2) N_l^m   P_l^m(cos θ)   cos(m φ)     for m > 0

with ``N_l^m = sqrt((2l + 1) / (4π) (l - m)! / (l + m)!)`` and ``P_l^m`` the associated
Legendre functions without the ``(-1)^m`` phase. So ``Y_1 = sqrt(3/(4π)) (y, z, x) / r``. This
is the convention of sphericart and of DScribe's SOAP (DScribe orders the l = 1 block as
(z, x, y); rotation-invariant contractions over m do not depend on that order).

The *solid* harmonics ``r^l Y_lm(r̂)`` are homogeneous polynomials of degree l in
(x, y, z): they are computed without dividing by r, so they and their derivatives are
exact and finite at r = 0, which SOAP needs for the density of the central atom and for
atoms on top of one another.

Algorithm: ``(x + i y)^m = c_m + i s_m`` by the complex-multiplication recurrence, and
``Q_l^m(z, r²) = r^(l-m) P_l^m(z/r) / sin^m θ`` -- polynomials in z and r² -- by the
standard three-term recurrence in l (vectorised over m)::

    Q_m^m = (2m - 1)!!,   Q_{m+1}^m = (2m + 1) z Q_m^m,
    Q_l^m = ((2l - 1) z Q_{l-1}^m - (l + m - 1) r² Q_{l-2}^m) / (l - m)

then ``r^l Y_lm = N_l^|m| Q_l^|m| × (sqrt(2) s_|m|, 1, sqrt(2) c_m)``. Loops run over l and
m only (O(l_max) tensor operations of the size of the input); the edges are vectorised.
Validated against :func:`scipy.special.sph_harm_y` up to :data:`L_MAX` (tests).

References
----------
M. A. Blanco, M. Flórez, M. Bermejo, J. Mol. Struct. THEOCHEM 419, 19 (1997): real
spherical harmonics and their recurrences.
F. Bigi, G. Fraux, N. J. Browning, M. Ceriotti, J. Chem. Phys. 159, 064802 (2023):
sphericart, the same convention and the Cartesian (solid-harmonic) recurrences.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

__all__ = [
    "L_MAX",
    "block_factors",
    "harmonics_index",
    "solid_harmonic_blocks",
    "solid_harmonics",
    "spherical_harmonics",
]

#: Largest l supported (DScribe's SOAP supports the same). The recurrences are validated
#: to 1e-10 relative accuracy up to this l in float64.
L_MAX = 20


def harmonics_index(l_max: int) -> list[tuple[int, int]]:
    """The (l, m) of each column of :func:`spherical_harmonics`, in order."""
    return [(l, m) for l in range(l_max + 1) for m in range(-l, l + 1)]


def _check(vectors: torch.Tensor, l_max: int) -> None:
    if not isinstance(l_max, int) or isinstance(l_max, bool):
        raise TypeError(f"l_max must be an int, got {type(l_max).__name__}")
    if not 0 <= l_max <= L_MAX:
        raise ValueError(f"l_max must be between 0 and {L_MAX}, got {l_max}")
    if vectors.shape[-1:] != (3,):
        raise ValueError(f"expected vectors of shape (..., 3), got {tuple(vectors.shape)}")
    if not vectors.is_floating_point():
        raise TypeError(f"expected floating-point vectors, got {vectors.dtype}")


def solid_harmonics(vectors: torch.Tensor, l_max: int) -> torch.Tensor:
    """Real solid harmonics ``r^l Y_lm(r̂)`` of vectors.

    Parameters
    ----------
    vectors
        Tensor of shape (..., 3): Cartesian vectors (e.g. Å; the result has units Å^l).
    l_max
        Largest degree, 0 <= l_max <= :data:`L_MAX`.

    Returns
    -------
    Tensor
        Shape (..., (l_max + 1)**2), same dtype and device as ``vectors``; column
        ``l**2 + l + m``. Differentiable (including at the zero vector).
    """
    _check(vectors, l_max)
    x, y, z = vectors.unbind(-1)
    r2 = x * x + y * y + z * z
    return _harmonics(x, y, z, r2, l_max)


def spherical_harmonics(vectors: torch.Tensor, l_max: int, normalize: bool = True) -> torch.Tensor:
    """Real spherical harmonics ``Y_lm(r̂)`` of the directions of vectors.

    Parameters
    ----------
    vectors
        Tensor of shape (..., 3). Need not be unit vectors when ``normalize`` is True.
    l_max
        Largest degree, 0 <= l_max <= :data:`L_MAX`.
    normalize
        True: harmonics of the direction ``r̂ = r / |r|`` (a zero vector gives
        ``Y_00`` and zeros, with zero gradient). False: the solid harmonics
        ``|r|^l Y_lm(r̂)`` (:func:`solid_harmonics`).

    Returns
    -------
    Tensor
        Shape (..., (l_max + 1)**2): column ``l**2 + l + m``, ``m = -l..l``.
    """
    _check(vectors, l_max)
    if not normalize:
        return solid_harmonics(vectors, l_max)
    r2 = (vectors * vectors).sum(-1, keepdim=True)
    tiny = torch.finfo(vectors.dtype).tiny
    safe = torch.where(r2 > tiny, r2, torch.ones_like(r2))
    unit = torch.where(r2 > tiny, vectors * torch.rsqrt(safe), torch.zeros_like(vectors))
    x, y, z = unit.unbind(-1)
    one = torch.where(r2[..., 0] > tiny, torch.ones_like(x), torch.zeros_like(x))
    return _harmonics(x, y, z, one, l_max)


def _harmonics(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, r2: torch.Tensor, l_max: int
) -> torch.Tensor:
    """The solid-harmonic polynomials of (x, y, z) given ``r2 = x² + y² + z²``: shape (..., K)."""
    shape = x.shape
    blocks = solid_harmonic_blocks(*(t.reshape(-1) for t in (x, y, z, r2)), l_max)
    order, factors = _standard_order(l_max)
    rows = torch.cat(blocks).index_select(0, torch.as_tensor(order, device=x.device))
    rows = rows * torch.as_tensor(factors, dtype=x.dtype, device=x.device).unsqueeze(1)
    return rows.T.reshape(*shape, (l_max + 1) ** 2)


@cache
def block_factors(l_max: int) -> tuple[np.ndarray, ...]:
    """Per l, the factors that turn the rows of :func:`solid_harmonic_blocks` into ``r^l Y_lm``.

    Row order inside block l: ``m = 0``, then the cosine rows ``m = 1..l``, then the sine
    rows ``m = -1..-l``. Each factor is ``N_l^|m| K_l^|m|`` (times √2 for m ≠ 0), where
    ``K_l^m`` is the scale of the recurrence polynomials (see the module docstring).
    """
    out = []
    for l in range(l_max + 1):
        f = np.empty(2 * l + 1)
        for m in range(l + 1):
            k = math.prod(range(2 * m - 1, 0, -2))  # K_m^m = (2m - 1)!!
            for ll in range(m + 1, l + 1):
                k *= (2 * ll - 1) / (ll - m)
            norm = math.sqrt(
                (2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
            )
            if m == 0:
                f[0] = norm * k
            else:
                f[m] = f[l + m] = math.sqrt(2.0) * norm * k
        out.append(f)
    return tuple(out)


@cache
def _standard_order(l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation from concatenated blocks to columns ``l**2 + l + m``, and the factors."""
    order, factors = [], []
    for l, f in enumerate(block_factors(l_max)):
        start = l * l
        for m in range(-l, l + 1):
            row = 0 if m == 0 else (m if m > 0 else l - m)
            order.append(start + row)
            factors.append(f[row])
    return np.asarray(order, dtype=np.int64), np.asarray(factors)


@cache
def _block_tables(l_max: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Recurrence constants β_l (m = 0..l-2) and the gathers that assemble the blocks."""
    betas = []
    for l in range(2, l_max + 1):
        m = np.arange(l - 1, dtype=np.float64)
        betas.append((l + m - 1) * (l - m - 1) / ((2 * l - 1) * (2 * l - 3)))
    p_index, cs_index = [], []
    for l in range(l_max + 1):
        offset = l * (l + 1) // 2  # P_l^m is row offset + m of the concatenated P table
        p_index += [offset] + [offset + m for m in range(1, l + 1)] * 2
        cs_index += [0] + list(range(1, l + 1)) + [l_max + m for m in range(1, l + 1)]
    return betas, np.asarray(p_index, dtype=np.int64), np.asarray(cs_index, dtype=np.int64)


_DEVICE_TABLES: dict = {}


def _tables_on(l_max: int, dtype: torch.dtype, device: torch.device):
    key = (l_max, dtype, str(device))
    if key not in _DEVICE_TABLES:
        betas, p_index, cs_index = _block_tables(l_max)
        _DEVICE_TABLES[key] = (
            [torch.as_tensor(b, dtype=dtype, device=device).unsqueeze(1) for b in betas],
            torch.as_tensor(p_index, device=device),
            torch.as_tensor(cs_index, device=device),
        )
    return _DEVICE_TABLES[key]


def solid_harmonic_blocks(
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    r2: torch.Tensor,
    l_max: int,
    weight: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Unnormalised solid harmonics of 1-D inputs, one tensor (2l + 1, E) per l.

    The fast path of SOAP: rows are ``weight × P_l^|m|(z, r²) × (1 | c_m | s_m)``, with
    ``c_m + i s_m = (x + i y)^m`` and ``P_l^m = Q_l^m / K_l^m`` the recurrence polynomials
    scaled so that ``P_l^m = z P_{l-1}^m - β_lm r² P_{l-2}^m``,
    ``β_lm = (l + m - 1)(l - m - 1) / ((2l - 1)(2l - 3))``, ``P_m^m = 1``,
    ``P_{m+1}^m = z``. Multiply block l by :func:`block_factors` ``[l]`` to get
    ``r^l Y_lm`` (row order: m = 0, cosines m = 1..l, sines m = -1..-l). Every operation
    acts on whole rows of length E, a few dozen operations in all (the per-operation
    overhead of eager torch matters at the chunk sizes SOAP uses), and no slice of a
    large tensor is taken, so the backward pass allocates no zero-filled gradients.

    Parameters
    ----------
    x, y, z, r2
        1-D tensors of length E (``r2 = x² + y² + z²``).
    l_max
        Largest degree.
    weight
        Optional 1-D tensor of length E multiplying every row (folded into the few
        (1, c_m, s_m) rows, which is cheaper than scaling the output).
    """
    betas, p_index, cs_index = _tables_on(l_max, x.dtype, x.device)
    ones = torch.ones_like(x)
    if l_max == 0:
        return [(ones if weight is None else weight).unsqueeze(0)]
    c, s = [x], [y]
    for _ in range(2, l_max + 1):
        c_prev, s_prev = c[-1], s[-1]
        c.append(x * c_prev - y * s_prev)
        s.append(x * s_prev + y * c_prev)
    cs = torch.stack([ones, *c, *s])
    if weight is not None:
        cs = cs * weight
    z_row, r2_row, one_row = z.unsqueeze(0), r2.unsqueeze(0), ones.unsqueeze(0)
    p = [one_row, torch.cat([z_row, one_row])]
    for l in range(2, l_max + 1):
        body, _ = p[-1].split([l - 1, 1])
        low = z_row * body - betas[l - 2] * (r2_row * p[-2])
        p.append(torch.cat([low, z_row, one_row]))  # m = 0..l-2, l-1, l
    rows = torch.cat(p).index_select(0, p_index) * cs.index_select(0, cs_index)
    return list(rows.split([2 * l + 1 for l in range(l_max + 1)]))
