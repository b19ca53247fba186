"""Batched evaluation of a model on many structures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from tqdm.auto import tqdm

from ..data.graph import AtomicGraph, consecutive_batches
from ..errors import UnknownElementError
from ..keys import VOIGT_COLUMNS, VOIGT_ROWS
from .base import AtomisticModel, eval_mode


@dataclass
class Predictions:
    """Model outputs for a list of structures, in ASE units.

    Attributes
    ----------
    energy
        ndarray of shape (n_structures,), eV.
    forces
        list of ndarrays of shape (n_atoms_k, 3), eV/Å.
    stress
        ndarray of shape (n_structures, 6), eV/Å³, Voigt (xx, yy, zz, yz, xz, xy);
        NaN for structures without a 3-D cell. None when not computed.
    n_atoms
        ndarray of shape (n_structures,), int.
    energy_std
        ndarray of shape (n_structures,), eV: the model's predicted standard deviation of
        each structure's total energy. None when not computed (see :func:`predict`).
    energies_std
        list of ndarrays of shape (n_atoms_k,), eV: predicted standard deviations of the
        atomic energies. None when not computed.
    """

    energy: np.ndarray
    forces: list[np.ndarray]
    stress: np.ndarray | None
    n_atoms: np.ndarray
    energy_std: np.ndarray | None = None
    energies_std: list[np.ndarray] | None = None


def predict(
    model: AtomisticModel,
    images: Sequence[Atoms],
    *,
    compute_stress: bool = True,
    max_atoms_per_batch: int = 4096,
    device: str | torch.device | None = None,
    progress: bool = False,
    uncertainty: bool | None = None,
) -> Predictions:
    """Energies, forces and stresses of many structures, evaluated in batches.

    Parameters
    ----------
    model
        Any ml4ms model.
    images
        The structures; their labels are ignored.
    compute_stress
        Compute stresses (for structures with a 3-D cell).
    max_atoms_per_batch
        Memory bound: batches hold at most this many atoms.
    device
        Device to evaluate on; default the model's.
    progress
        Show a progress bar.
    uncertainty
        Also predict the standard deviations of the energies
        (:attr:`Predictions.energy_std`, :attr:`Predictions.energies_std`). None: when the
        model supports it (:attr:`AtomisticModel.supports_uncertainty`).

    Raises
    ------
    ValueError
        ``uncertainty=True`` for a model that does not predict uncertainties.
    """
    if uncertainty is None:
        uncertainty = bool(model.supports_uncertainty)
    elif uncertainty and not model.supports_uncertainty:
        raise ValueError(f"{type(model).__name__} does not predict uncertainties "
                         "(supports_uncertainty is False); call predict with uncertainty=False")
    with eval_mode(model):
        return _predict(model, images, compute_stress, max_atoms_per_batch, device, progress, uncertainty)


def _uncertainty(model: AtomisticModel, graph: AtomicGraph) -> tuple[np.ndarray, np.ndarray]:
    """(B,) and (N,) standard deviations, eV, checked against the graph's shape."""
    # A separate, gradient-free pass: the forward pass's autograd graph (hence the
    # forces) is left exactly as it is without uncertainty.
    with torch.no_grad():
        out = model.uncertainty(graph)
    energy = out["energy"].detach().cpu().numpy().astype(np.float64).reshape(-1)
    energies = out["energies"].detach().cpu().numpy().astype(np.float64).reshape(-1)
    if energy.shape != (graph.n_structures,) or energies.shape != (len(graph.numbers),):
        raise ValueError(
            f"{type(model).__name__}.uncertainty returned shapes {energy.shape} and {energies.shape}; "
            f"expected ({graph.n_structures},) and ({len(graph.numbers)},)"
        )
    return energy, energies


def _predict(model, images, compute_stress, max_atoms_per_batch, device, progress,
             uncertainty=False) -> Predictions:
    reference = model.reference_energies
    device = reference.device if device is None else torch.device(device)
    dtype = reference.dtype
    n = len(images)
    energy = np.zeros(n)
    forces: list[np.ndarray] = [np.zeros((0, 3))] * n
    stress = np.full((n, 6), np.nan) if compute_stress else None
    energy_std = np.zeros(n) if uncertainty else None
    energies_std: list[np.ndarray] | None = [np.zeros(0)] * n if uncertainty else None
    periodic = np.array([a.cell.rank == 3 for a in images], dtype=bool)
    groups = consecutive_batches([len(a) for a in images], max_atoms_per_batch)
    for group in tqdm(groups, desc="predict", disable=not progress, unit="batch"):
        # Structures without a 3-D cell get no stress; evaluate them in batches of their own kind.
        for kind in (True, False):
            members = [k for k in group if periodic[k] == kind]
            if not members:
                continue
            graph = AtomicGraph.from_atoms([images[k] for k in members], model.cutoff,
                                           dtype=dtype, device=device, labels=False)
            try:
                out = model(graph, compute_forces=True, compute_stress=compute_stress and kind,
                            create_graph=False)
            except UnknownElementError as error:  # name the structure in the caller's list
                raise UnknownElementError(error.message, index=members[error.index],
                                          field=error.field) from None
            energy[members] = out["energy"].detach().cpu().numpy()
            split = np.cumsum([len(images[k]) for k in members])[:-1]
            for k, f in zip(members, np.split(out["forces"].detach().cpu().numpy(), split)):
                forces[k] = f
            if compute_stress and kind:
                s = out["stress"].detach().cpu().numpy()
                stress[members] = s[:, VOIGT_ROWS, VOIGT_COLUMNS]
            if uncertainty:
                std, atom_std = _uncertainty(model, graph)
                energy_std[members] = std
                for k, a in zip(members, np.split(atom_std, split)):
                    energies_std[k] = a
    return Predictions(energy=energy, forces=forces, stress=stress,
                       n_atoms=np.array([len(a) for a in images]),
                       energy_std=energy_std, energies_std=energies_std)
