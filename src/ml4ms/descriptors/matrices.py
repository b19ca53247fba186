"""Coulomb and sine matrices: per-structure descriptors, numerically equal to DScribe's.

The Coulomb matrix of a structure with atomic numbers ``Z`` and positions ``R`` (Å) is
(Rupp et al., Phys. Rev. Lett. 108, 058301 (2012))

.. math::

    C_{ii} = \\tfrac12 Z_i^{2.4}, \\qquad C_{ij} = \\frac{Z_i Z_j}{|R_i - R_j|} \\quad (i \\ne j),

in units of e² / Å (atomic numbers over Å, as in DScribe, not Hartree). The sine
matrix (Faber et al., Int. J. Quantum Chem. 115, 1094 (2015)) replaces the inverse
distance by a periodic function of the lattice ``B`` (rows = lattice vectors, Å):

.. math::

    S_{ij} = \\frac{Z_i Z_j}{\\left|\\, \\sin^2\\!\\left(\\pi (R_j - R_i) B^{-1}\\right) B \\,\\right|}
    \\quad (i \\ne j), \\qquad S_{ii} = \\tfrac12 Z_i^{2.4},

with ``sin²`` taken element-wise on the fractional displacement.

Both are padded with zeros to ``n_atoms_max x n_atoms_max`` and flattened row by row,
after one of DScribe's permutations:

- ``"none"``: the atoms' order;
- ``"sorted_l2"``: rows and columns sorted by descending row L2 norm (stable);
- ``"eigenspectrum"``: only the eigenvalues, sorted by descending absolute value,
  zero-padded to length ``n_atoms_max``;
- ``"random"``: sorted by row norms plus Gaussian noise of standard deviation ``sigma``
  (Montavon et al., NIPS 25 (2012)), drawn from a generator seeded by ``seed``.

The features are differentiable in positions (and, for the sine matrix, in the cell)
by autograd; with a sorting permutation they are piecewise smooth (the order is
fixed where it is evaluated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch
from ase import Atoms

from ..data.graph import AtomicGraph
from ..errors import ConfigError, DataError
from .base import Descriptor

__all__ = ["CoulombMatrix", "SineMatrix"]

_PERMUTATIONS = ("none", "sorted_l2", "eigenspectrum", "random")


class _Matrix(Descriptor):
    """Shared machinery of the matrix descriptors (padding, permutations, checks)."""

    #: the name used in error messages
    _name = "matrix"

    def __init__(
        self,
        n_atoms_max: int,
        permutation: str = "sorted_l2",
        sigma: float | None = None,
        seed: int | None = None,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(n_atoms_max, bool) or not isinstance(n_atoms_max, (int, np.integer)) \
                or n_atoms_max <= 0:
            raise ConfigError(f"n_atoms_max must be a positive integer, got {n_atoms_max!r}")
        if permutation not in _PERMUTATIONS:
            raise ConfigError(
                f"unknown permutation {permutation!r}; use one of {', '.join(_PERMUTATIONS)}"
            )
        if permutation == "random":
            if sigma is None or not (float(sigma) > 0 and np.isfinite(float(sigma))):
                raise ConfigError(f"permutation='random' needs a noise sigma > 0, got {sigma!r}")
        elif sigma is not None:
            raise ConfigError("sigma applies to permutation='random' only")
        self.n_atoms_max = int(n_atoms_max)
        self.permutation = permutation
        self.sigma = None if sigma is None else float(sigma)
        self.seed = seed
        self.sparse = bool(sparse)
        self.species = None
        self.cutoff = None
        self.random_state = np.random.default_rng(seed)

    # ------------------------------------------------------------------ contract
    @property
    def per_atom(self) -> bool:
        return False

    def get_number_of_features(self) -> int:
        if self.permutation == "eigenspectrum":
            return self.n_atoms_max
        return self.n_atoms_max**2

    def feature_labels(self) -> list[str]:
        if self.permutation == "eigenspectrum":
            return [f"eigenvalue {k}" for k in range(self.n_atoms_max)]
        n = self.n_atoms_max
        return [f"{self._name} ({i}, {j})" for i in range(n) for j in range(n)]

    def extra_repr(self) -> str:
        extra = f", sigma={self.sigma:g}, seed={self.seed}" if self.permutation == "random" else ""
        return f"n_atoms_max={self.n_atoms_max}, permutation={self.permutation!r}{extra}"

    def unflatten(self, features: np.ndarray) -> np.ndarray:
        """Features of shape (..., n_atoms_max²) back to matrices (..., n_atoms_max, n_atoms_max)."""
        if self.permutation == "eigenspectrum":
            raise ValueError("the eigenspectrum is not a matrix")
        features = np.asarray(features.todense() if scipy.sparse.issparse(features) else features)
        return features.reshape(*features.shape[:-1], self.n_atoms_max, self.n_atoms_max)

    # ------------------------------------------------------------------ checks
    def check_structure(self, atoms: Atoms, index: int | None = None) -> None:
        super().check_structure(atoms, index)
        if len(atoms) > self.n_atoms_max:
            raise DataError(
                f"the structure has {len(atoms)} atoms, more than n_atoms_max={self.n_atoms_max}",
                index=index, field="numbers",
            )

    def create(self, system: Atoms | Sequence[Atoms], n_jobs: int = 1,
               only_physical_cores: bool = False, verbose: bool = False):
        """The flattened, zero-padded matrices (or eigenspectra) as NumPy arrays.

        Parameters
        ----------
        system
            One :class:`ase.Atoms` or a list of them.
        n_jobs, only_physical_cores, verbose
            See :meth:`Descriptor.create`. With ``permutation="random"``, structures are
            processed in one thread so that the noise is drawn in their order.

        Returns
        -------
        ndarray or scipy.sparse.csr_matrix
            Shape (F,) for one structure, (n_structures, F) for a list, with ``F =
            n_atoms_max²`` (``n_atoms_max`` for the eigenspectrum). With ``sparse=True`` a
            CSR matrix with one row per structure (DScribe returns a ``sparse.COO``).
        """
        single = isinstance(system, Atoms)
        images = [system] if single else list(system)
        for k, atoms in enumerate(images):  # errors name the structure's index in the input
            self.check_structure(atoms, None if single else k)
        if self.permutation == "random":
            n_jobs = 1
        out = super().create(system, n_jobs=n_jobs, only_physical_cores=only_physical_cores,
                             verbose=verbose)
        if self.sparse:
            return scipy.sparse.csr_matrix(np.atleast_2d(out))
        return out

    # ------------------------------------------------------------------ features
    def _padded(self, graph: AtomicGraph):
        """Positions (B, n, 3), atomic numbers (B, n) and a mask of real atoms (B, n)."""
        positions = graph.positions
        if not bool(torch.isfinite(positions).all()):
            atom = int(torch.nonzero(~torch.isfinite(positions).all(dim=1))[0, 0])
            raise DataError(f"positions contain NaN or inf (atom {atom})",
                            index=int(graph.batch[atom]), field="positions")
        n_structures = graph.n_structures
        counts = graph.n_atoms
        if n_structures and int(counts.max()) > self.n_atoms_max:
            k = int(torch.argmax((counts > self.n_atoms_max).to(torch.int8)))
            raise DataError(
                f"the structure has {int(counts[k])} atoms, more than n_atoms_max={self.n_atoms_max}",
                index=k, field="numbers",
            )
        n = self.n_atoms_max
        offsets = torch.cumsum(counts, 0) - counts
        slot = graph.batch * n + torch.arange(positions.shape[0], device=positions.device) \
            - offsets[graph.batch]
        padded = positions.new_zeros(n_structures * n, 3).index_copy(0, slot, positions)
        z = positions.new_zeros(n_structures * n).index_copy(0, slot, graph.numbers.to(positions.dtype))
        mask = torch.zeros(n_structures * n, dtype=torch.bool, device=positions.device)
        mask[slot] = True
        return padded.reshape(n_structures, n, 3), z.reshape(n_structures, n), mask.reshape(n_structures, n)

    def _assemble(self, z: torch.Tensor, mask: torch.Tensor, inverse_distance: torch.Tensor) -> torch.Tensor:
        """``Z_i Z_j / d_ij`` off the diagonal, ``Z_i^2.4 / 2`` on it, zero on padding."""
        n = z.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        pair = mask[:, :, None] & mask[:, None, :]
        off = pair & ~eye
        zz = z[:, :, None] * z[:, None, :]
        diagonal = torch.diag_embed(0.5 * z.clamp_min(0) ** 2.4)
        return torch.where(off, zz * inverse_distance, diagonal)

    def _permute(self, matrix: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the permutation option; (B, n, n) -> (B, F)."""
        n_structures, n = matrix.shape[:2]
        if self.permutation == "eigenspectrum":
            values = torch.linalg.eigvalsh(matrix)
            order = torch.argsort(-values.abs().detach(), dim=1, stable=True)
            return torch.gather(values, 1, order)
        if self.permutation == "none":
            return matrix.reshape(n_structures, n * n)
        with torch.no_grad():
            norms = torch.linalg.vector_norm(matrix, dim=2)
            if self.permutation == "random":
                noise = self.random_state.normal(0.0, self.sigma, size=tuple(norms.shape))
                norms = norms + torch.as_tensor(noise, dtype=norms.dtype, device=norms.device)
            # padding rows go last, real rows by descending (noisy) norm, ties in atom order
            norms = torch.where(mask, norms, torch.tensor(-torch.inf, dtype=norms.dtype,
                                                          device=norms.device))
            order = torch.argsort(-norms, dim=1, stable=True)
        rows = torch.gather(matrix, 1, order[:, :, None].expand(-1, -1, n))
        both = torch.gather(rows, 2, order[:, None, :].expand(-1, n, -1))
        return both.reshape(n_structures, n * n)


