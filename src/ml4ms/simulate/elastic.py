"""Elastic constants from stress against strain: of a model, and of labelled data.

Voigt notation throughout: strains and stresses in the order xx, yy, zz, yz, xz, xy, with
engineering shear strains (``ε_4 = 2 ε_yz``), so that ``σ = C ε`` with ``C`` the 6x6
stiffness matrix. Stresses follow ASE's sign (positive = tensile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units

from ..errors import DataError

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")


def voigt_strain_tensor(voigt: np.ndarray) -> np.ndarray:
    """The symmetric 3x3 strain tensor of a Voigt strain (engineering shears)."""
    e = np.asarray(voigt, dtype=float)
    return np.array([[e[0], e[5] / 2, e[4] / 2], [e[5] / 2, e[1], e[3] / 2], [e[4] / 2, e[3] / 2, e[2]]])


def strain_of(cell: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Small-strain Voigt strain (6,) that takes the ``reference`` cell to ``cell`` (rows = vectors).

    The deformation gradient ``F`` solves ``cell = reference Fᵀ``; its symmetric part minus
    the identity is the strain (a rigid rotation of the cell contributes nothing to first order).
    """
    f = np.linalg.solve(np.asarray(reference, float), np.asarray(cell, float)).T
    e = (f + f.T) / 2 - np.eye(3)
    return np.array([e[0, 0], e[1, 1], e[2, 2], 2 * e[1, 2], 2 * e[0, 2], 2 * e[0, 1]])


