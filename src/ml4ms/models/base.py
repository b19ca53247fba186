"""The potential contract every model family implements.

An :class:`AtomisticModel` maps an :class:`~ml4ms.data.AtomicGraph` to per-atom energies.
Everything else -- total energies, per-element reference energies, forces, stress,
unknown-element checks, saving and loading -- is done here, once, for all families::

    E_i   = atomic_energies(graph)[i] + E0[Z_i]         (eV)
    E     = sum_i E_i over the atoms of each structure  (eV)
    F     = -dE/dR                                      (eV/Å, autograd)
    sigma = (1/V) dE/d(eps)  at eps = 0                 (eV/Å³, autograd; ASE sign)

The stress comes from a symmetric strain ``eps`` applied to positions and cell
(``R -> R (1 + eps)``, ``cell -> cell (1 + eps)``), differentiated by a vector-Jacobian
product: no descriptor Jacobian is ever materialised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import nn

from ..data.graph import AtomicGraph
from ..descriptors.base import atomic_numbers_of
from ..errors import DataError, UnknownElementError

if TYPE_CHECKING:
    from ..data.dataset import AtomsDataset

N_ELEMENTS = 119  # atomic numbers 0..118

_REGISTRY: dict[str, type[AtomisticModel]] = {}


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate ``model`` in eval mode, then give it back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_class(name: str) -> type[AtomisticModel]:
    """The model class registered under ``name`` (its class name)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown model class {name!r}; known: {known}") from None


def _atomic_number(element: int | str) -> int:
    """Atomic number of a symbol ("Cu") or number (29), with a clear error for neither."""
    if isinstance(element, str):
        if element not in chemical_symbols[1:]:
            raise ValueError(f"unknown element symbol {element!r}")
        return chemical_symbols.index(element)
    z = int(element)
    if not 0 < z < N_ELEMENTS:
        raise ValueError(f"atomic number out of range: {z}")
    return z