class CoulombMatrix(_Matrix):
    """The Coulomb matrix of Rupp et al., zero-padded and flattened as DScribe does.

    Parameters
    ----------
    n_atoms_max
        Largest number of atoms of any structure: the matrix is padded with zeros to
        ``n_atoms_max x n_atoms_max``.
    permutation
        ``"sorted_l2"`` (default), ``"none"``, ``"eigenspectrum"`` or ``"random"``;
        see :mod:`ml4ms.descriptors.matrices`.
    sigma
        Standard deviation of the noise added to the row norms for
        ``permutation="random"`` (required then, forbidden otherwise).
    seed
        Seed of the noise generator (``numpy.random.default_rng``); the noise for
        successive structures is drawn in sequence, so a descriptor created with the
        same seed gives the same features for the same calls. None: fresh entropy.
    sparse
        :meth:`create` returns a ``scipy.sparse.csr_matrix``.

    Notes
    -----
    Entries are in e²/Å (atomic numbers over Å): ``C_ii = Z_i^2.4 / 2``, ``C_ij =
    Z_i Z_j / |R_i - R_j|``. Periodic boundary conditions are ignored, as in DScribe;
    use :class:`SineMatrix` for crystals. Coincident atoms are an error.

    References
    ----------
    M. Rupp, A. Tkatchenko, K.-R. Müller, O. A. von Lilienfeld, "Fast and accurate
    modeling of molecular atomization energies with machine learning", Phys. Rev.
    Lett. 108, 058301 (2012). G. Montavon et al., "Learning invariant representations
    of molecules for atomization energy prediction", NIPS 25 (2012).

    Examples
    --------
    >>> from ase.build import molecule
    >>> CoulombMatrix(n_atoms_max=5).create(molecule("H2O")).shape
    (25,)
    """

    _name = "Coulomb matrix"

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Features of each structure, shape (B, F), in e²/Å."""
        positions, z, mask = self._padded(graph)
        n = self.n_atoms_max
        eye = torch.eye(n, dtype=torch.bool, device=positions.device)
        off = mask[:, :, None] & mask[:, None, :] & ~eye
        difference = positions[:, None, :, :] - positions[:, :, None, :]
        # a safe value where the distance is not used, so that no 0/0 reaches autograd
        difference = torch.where(off[..., None], difference, torch.ones_like(difference))
        distance = torch.linalg.vector_norm(difference, dim=-1)
        _check_distinct(distance, off, graph, "atoms coincide")
        return self._permute(self._assemble(z, mask, 1.0 / distance), mask)


class SineMatrix(_Matrix):
    """The sine matrix of Faber et al. for periodic crystals, zero-padded and flattened as DScribe does.

    Parameters
    ----------
    n_atoms_max, permutation, sigma, seed, sparse
        As in :class:`CoulombMatrix`.

    Notes
    -----
    Every structure is treated as periodic in all three directions (as in DScribe),
    whatever its ``pbc``: it needs a cell of non-zero volume. Entries are in e²/Å:
    ``S_ii = Z_i^2.4 / 2``, ``S_ij = Z_i Z_j / |sin²(π (R_j - R_i) B⁻¹) B|``. They
    are differentiable in positions and cell (strain) by autograd. Atoms on the same
    lattice site (including periodic images of one another) are an error.

    References
    ----------
    F. Faber, A. Lindmaa, O. A. von Lilienfeld, R. Armiento, "Crystal structure
    representations for machine learning models of formation energies",
    Int. J. Quantum Chem. 115, 1094 (2015).

    Examples
    --------
    >>> from ase.build import bulk
    >>> SineMatrix(n_atoms_max=2).create(bulk("NaCl", "rocksalt", a=5.64)).shape
    (4,)
    """

    _name = "sine matrix"

    def check_structure(self, atoms: Atoms, index: int | None = None) -> None:
        super().check_structure(atoms, index)
        cell = atoms.cell.array
        if not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < 1e-9 * max(1.0, np.abs(cell).max()) ** 3:
            raise DataError("the sine matrix needs a cell of non-zero volume (three lattice vectors)",
                            index=index, field="cell")

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Features of each structure, shape (B, F), in e²/Å."""
        positions, z, mask = self._padded(graph)
        cell = graph.cell
        volume = torch.linalg.det(cell.detach()).abs()
        scale = cell.detach().abs().amax(dim=(1, 2)).clamp_min(1.0)
        if bool((~(volume >= 1e-9 * scale**3)).any()):
            k = int(torch.nonzero(~(volume >= 1e-9 * scale**3))[0, 0])
            raise DataError("the sine matrix needs a cell of non-zero volume (three lattice vectors)",
                            index=k, field="cell")
        n = self.n_atoms_max
        eye = torch.eye(n, dtype=torch.bool, device=positions.device)
        off = mask[:, :, None] & mask[:, None, :] & ~eye
        fractional = torch.linalg.solve(cell.transpose(1, 2), positions.transpose(1, 2)).transpose(1, 2)
        difference = fractional[:, None, :, :] - fractional[:, :, None, :]  # (B, n, n, 3)
        sines = torch.sin(torch.pi * difference) ** 2
        vectors = torch.einsum("bija,bac->bijc", sines, cell)
        vectors = torch.where(off[..., None], vectors, torch.ones_like(vectors))
        phi = torch.linalg.vector_norm(vectors, dim=-1)
        _check_distinct(phi, off, graph, "atoms sit on the same lattice site (periodic images)")
        return self._permute(self._assemble(z, mask, 1.0 / phi), mask)


def _check_distinct(distance: torch.Tensor, off: torch.Tensor, graph: AtomicGraph, what: str) -> None:
    """Raise a DataError naming the structure where a used distance is (numerically) zero."""
    bad = off & ~(distance.detach() > 1e-10)
    if bool(bad.any()):
        k, i, j = (int(v) for v in torch.nonzero(bad)[0])
        raise DataError(f"{what}: atoms {i} and {j} are at distance 0, the matrix would be infinite",
                        index=k, field="positions")