@dataclass
class ElasticResult:
    """Stiffness matrix ``C`` (6, 6) in GPa, Voigt order xx, yy, zz, yz, xz, xy.

    Data fits only: ``residual_GPa`` is the root-mean-square misfit of the stresses, and
    ``reference`` (3, 3, Å) and ``n_atoms`` are the unstrained cell the strains were
    measured from and the number of atoms of the cells fitted.
    """

    C: np.ndarray
    source: str
    n_points: int
    residual_GPa: float | None = None
    reference: np.ndarray | None = None
    n_atoms: int | None = None

    def cubic(self) -> dict[str, float]:
        """C11, C12 and C44 (GPa), each averaged over its three (six) cubic-equivalent entries."""
        c = self.C
        return {"C11": float(np.mean([c[0, 0], c[1, 1], c[2, 2]])),
                "C12": float(np.mean([c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]])),
                "C44": float(np.mean([c[3, 3], c[4, 4], c[5, 5]]))}

    @property
    def bulk_modulus_GPa(self) -> float:
        """Voigt bulk modulus ``(C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9``, GPa."""
        c = self.C
        return float((c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9)

    def summary(self) -> dict[str, Any]:
        return {"C_GPa": np.round(self.C, 6).tolist(), "voigt_order": list(VOIGT), **self.cubic(),
                "bulk_modulus_voigt_GPa": self.bulk_modulus_GPa, "source": self.source,
                "n_points": self.n_points, "residual_GPa": self.residual_GPa}


def elastic_constants(
    atoms: Atoms,
    *,
    strain: float = 0.005,
    relax_ions: bool = True,
    fmax: float = 1e-3,
) -> ElasticResult:
    """Elastic constants of a model (``atoms.calc``) by central differences of the stress.

    Each of the six Voigt strains is applied at ``±strain``; column ``j`` of ``C`` is
    ``(σ(+ε_j) - σ(-ε_j)) / (2 ε_j)``. Start from a relaxed cell: the residual stress
    then cancels, and so does the first nonlinear term. With ``relax_ions`` the atoms
    relax in each strained cell (the relaxed-ion constants; for crystals whose atoms sit
    at centres of inversion, such as fcc and bcc metals, nothing moves).

    Parameters
    ----------
    atoms
        The crystal, with its calculator (not changed).
    strain
        Amplitude of each strain (engineering strain for shears).
    relax_ions, fmax
        Relax the positions in each strained cell, to ``fmax`` eV/Å.

    Returns
    -------
    ElasticResult
        ``C`` symmetrised, in GPa.
    """
    from .relax import relax

    if atoms.cell.rank < 3:
        raise ValueError("elastic constants need a periodic cell with three lattice vectors")
    if not 0 < strain < 0.1:
        raise ValueError(f"strain must be in (0, 0.1), got {strain}")
    c = np.zeros((6, 6))
    for j in range(6):
        stresses = []
        for sign in (1.0, -1.0):
            voigt = np.zeros(6)
            voigt[j] = sign * strain
            strained = atoms.copy()
            strained.calc = atoms.calc
            strained.set_cell(atoms.cell.array @ (np.eye(3) + voigt_strain_tensor(voigt)), scale_atoms=True)
            if relax_ions and len(strained) > 1:
                relax(strained, fmax=fmax)
            stresses.append(strained.get_stress(voigt=True))
        c[:, j] = (stresses[0] - stresses[1]) / (2 * strain) / units.GPa
    return ElasticResult((c + c.T) / 2, source="model, stress-strain central differences", n_points=12)


def elastic_constants_from_data(
    images: Sequence[Atoms],
    *,
    reference: np.ndarray | None = None,
    max_strain: float = 0.03,
    stresses: np.ndarray | None = None,
) -> ElasticResult:
    """Elastic constants implied by labelled strained cells (e.g. DFT's ``Elastic`` group).

    The stresses are fitted by least squares as ``σ = σ_0 + C ε + D ε²`` (``ε²`` element by
    element), with ``ε`` the strain of each cell relative to ``reference``: ``σ_0`` absorbs
    the residual stress of the reference, and ``D`` the leading nonlinearity, which would
    otherwise leak into ``C`` wherever the strains are not symmetric about zero.

    Parameters
    ----------
    images
        Strained cells with ``info["stress"]`` (Voigt, eV/Å³), all of the same supercell.
    reference
        The unstrained cell (3, 3), Å; default the element-wise median of the cells of the
        images with the most common number of atoms (the strain sets in mlearn change one
        strain component at a time, so the median is the unstrained cell).
    stresses
        (B, 6) Voigt stresses (eV/Å³) to use instead of the labels, e.g. a model's
        predictions for the same cells: the same estimator on model and reference stresses
        compares the two like for like.
    max_strain
        Cells with a larger strain component are left out (the fit is quadratic).

    Returns
    -------
    ElasticResult
        ``C`` symmetrised, GPa; ``residual_GPa`` the RMS stress misfit.
    """
    if stresses is not None:
        stresses = np.asarray(stresses, dtype=float)
        if stresses.shape != (len(images), 6):
            raise ValueError(f"stresses must have shape ({len(images)}, 6), got {stresses.shape}")
        images = [a.copy() for a in images]
        for atoms, stress in zip(images, stresses, strict=True):
            atoms.info["stress"] = stress
    images = [a for a in images if a.info.get("stress") is not None]
    if not images:
        raise DataError("no structure with a stress label; elastic constants need stresses", field="stress")
    sizes = np.array([len(a) for a in images])
    common = np.bincount(sizes).argmax()
    images = [a for a in images if len(a) == common]
    cells = np.array([a.cell.array for a in images])
    reference = np.median(cells, axis=0) if reference is None else np.asarray(reference, float)
    strains = np.array([strain_of(cell, reference) for cell in cells])
    keep = np.abs(strains).max(1) <= max_strain
    strains = strains[keep]
    stresses = np.array([np.asarray(a.info["stress"], float) for a, k in zip(images, keep, strict=True) if k])
    if len(strains) < 7 or np.linalg.matrix_rank(strains) < 6:
        raise DataError(f"{len(strains)} strained cells within max_strain={max_strain} do not span the six "
                        "strain components; elastic constants need at least one cell strained in each",
                        field="cell")
    design = np.hstack([np.ones((len(strains), 1)), strains, strains**2])
    solution, *_ = np.linalg.lstsq(design, stresses / units.GPa, rcond=None)
    c = solution[1:7].T
    residual = float(np.sqrt(np.mean((design @ solution - stresses / units.GPa) ** 2)))
    return ElasticResult((c + c.T) / 2, source="data, least-squares stress-strain", n_points=len(strains),
                         residual_GPa=residual, reference=reference, n_atoms=int(common))
