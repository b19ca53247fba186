"""A two-body potential linear in its parameters, fitted in closed form.

The energy of a structure is a sum over pairs of a radial function expanded in a
fixed basis, one set of coefficients per unordered pair of elements::

    E = sum_Z n_Z E0_Z + 1/2 sum_{i != j, r_ij < rc} sum_k w[t(Z_i, Z_j), k] phi_k(r_ij)
    phi_k(r) = exp(-(r - mu_k)^2 / (2 s^2)) * fc(r),   fc(r) = (1 + cos(pi r / rc)) / 2

Energies, forces and stresses are all linear in ``w`` and ``E0``, so a weighted,
regularised least-squares problem fits them together, exactly (no iterations), as
GAP's 2-body term and SNAP-style linear models are fitted. It is the simplest
potential that learns from forces and stresses, and the baseline every richer
model must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.dataset import AtomsDataset
from ..data.graph import AtomicGraph
from ..keys import VOIGT_COLUMNS, VOIGT_ROWS
from .base import AtomisticModel


class LinearPairPotential(AtomisticModel):
    """Linear two-body potential on a Gaussian radial basis with a smooth cutoff.

    Parameters
    ----------
    species
        Atomic numbers of the elements the potential describes.
    cutoff
        Cutoff radius, Å. Energies and forces go to zero smoothly at the cutoff.
    n_basis
        Number of Gaussians, centred evenly from ``r_min`` to ``cutoff``.
    r_min
        Centre of the first Gaussian, Å (about the shortest distance in the data).
    width
        Gaussian width ``s``, Å; default the spacing of the centres.

    Examples
    --------
    >>> from ml4ms.data import AtomsDataset                         # doctest: +SKIP
    >>> train = AtomsDataset.from_dataset("mlearn", element="Cu", split="train")
    >>> model = LinearPairPotential(species=[29], cutoff=5.0).fit(train)
    """

    def __init__(
        self,
        species: Sequence[int | str],
        cutoff: float = 5.0,
        n_basis: int = 16,
        r_min: float = 1.5,
        width: float | None = None,
    ) -> None:
        super().__init__(cutoff=cutoff, species=species)
        if n_basis < 1:
            raise ValueError(f"n_basis must be >= 1, got {n_basis}")
        if not 0 < r_min < cutoff:
            raise ValueError(f"r_min must be in (0, cutoff), got {r_min}")
        self.n_basis, self.r_min = int(n_basis), float(r_min)
        spacing = (self.cutoff - self.r_min) / max(self.n_basis - 1, 1)
        self.width = float(spacing if width is None else width)
        n_species = len(self.species)
        self.register_buffer("centers", torch.linspace(self.r_min, self.cutoff, self.n_basis,
                                                       dtype=torch.float64), persistent=False)
        # (pair type, basis function); types are unordered pairs min*S + max.
        self.weights = nn.Parameter(torch.zeros(n_species * n_species, self.n_basis, dtype=torch.float64))

    def get_config(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "n_basis": self.n_basis, "r_min": self.r_min, "width": self.width}

    @property
    def n_pair_types(self) -> int:
        return len(self.species) ** 2

    # ------------------------------------------------------------ basis
    def basis(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Basis values and their derivatives in r, each of shape (E, n_basis)."""
        x = (r[:, None] - self.centers.to(r.dtype)) / self.width
        gauss = torch.exp(-0.5 * x * x)
        d_gauss = -x / self.width * gauss
        fc = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0)
        d_fc = -0.5 * math.pi / self.cutoff * torch.sin(math.pi * r / self.cutoff)
        inside = (r < self.cutoff)[:, None]
        phi = torch.where(inside, gauss * fc[:, None], 0.0)
        d_phi = torch.where(inside, d_gauss * fc[:, None] + gauss * d_fc[:, None], 0.0)
        return phi, d_phi

    def pair_types(self, graph: AtomicGraph) -> torch.Tensor:
        s = self.species_index[graph.numbers]
        si, sj = s[graph.edge_index[0]], s[graph.edge_index[1]]
        return torch.minimum(si, sj) * len(self.species) + torch.maximum(si, sj)

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        r = torch.linalg.vector_norm(graph.edge_vectors(), dim=1)
        phi, _ = self.basis(r)
        edge_energy = (phi * self.weights.to(phi.dtype)[self.pair_types(graph)]).sum(1)
        energies = torch.zeros(len(graph.numbers), dtype=r.dtype, device=r.device)
        return energies.index_add(0, graph.edge_index[0], 0.5 * edge_energy)

    # ------------------------------------------------------------ design matrix
    @torch.no_grad()
    def atom_design(self, graph: AtomicGraph) -> torch.Tensor:
        """Derivatives of the atomic energies with respect to the weights, (N, n_pair_types * n_basis)."""
        r = torch.linalg.vector_norm(graph.edge_vectors(), dim=1)
        phi, _ = self.basis(r)
        k = self.n_basis
        n_params = self.n_pair_types * k
        columns = self.pair_types(graph)[:, None] * k + torch.arange(k, device=r.device)
        out = torch.zeros(len(graph.numbers) * n_params, dtype=r.dtype, device=r.device)
        flat = graph.edge_index[0][:, None] * n_params + columns
        out.index_add_(0, flat.reshape(-1), (0.5 * phi).reshape(-1))
        return out.reshape(len(graph.numbers), n_params)

    @torch.no_grad()
    def design(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        """Derivatives of energies, forces and stresses with respect to the weights.

        Returns
        -------
        dict
            ``"energy"`` (B, P), ``"forces"`` (N, 3, P) and ``"stress"`` (B, 3, 3, P)
            with ``P = n_pair_types * n_basis``; stress only for cells of non-zero volume
            (zeros elsewhere). Memory is linear in the number of atoms and edges.
        """
        vectors = graph.edge_vectors()
        r = torch.linalg.vector_norm(vectors, dim=1)
        phi, d_phi = self.basis(r)
        n_types, k = self.n_pair_types, self.n_basis
        n_params = n_types * k
        # Each edge touches the K columns of its pair type only: scatter into those.
        columns = self.pair_types(graph)[:, None] * k + torch.arange(k, device=r.device)
        i, j = graph.edge_index
        b = graph.batch[i]
        n_struct, n_atoms = graph.n_structures, len(graph.numbers)
        dtype = r.dtype
        energy = torch.zeros(n_struct * n_params, dtype=dtype)
        energy.index_add_(0, (b[:, None] * n_params + columns).reshape(-1), (0.5 * phi).reshape(-1))
        # dE/dR_j = 1/2 w phi'(r) d/r from edge (i, j); the reverse edge gives the same again.
        unit = vectors / r[:, None]
        grad = 0.5 * d_phi[:, None, :] * unit[:, :, None]  # (E, 3, K)
        forces = torch.zeros(n_atoms * 3 * n_params, dtype=dtype)
        xyz = torch.arange(3)[None, :, None] * n_params
        for atom, sign in ((j, -1.0), (i, 1.0)):
            flat = atom[:, None, None] * 3 * n_params + xyz + columns[:, None, :]
            forces.index_add_(0, flat.reshape(-1), (sign * grad).reshape(-1))
        volumes = graph.volumes()
        virial = 0.5 * d_phi[:, None, None, :] * (vectors[:, :, None] * unit[:, None, :])[..., None]
        stress = torch.zeros(n_struct * 9 * n_params, dtype=dtype)
        ab = torch.arange(9).reshape(3, 3)[None, :, :, None] * n_params
        flat = b[:, None, None, None] * 9 * n_params + ab + columns[:, None, None, :]
        stress.index_add_(0, flat.reshape(-1), virial.reshape(-1))
        stress = stress.reshape(n_struct, 3, 3, n_params)
        stress = torch.where(volumes[:, None, None, None] > 0,
                             stress / volumes.clamp_min(1e-30)[:, None, None, None], 0.0)
        return {"energy": energy.reshape(n_struct, n_params),
                "forces": forces.reshape(n_atoms, 3, n_params), "stress": stress}

    def fit(
        self,
        data: AtomsDataset | Sequence,
        *,
        energy_sigma: float = 0.002,
        force_sigma: float = 0.05,
        stress_sigma: float | None = 0.005,
        alpha: float = 1e-6,
        batch_size: int = 16,
        progress: bool = False,
    ) -> LinearPairPotential:
        """Fit weights and per-element reference energies by weighted ridge regression.

        Each observation is weighted by the inverse of its expected error, as GAP does:
        energies per atom by ``energy_sigma`` (eV/atom), force components by
        ``force_sigma`` (eV/Å), stress components by ``stress_sigma`` (eV/Å³; None to
        ignore stresses). Labels a structure lacks are skipped.

        Parameters
        ----------
        data
            Training structures (an :class:`AtomsDataset` or a list of labelled ``Atoms``).
        alpha
            Ridge penalty on the pair weights (not on the reference energies), in units of
            the weighted residual.
        batch_size
            Structures per batch while building the design matrix.
        progress
            Show a progress bar.

        Returns
        -------
        self
        """
        data = data if isinstance(data, AtomsDataset) else AtomsDataset(data)
        counts, species = data.composition_matrix()
        unknown = set(species) - set(self.species)
        if unknown:
            raise ValueError(f"the data hold elements the model was not built for: {sorted(unknown)}")
        absent = set(self.species) - set(species)
        if absent:  # their E0 and pair terms would be silently zero
            raise ValueError(f"the model's elements {sorted(absent)} do not occur in the training data")
        comp = np.zeros((len(data), len(self.species)))
        comp[:, [self.species.index(z) for z in species]] = counts
        n_params = self.n_pair_types * self.n_basis
        rows, targets = [], []
        start = 0
        batches = data.graphs(self.cutoff, batch_size=batch_size, dtype=torch.float64)
        n_batches = -(-len(data) // batch_size)
        for graph in tqdm(batches, total=n_batches, desc="design matrix", disable=not progress):
            d = self.design(graph)
            n_atoms = graph.n_atoms.double()
            n_struct = graph.n_structures
            block_comp = torch.as_tensor(comp[start:start + n_struct])
            start += n_struct
            if graph.energy is not None:
                has = torch.isfinite(graph.energy)
                scale = 1.0 / (energy_sigma * n_atoms[has])
                rows.append(torch.cat([d["energy"][has], block_comp[has]], 1) * scale[:, None])
                targets.append(graph.energy[has] * scale)
            if graph.forces is not None:
                has = torch.isfinite(graph.forces).all(1)
                f = d["forces"][has].reshape(-1, n_params)
                rows.append(torch.cat([f, torch.zeros(len(f), len(self.species), dtype=f.dtype)], 1) / force_sigma)
                targets.append(graph.forces[has].reshape(-1) / force_sigma)
            if stress_sigma is not None and graph.stress is not None:
                has = torch.isfinite(graph.stress).all((1, 2)) & (graph.volumes() > 0)
                voigt = d["stress"][has][:, VOIGT_ROWS, VOIGT_COLUMNS].reshape(-1, n_params)
                rows.append(torch.cat([voigt, torch.zeros(len(voigt), len(self.species), dtype=voigt.dtype)], 1)
                            / stress_sigma)
                targets.append(graph.stress[has][:, VOIGT_ROWS, VOIGT_COLUMNS].reshape(-1)
                               / stress_sigma)
        if not rows:
            raise ValueError("the data have no energies, forces or stresses to fit")
        a = torch.cat(rows).numpy()
        y = torch.cat(targets).numpy()
        # Ridge by augmentation and a QR-based least-squares solve: no normal equations,
        # so the conditioning is that of A, not of A^T A.
        penalty = np.zeros((n_params, a.shape[1]))
        penalty[:, :n_params] = np.sqrt(alpha) * np.eye(n_params)
        solution, *_ = np.linalg.lstsq(np.vstack([a, penalty]), np.concatenate([y, np.zeros(n_params)]),
                                       rcond=None)
        with torch.no_grad():
            self.weights.copy_(torch.as_tensor(solution[:n_params]).reshape(self.weights.shape))
            self.reference_energies.zero_()
            self.reference_energies[self.species] = torch.as_tensor(solution[n_params:])
        return self
