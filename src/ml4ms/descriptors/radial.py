"""Radial bases of the SOAP descriptor, as closed-form functions of the neighbour distance.

SOAP expands the neighbour density of a centre, a sum of Gaussians of width ``sigma``
(``η = 1 / (2 σ²)``) on the neighbours ``j``,

    ρ(r) = Σ_j w_j exp(-η |r - r_j|²),

on radial functions ``g_nl(r)`` times real spherical harmonics. A basis here provides,
for every neighbour at distance ``r_j``, the *radial integral* ``R_nl(r_j)`` such that the
expansion coefficients are

    c_nlm = Σ_j w_j R_nl(r_j) r_j^l Y_lm(r̂_j)           (r^l Y_lm: solid harmonics)

(Bartók, Kondor, Csányi, Phys. Rev. B 87, 184115 (2013); the GTO form below is DScribe's,
Himanen et al., Comput. Phys. Commun. 247, 106949 (2020)).

Two bases:

:class:`GTORadialBasis` (``rbf="gto"``)
    DScribe's: primitives ``r^l exp(-α_kl r²)`` whose decay points are spread evenly
    between 1 Å and ``r_cut``, orthonormalised per l with Löwdin's ``S^{-1/2}``. The
    integral of a Gaussian density against them over *all space* has a closed form that
    needs no Bessel function: with ``i_l`` the modified spherical Bessel function,

        ∫ r^(l+2) e^{-(α+η) r²} i_l(2 η r r_j) dr = √π (2 η r_j)^l e^{η² r_j² / (α+η)}
                                                     / (2^(l+2) (α+η)^(l+3/2)),

    so ``R_nl(r) = Σ_k B_lnk exp(A_lk r²)`` with ``A_lk = -α_kl / (1 + α_kl/η)`` and
    ``B_lnk = π^{3/2} η^{-3/2} β_lnk (1 + α_kl/η)^{-(l+3/2)}``: a sum of Gaussians in the
    neighbour distance, exact and smooth at r = 0 (the ``r^l`` factor goes to the solid
    harmonic). The density is not cut off: a neighbour counts until its Gaussian has
    decayed to 1e-3, i.e. up to ``r_cut + σ √(-2 ln 1e-3)`` (6.858 Å for r_cut 5, σ 0.5),
    where it drops out with a small jump -- exactly what DScribe does.

:class:`SmoothGTORadialBasis` (``rbf="gto_smooth"``)
    The same radial integrals times a C² cutoff function of the neighbour distance,
    ``f(r) = 1 - t³ (10 - 15 t + 6 t²)`` with ``t = (r - r_cut + width) / width`` clipped
    to [0, 1]: features, forces and force derivatives are continuous when atoms cross
    ``r_cut``, and the neighbour sphere is ``r_cut`` itself, without the 3.7 σ padding --
    about 2.6 times fewer neighbours at r_cut 5, σ 0.5 (the same sphere as featomic and
    QUIP's SOAP at that cutoff). Inside ``r_cut - width`` the coefficients equal the
    ``"gto"`` ones. Chosen over DScribe's ``"polynomial"`` basis (whose integrals need a
    100-point quadrature per neighbour and l, and whose neighbour sphere is the same padded
    one) and over spherical Bessel functions (special functions per (n, l) and neighbour)
    because it is the cheapest smooth option: see ``benchmarks/bench_soap.py``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.special
import torch

__all__ = ["GTORadialBasis", "SmoothGTORadialBasis", "gto_alphas_betas"]

def smooth_step_down(t: torch.Tensor) -> torch.Tensor:
    """C² step from 1 at ``t <= 0`` to 0 at ``t >= 1``: ``1 - t³ (10 - 15 t + 6 t²)``, t clipped.

    Its first and second derivatives vanish at both ends (the cutoff of ``gto_smooth`` and
    the switch of :class:`~ml4ms.models.repulsion.ZBLRepulsion`).
    """
    t = t.clamp(0.0, 1.0)
    return 1.0 - t * t * t * (10.0 + t * (-15.0 + 6.0 * t))


#: DScribe's decay threshold for the GTO primitives and for the density padding.
GTO_THRESHOLD = 1e-3


def gto_alphas_betas(r_cut: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """DScribe's GTO exponents and Löwdin orthonormalisation coefficients.

    The primitive ``r^l exp(-α r²)`` of index k decays to 1e-3 at ``a_k``, with ``a_k``
    spaced evenly from 1 Å to ``r_cut``: ``α_lk = -ln(1e-3 / a_k^l) / a_k²``. Their overlap
    on [0, ∞) with weight r² is ``S_kk' = Γ(l + 3/2) / 2 (α_k + α_k')^{-(l + 3/2)}`` and the
    coefficients are ``β_l = S^{-1/2}`` (principal square root, as DScribe's ``sqrtm(inv(S))``).

    Parameters
    ----------
    r_cut
        Radial cutoff, Å (> 1 Å, as DScribe requires for this basis).
    n_max
        Number of radial functions.
    l_max
        Largest degree.

    Returns
    -------
    alphas : ndarray of shape (l_max + 1, n_max), Å⁻²
    betas : ndarray of shape (l_max + 1, n_max, n_max)

    Raises
    ------
    ValueError
        When the overlap matrix is too ill-conditioned for a real square root (too many
        radial functions for the cutoff), with the advice DScribe gives.
    """
    a = np.linspace(1.0, r_cut, n_max)
    alphas = np.zeros((l_max + 1, n_max))
    betas = np.zeros((l_max + 1, n_max, n_max))
    for l in range(l_max + 1):
        alpha = -np.log(GTO_THRESHOLD / np.power(a, l)) / a**2
        total = alpha[:, None] + alpha[None, :]
        overlap = 0.5 * scipy.special.gamma(l + 1.5) * total ** (-l - 1.5)
        beta = scipy.linalg.sqrtm(scipy.linalg.inv(overlap))
        if np.iscomplexobj(beta):
            if np.abs(beta.imag).max() > 1e-8 * np.abs(beta.real).max():
                raise ValueError(
                    f"the GTO radial basis cannot be orthonormalised for n_max={n_max}, "
                    f"r_cut={r_cut} (l={l}): use fewer radial functions or a larger cutoff"
                )
            beta = beta.real
        if not np.isfinite(beta).all():
            raise ValueError(
                f"the GTO radial basis cannot be orthonormalised for n_max={n_max}, r_cut={r_cut}"
            )
        alphas[l] = alpha
        betas[l] = beta
    return alphas, betas


class GTORadialBasis:
    """DScribe's orthonormal GTO radial basis with a Gaussian density (``rbf="gto"``).

    Parameters
    ----------
    r_cut
        Radial cutoff of the basis, Å (> 1).
    n_max
        Number of radial functions (>= 1).
    l_max
        Largest angular degree.
    sigma
        Width of the Gaussians of the density, Å (> 0).

    Attributes
    ----------
    alphas, betas
        DScribe's arrays (see :func:`gto_alphas_betas`).
    exponents : ndarray of shape (l_max + 1, n_max)
        ``A_lk`` in ``R_nl(r) = Σ_k B_lnk exp(A_lk r²)``, Å⁻² (``R_nl`` = :meth:`mix` of
        :meth:`evaluate`).
    coefficients : ndarray of shape (l_max + 1, n_max, n_max)
        ``B_lnk`` (index order l, n, k), including DScribe's ``π^{3/2}``.
    neighbor_cutoff : float
        Distance beyond which a neighbour is dropped, Å: ``r_cut + σ √(-2 ln 1e-3)``.
    """

    name = "gto"
    smooth = False

    def __init__(self, r_cut: float, n_max: int, l_max: int, sigma: float) -> None:
        self.r_cut = float(r_cut)
        self.n_max = int(n_max)
        self.l_max = int(l_max)
        self.sigma = float(sigma)
        eta = 1.0 / (2.0 * self.sigma**2)
        self.alphas, self.betas = gto_alphas_betas(self.r_cut, self.n_max, self.l_max)
        ratio = 1.0 + self.alphas / eta  # (l, k)
        self.exponents = -self.alphas / ratio
        l = np.arange(self.l_max + 1)[:, None, None]
        self.coefficients = (
            math.pi**1.5 * eta**-1.5 * self.betas * ratio[:, None, :] ** (-(l + 1.5))
        )
        self.neighbor_cutoff = self.r_cut + self.sigma * math.sqrt(-2.0 * math.log(GTO_THRESHOLD))

    def self_values(self) -> np.ndarray:
        """``R_n0(0)``, shape (n_max,): the l = 0 radial integral of an atom at the centre."""
        return self.coefficients[0].sum(axis=1)

    def tensors(self, dtype: torch.dtype, device: torch.device | str | None = None):
        """(exponents (L+1)·n_max x 1, coefficients (L+1, n, k)) as tensors for :meth:`evaluate`."""
        # exp(a) = exp2(a / ln 2): torch's exp2 is about twice as fast as its exp on CPU
        exponents = torch.as_tensor(
            self.exponents.reshape(-1, 1) / math.log(2.0), dtype=dtype, device=device
        )
        coefficients = torch.as_tensor(self.coefficients, dtype=dtype, device=device)
        return exponents, coefficients

    def evaluate(self, r2: torch.Tensor, tensors) -> torch.Tensor:
        """The primitive Gaussians ``exp(A_lk r²)`` of neighbours at squared distances ``r2``.

        Parameters
        ----------
        r2
            1-D tensor of length P, Å².
        tensors
            From :meth:`tensors`.

        Returns
        -------
        Tensor of shape (l_max + 1, n_max, P)
            Summed over the neighbours of a centre and then mixed with :meth:`mix`, they
            give ``R_nl``. Summing first and mixing second is cheaper and keeps DScribe's
            order of operations (the orthonormalisation coefficients are large and of
            alternating sign, so the order matters at the 1e-9 level).
        """
        exponents, _ = tensors
        return torch.exp2(exponents * r2).view(self.l_max + 1, self.n_max, -1)

    def mix(self, l: int, summed: torch.Tensor, tensors) -> torch.Tensor:
        """``Σ_k B_lnk summed[..., k, :]``: shape (..., n_max, X) from (..., n_max (k), X)."""
        _, coefficients = tensors
        return torch.matmul(coefficients[l], summed)

    def cutoff(self, r: torch.Tensor) -> torch.Tensor | None:
        """Multiplicative cutoff function of the distance, or None for none."""
        return None


class SmoothGTORadialBasis(GTORadialBasis):
    """GTO radial integrals times a C² cutoff function (``rbf="gto_smooth"``).

    Parameters
    ----------
    r_cut, n_max, l_max, sigma
        As :class:`GTORadialBasis`; here ``r_cut`` is also the neighbour cutoff.
    width
        Width of the transition region ``[r_cut - width, r_cut]``, Å (0 < width <= r_cut).

    Notes
    -----
    ``f(r) = 1 - t³ (10 - 15 t + 6 t²)``, ``t = clip((r - r_cut + width) / width, 0, 1)``:
    f, f' and f'' vanish at ``r_cut`` and f - 1, f', f'' at ``r_cut - width``.
    """

    name = "gto_smooth"
    smooth = True

    def __init__(
        self, r_cut: float, n_max: int, l_max: int, sigma: float, width: float = 1.0
    ) -> None:
        super().__init__(r_cut, n_max, l_max, sigma)
        width = float(width)
        if not 0.0 < width <= self.r_cut:
            raise ValueError(f"cutoff_width must be in (0, r_cut={self.r_cut}], got {width}")
        self.width = width
        self.neighbor_cutoff = self.r_cut

    def cutoff(self, r: torch.Tensor) -> torch.Tensor:
        return smooth_step_down((r - (self.r_cut - self.width)) / self.width)