class AtomisticModel(nn.Module):
    """Base class of all potentials: graph -> per-atom energies -> energies, forces, stress.

    Subclasses implement :meth:`atomic_energies` and :meth:`get_config`, and take the
    entries of ``get_config()`` as keyword arguments of ``__init__`` so that a model
    can be rebuilt from its file. They are registered by class name on definition.

    Parameters
    ----------
    cutoff
        Interaction cutoff, Å. Graphs passed to the model must have been built with
        at least this cutoff.
    species
        Atomic numbers the model knows, or None for a model that takes any element
        (an analytic pair potential, say). Structures holding other elements are
        rejected with :class:`~ml4ms.errors.UnknownElementError`.
    reference_energies
        Per-element reference energies E0, eV, added to each atom's energy: a mapping
        from atomic number or symbol to energy.
    """

    registry_name: ClassVar[str | None] = None
    #: True for models that implement :meth:`uncertainty` (GP, Bayesian ridge, committees).
    supports_uncertainty: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.registry_name or cls.__name__] = cls

    def __init__(
        self,
        cutoff: float,
        species: Sequence[int | str] | None = None,
        reference_energies: dict[int | str, float] | None = None,
    ) -> None:
        super().__init__()
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.cutoff = float(cutoff)
        self.species = None if species is None else atomic_numbers_of(species)
        known = torch.zeros(N_ELEMENTS, dtype=torch.bool)
        # the row of each element in per-element parameters (-1: not the model's)
        index = torch.full((N_ELEMENTS,), -1, dtype=torch.int64)
        if self.species is None:
            known[:] = True
        else:
            known[self.species] = True
            index[self.species] = torch.arange(len(self.species))
        self.register_buffer("known_elements", known, persistent=False)
        self.register_buffer("species_index", index, persistent=False)
        self.register_buffer("reference_energies", torch.zeros(N_ELEMENTS, dtype=torch.float64))
        if reference_energies:
            self.set_reference_energies(reference_energies)

    # ------------------------------------------------------------------ lone atoms
    def _register_isolated_anchor(self, anchor: bool) -> None:
        """For networks that can pin a lone atom's energy to E0 (``anchor_isolated_atom``).

        The choice is also kept as a persistent buffer, so that files written before the
        option existed -- which all anchored -- load with the behaviour they were trained
        with.
        """
        self.anchor_isolated_atom = bool(anchor)
        self.register_buffer("isolated_anchor", torch.tensor(self.anchor_isolated_atom))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        anchored = "isolated_anchor" in self._buffers
        if anchored and prefix + "isolated_anchor" not in state_dict:
            state_dict[prefix + "isolated_anchor"] = torch.tensor(True)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if anchored:
            self.anchor_isolated_atom = bool(self.isolated_anchor)

    # ------------------------------------------------------------------ contract
    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        """Per-atom energies without the reference energies, shape (N,), eV.

        Must be differentiable in ``graph.positions`` and ``graph.cell``; use
        :meth:`AtomicGraph.edge_vectors` for geometry.
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The subclass's own constructor arguments (JSON-serialisable).

        ``cutoff``-defining arguments belong here; ``species`` is added by :attr:`config`
        and the reference energies travel with the weights.
        """
        raise NotImplementedError

    @property
    def config(self) -> dict[str, Any]:
        """All constructor arguments that rebuild this model (with ``species``)."""
        return {**self.get_config(), "species": self.species}

    def initialize(self, data: AtomsDataset) -> None:
        """Data-dependent set-up before gradient training, from the training set only.

        Places the switch window of a short-range repulsion baseline (a ``repulsion``
        module with ``fit_range``) below the shortest distances in ``data``, then sets the
        per-element reference energies E0 (:meth:`fit_reference_energies`), so that the
        network learns the variation around them. Subclasses extend this (feature
        standardisation, the scale of the atomic energies), call ``super()`` first, and
        :meth:`fit_reference_energies` again last if their set-up moved the model's energies.
        """
        repulsion = getattr(self, "repulsion", None)
        if repulsion is not None and hasattr(repulsion, "fit_range"):
            from ..data.dataset import AtomsDataset

            repulsion.fit_range(data if isinstance(data, AtomsDataset) else AtomsDataset(list(data)))
        self.fit_reference_energies(data)

    def fit_reference_energies(self, data: AtomsDataset, batch_size: int = 32) -> dict[str, float]:
        """Set E0 to the least-squares fit of what the model's atomic energies leave of
        the training energies: ``E_k - sum_i e_i ≈ sum_Z n_kZ E0_Z``.

        For a model whose atomic energies start near zero this is the plain composition
        fit (:meth:`AtomsDataset.fit_reference_energies`); for one that starts with an
        offset per element (a network's initial output) it removes the offset, so that
        training starts from centred energies. Returns the new E0, eV, by symbol.
        """
        from ..data.dataset import AtomsDataset

        data = data if isinstance(data, AtomsDataset) else AtomsDataset(list(data))
        counts, species = data.composition_matrix()
        energies = data.energies()
        labelled = np.isfinite(energies)
        if not labelled.any():
            raise DataError("no structure has an energy to fit reference energies to",
                            source=data.source, field="energy")
        device = self.reference_energies.device
        dtype = self.reference_energies.dtype
        model_part = np.zeros(len(data))
        start = 0
        with torch.no_grad(), eval_mode(self):
            for graph in data.graphs(self.cutoff, batch_size=batch_size, dtype=dtype, device=device):
                e = self.atomic_energies(graph)
                total = torch.zeros(graph.n_structures, dtype=e.dtype, device=e.device).index_add(0, graph.batch, e)
                model_part[start:start + graph.n_structures] = total.cpu().numpy()
                start += graph.n_structures
        e0, *_ = np.linalg.lstsq(counts[labelled], (energies - model_part)[labelled], rcond=None)
        values = {chemical_symbols[z]: float(v) for z, v in zip(species, e0)}
        self.set_reference_energies(values)
        return values

    # ------------------------------------------------------------------ E0
    def set_reference_energies(self, energies: dict[int | str, float]) -> None:
        """Set per-element reference energies E0 (eV), keyed by atomic number or symbol."""
        with torch.no_grad():
            for element, value in energies.items():
                self.reference_energies[_atomic_number(element)] = float(value)

    def get_reference_energies(self) -> dict[str, float]:
        """Non-zero per-element reference energies, eV, keyed by symbol."""
        values = self.reference_energies.detach().cpu().numpy()
        return {chemical_symbols[z]: float(values[z]) for z in np.flatnonzero(values)}

    # ------------------------------------------------------------------ evaluation
    def check_elements(self, graph: AtomicGraph) -> None:
        """Raise UnknownElementError, naming the structure, for an element the model does not know."""
        unknown = ~self.known_elements[graph.numbers]
        if bool(unknown.any()):
            atom = int(torch.nonzero(unknown)[0, 0])
            z = int(graph.numbers[atom])
            known = ", ".join(chemical_symbols[s] for s in self.species or [])
            raise UnknownElementError(
                f"element {chemical_symbols[z]} (Z={z}) is not one of the model's elements ({known})",
                index=int(graph.batch[atom]),
                field="numbers",
            )

    def forward(
        self,
        graph: AtomicGraph,
        *,
        compute_forces: bool = True,
        compute_stress: bool = False,
        create_graph: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energies, and forces and stress by autograd.

        Parameters
        ----------
        graph
            The batch of structures.
        compute_forces, compute_stress
            Which derivatives to compute. Stress needs every structure to have a cell
            of non-zero volume.
        create_graph
            Keep the autograd graph of forces and stress (for training on them).
            Defaults to ``self.training``.

        Returns
        -------
        dict
            ``"energy"`` (B,) eV; ``"energies"`` (N,) eV; ``"forces"`` (N, 3) eV/Å if
            asked; ``"stress"`` (B, 3, 3) eV/Å³ if asked (ASE sign: positive = tensile).
        """
        self.check_elements(graph)
        if graph.cutoff < self.cutoff - 1e-12:
            raise ValueError(
                f"the graph was built with cutoff {graph.cutoff} Å < the model's {self.cutoff} Å"
            )
        create_graph = self.training if create_graph is None else create_graph
        positions, cell = graph.positions, graph.cell
        inputs = []
        if compute_forces:
            positions = positions.detach().requires_grad_(True) if not positions.requires_grad else positions
            inputs.append(positions)
        if compute_stress:
            strain = torch.zeros_like(cell, requires_grad=True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("na,nab->nb", positions, symmetric[graph.batch])
            cell = cell + torch.bmm(cell, symmetric)
            inputs.append(strain)
        strained = graph.replace(positions=positions, cell=cell)

        energies = self.atomic_energies(strained)
        energies = energies + self.reference_energies.to(energies.dtype)[graph.numbers]
        energy = torch.zeros(graph.n_structures, dtype=energies.dtype, device=energies.device)
        energy = energy.index_add(0, graph.batch, energies)
        out = {"energy": energy, "energies": energies}
        if inputs:
            if energy.requires_grad:
                grads = torch.autograd.grad(
                    energy.sum(), inputs, create_graph=create_graph, allow_unused=True
                )
            else:  # nothing depends on the geometry (isolated atoms of a many-body model)
                grads = [None] * len(inputs)
            grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
            if compute_forces:
                out["forces"] = -grads[0]
            if compute_stress:
                volumes = graph.volumes()
                if bool((volumes <= 0).any()):
                    index = int(torch.nonzero(volumes <= 0)[0, 0])
                    raise DataError("stress needs a cell of non-zero volume", index=index, field="cell")
                out["stress"] = grads[-1] / volumes.to(energy.dtype)[:, None, None]
        return out

    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        """Predicted standard deviations of the energies, for models with ``supports_uncertainty``.

        Returns
        -------
        dict
            ``"energy"`` (B,) eV: of each structure's total energy; ``"energies"`` (N,) eV:
            of each atom's energy. Calibrated scale included (see the model's documentation).
        """
        raise NotImplementedError(f"{type(self).__name__} does not predict uncertainties")

    def energy_covariance(self, graph: AtomicGraph) -> torch.Tensor:
        """Predicted covariance of the total energies of the structures in ``graph``, eV².

        For models with ``supports_uncertainty``. The off-diagonal terms matter for
        differences of energies (a barrier, a formation energy): errors the structures
        share cancel, so ``var(E_a - E_b) = C_aa + C_bb - 2 C_ab`` is usually far smaller
        than ``C_aa + C_bb``.

        Returns
        -------
        torch.Tensor
            (B, B), eV²; its diagonal is ``uncertainty(graph)["energy"]**2``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not predict uncertainties")

    def calibrate_uncertainty(self, data: AtomsDataset | Sequence) -> float:
        """Scale the predicted standard deviations so that they match errors on held-out data.

        The maximum-likelihood scale of Gaussian errors: ``s² = mean(e_k² / σ_k²)`` over the
        energies of ``data`` (structures the model was not fitted to: a validation split,
        never the test set). Returns ``s`` and stores it in the model's
        ``uncertainty_scale`` buffer, which :meth:`uncertainty` and
        :meth:`energy_covariance` apply.
        """
        from .predict import predict

        if not self.supports_uncertainty or not isinstance(getattr(self, "uncertainty_scale", None),
                                                           torch.Tensor):
            raise NotImplementedError(f"{type(self).__name__} does not predict uncertainties")
        images = list(getattr(data, "images", data))
        images = [a for a in images if "energy" in a.info]
        if not images:
            raise DataError("calibration needs structures with energies", field="energy")
        with torch.no_grad():
            self.uncertainty_scale.fill_(1.0)
        predicted = predict(self, images, compute_stress=False, uncertainty=True)
        errors = predicted.energy - np.array([a.info["energy"] for a in images])
        scale = calibration_scale(errors, predicted.energy_std**2)
        with torch.no_grad():
            self.uncertainty_scale.fill_(scale)
        return scale

    @property
    def elements(self) -> list[str] | None:
        """Symbols of the model's elements, or None when it takes any element."""
        return None if self.species is None else [chemical_symbols[z] for z in self.species]


def calibration_scale(errors: np.ndarray, variance: np.ndarray) -> float:
    """Maximum-likelihood scale of predicted standard deviations: ``sqrt(mean(e² / σ²))``."""
    return float(np.sqrt(np.mean(errors**2 / np.maximum(variance, 1e-300))))


def typical_atomic_energy_scale(data: AtomsDataset) -> float:
    """A scale, eV, for the atomic energies a network should start with, from training data.

    The RMS force component (eV/Å, read as eV per Å of typical displacement, as MACE and
    NequIP do); without forces, the standard deviation of the energy per atom left by
    the composition fit of E0; 1 when neither is available or both vanish.
    """
    statistics = data.statistics()
    if statistics.forces is not None and statistics.forces["rms_component"] > 0:
        return float(statistics.forces["rms_component"])
    counts, _ = data.composition_matrix()
    energies = data.energies()
    labelled = np.isfinite(energies)
    if labelled.sum() >= 2:
        e0, *_ = np.linalg.lstsq(counts[labelled], energies[labelled], rcond=None)
        residual = (energies[labelled] - counts[labelled] @ e0) / counts[labelled].sum(1)
        if np.isfinite(residual.std()) and residual.std() > 0:
            return float(residual.std())
    return 1.0
