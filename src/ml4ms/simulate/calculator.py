"""ASE calculator for any :class:`~ml4ms.models.AtomisticModel`."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ..data.graph import AtomicGraph
from ..data.neighbors import neighbor_list
from ..models.base import AtomisticModel, eval_mode


class Calculator(_AseCalculator):
    """ASE calculator that evaluates an ml4ms model.

    Parameters
    ----------
    model
        An :class:`~ml4ms.models.AtomisticModel`, or the path of a model file
        written by :func:`ml4ms.save`.
    device
        Torch device to evaluate on (``"cpu"``, ``"cuda"``); default the model's.
    dtype
        Floating-point dtype of the evaluation; default the model's.

    Notes
    -----
    The calculator shares the model it is given (so a model that keeps training is seen
    as it changes) unless another device or dtype is asked for, in which case it works on
    a converted copy; it never changes the caller's model, nor its training mode.

    Results, in ASE units: ``energy`` and ``free_energy`` (eV, equal: the model has no
    electronic entropy), ``energies`` (N,) eV, ``forces`` (N, 3) eV/Å and ``stress``
    (6,) eV/Å³ in Voigt order (xx, yy, zz, yz, xz, xy), positive = tensile. Stress is
    available for cells of non-zero volume only.

    For a model with ``supports_uncertainty``, also ``energy_std`` (eV, the predicted
    standard deviation of the energy) and ``energies_std`` ((N,) eV, of each atom's
    energy), computed only when asked for
    (``atoms.calc.get_property("energy_std", atoms)``), never by ``get_forces()`` and
    the like, so that molecular dynamics does not pay for them. For other models they
    are not among the :attr:`implemented_properties`.

    Examples
    --------
    >>> from ase.build import bulk
    >>> from ml4ms.models import LennardJones
    >>> from ml4ms.simulate import Calculator
    >>> atoms = bulk("Ar", "fcc", a=5.26)
    >>> atoms.calc = Calculator(LennardJones(sigma=3.4, epsilon=0.0104))
    >>> round(atoms.get_potential_energy(), 4)
    -0.0799
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    #: Added to :attr:`implemented_properties` for a model with ``supports_uncertainty``.
    uncertainty_properties = ("energy_std", "energies_std")

    def __init__(
        self,
        model: AtomisticModel | str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(model, AtomisticModel):
            from ..serialization import load

            model = load(model)
        reference = model.reference_energies
        self.device = reference.device if device is None else torch.device(device)
        self.dtype = reference.dtype if dtype is None else dtype
        if (self.device, self.dtype) != (reference.device, reference.dtype):
            model = copy.deepcopy(model).to(device=self.device, dtype=self.dtype)
        self.model = model
        if model.supports_uncertainty:
            # Per instance: ASE reports a property the model cannot give as not implemented.
            self.implemented_properties = [*type(self).implemented_properties, *self.uncertainty_properties]

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and atoms.cell.rank < 3:
            raise PropertyNotImplementedError("stress needs a cell with three lattice vectors")
        want_std = any(name in self.uncertainty_properties for name in properties)
        if want_std and not self.model.supports_uncertainty:
            raise PropertyNotImplementedError(
                f"{type(self.model).__name__} does not predict uncertainties (energy_std, energies_std)"
            )
        # Stress comes almost for free with forces; compute it whenever the cell allows,
        # so that a later get_stress() needs no second evaluation.
        compute_stress = atoms.cell.rank == 3
        nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, self.model.cutoff)
        graph = AtomicGraph.from_atoms(
            atoms, self.model.cutoff, dtype=self.dtype, device=self.device,
            neighbor_lists=[nl], labels=False,
        )
        # ASE keeps results only while the atoms are unchanged: an uncertainty asked for
        # after the energy of the same geometry needs no second forward pass.
        if want_std and not system_changes and "energy" in self.results:
            self.results.update(self._uncertainty(graph))
            return
        with eval_mode(self.model):
            out = self.model(graph, compute_forces=True, compute_stress=compute_stress, create_graph=False)
        energy = float(out["energy"].detach().cpu()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["energies"].detach().cpu().numpy().astype(np.float64),
            "forces": out["forces"].detach().cpu().numpy().astype(np.float64),
        }
        if compute_stress:
            stress = out["stress"].detach().cpu().numpy()[0].astype(np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        if want_std:
            self.results.update(self._uncertainty(graph))

    def energy_covariance(self, images: Sequence[Atoms]) -> np.ndarray:
        """Predicted covariance of the total energies of ``images``, eV², shape (B, B).

        What an error bar on an energy *difference* needs: ``var(E_a - E_b) = C_aa + C_bb
        - 2 C_ab`` (see :meth:`ml4ms.models.AtomisticModel.energy_covariance`).
        """
        if not self.model.supports_uncertainty:
            raise PropertyNotImplementedError(f"{type(self.model).__name__} does not predict uncertainties")
        graph = AtomicGraph.from_atoms(list(images), self.model.cutoff, dtype=self.dtype, device=self.device,
                                       labels=False)
        with eval_mode(self.model), torch.no_grad():
            covariance = self.model.energy_covariance(graph)
        covariance = covariance.detach().cpu().numpy().astype(np.float64)
        return (covariance + covariance.T) / 2  # exact symmetry despite round-off in the DTC term

    def _uncertainty(self, graph: AtomicGraph) -> dict[str, float | np.ndarray]:
        """``energy_std`` (float, eV) and ``energies_std`` ((N,) float64, eV) of one structure."""
        with eval_mode(self.model), torch.no_grad():
            out = self.model.uncertainty(graph)
        return {
            "energy_std": float(out["energy"].detach().cpu()[0]),
            "energies_std": out["energies"].detach().cpu().numpy().astype(np.float64),
        }

