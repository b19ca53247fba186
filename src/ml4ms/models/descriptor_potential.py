"""Potentials linear in their weights over a per-atom descriptor, fitted in closed form.

``E = Σ_i [φ(q_i) · w + E0(Z_i)] (+ an optional two-body term)``: the descriptor ``q_i``
(SOAP) of each atom goes through a :mod:`feature map <ml4ms.models.feature_maps>`
``φ`` whose weights ``w`` are fitted, together with those of the two-body term, by one
regularised least-squares solve over energies, forces and stresses
(:class:`~ml4ms.models.solve.StreamingLeastSquares`). The force and stress rows come from
the descriptor's per-edge derivatives (:meth:`~ml4ms.descriptors.SOAP.edge_jacobian`),
contracted with ``∂φ/∂q`` structure by structure, so memory stays linear in the number of
atoms. Because the problem is Gaussian, the same factorisation gives the posterior of the
weights, hence a predictive standard deviation for every energy (:meth:`uncertainty`).

Subclasses (:class:`~ml4ms.models.linear.LinearPotential`,
:class:`~ml4ms.models.gap.SparseGPPotential`) choose the feature map and its prior.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.linalg
import torch
from tqdm.auto import tqdm

from ..data.dataset import AtomsDataset
from ..data.graph import AtomicGraph
from ..descriptors.base import Descriptor, atomic_numbers_of
from ..config import construct
from ..errors import ConfigError, DataError
from ..keys import FORCES, GROUP, STRESS
from .base import AtomisticModel, calibration_scale
from .feature_maps import FeatureMap
from .linear_pair import LinearPairPotential
from .observations import Observations, ReducedObservations
from .solve import StreamingLeastSquares

#: Descriptors a closed-form potential can be built on, by ``descriptor.type``.
DESCRIPTORS = {"soap": ("ml4ms.descriptors.soap", "SOAP")}
#: Working memory for the edge rows of one chunk, bytes.
_CHUNK_BYTES = 16 * 2**20


def build_descriptor(config: Mapping[str, Any], species: Sequence[int]) -> Descriptor:
    """The descriptor a ``{"type": "soap", ...arguments}`` mapping names, for ``species``."""
    import importlib

    config = dict(config)
    kind = str(config.pop("type", "soap")).lower()
    if kind not in DESCRIPTORS:
        raise ConfigError(f"descriptor.type must be one of {', '.join(DESCRIPTORS)}; got {kind!r}")
    config.pop("species", None)
    config.setdefault("periodic", True)
    module, name = DESCRIPTORS[kind]
    cls = getattr(importlib.import_module(module), name)
    descriptor = construct(cls, config, section="descriptor", what=name, species=list(species))
    if not descriptor.per_atom:
        raise ConfigError("the descriptor of a potential must be per atom (average='off')")
    return descriptor


class DescriptorPotential(AtomisticModel):
    """Base class of closed-form potentials ``E = Σ_i φ(q_i)·w + E0 (+ two-body)``.

    Parameters
    ----------
    species
        Elements of the potential.
    descriptor
        ``{"type": "soap", ...}``: the descriptor's constructor arguments (its species are
        the potential's). SOAP with ``rbf="gto_smooth"`` gives continuous forces.
    pair
        Arguments of a :class:`~ml4ms.models.LinearPairPotential` added as a two-body term
        (GAP's ``distance_2b``), or None.
    """

    supports_uncertainty = True

    def __init__(self, species: Sequence[int | str], descriptor: Mapping[str, Any],
                 pair: Mapping[str, Any] | None = None) -> None:
        numbers = atomic_numbers_of(species)
        self._descriptor_config = dict(descriptor)
        described = build_descriptor(descriptor, numbers)
        self._pair_config = None if pair is None else dict(pair)
        pair_model = None if pair is None else LinearPairPotential(species=numbers, **pair)
        cutoff = max(described.cutoff, pair_model.cutoff if pair_model else 0.0)
        super().__init__(cutoff=cutoff, species=numbers)
        self.descriptor = described
        self.pair = pair_model
        self.feature_map = self.make_feature_map(described.get_number_of_features(), len(self.species))
        n = self.n_parameters
        self.register_buffer("weights", torch.zeros(self.feature_map.n_basis, dtype=torch.float64))
        # basis of an isolated atom of each element, subtracted so that its energy is E0
        self.register_buffer("isolated_basis", torch.zeros(len(self.species), self.feature_map.n_basis,
                                                           dtype=torch.float64))
        # Cholesky factor of the posterior precision of [pair weights, weights]
        self.register_buffer("posterior_factor", torch.zeros(n, n, dtype=torch.float64))
        self.register_buffer("uncertainty_scale", torch.ones((), dtype=torch.float64))
        #: what the last fit did: timings, sizes, automatic regularisation
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------ to override
    def make_feature_map(self, n_features: int, n_channels: int) -> FeatureMap:
        raise NotImplementedError

    def prepare(self, data: AtomsDataset, features: torch.Tensor, channel: torch.Tensor) -> None:
        """Fit-time set-up from the (N, F) features of all training atoms (scales, sparse points)."""

    def prior_factor(self, alpha: float) -> np.ndarray:
        """``U`` of the prior penalty of the feature-map weights (pair weights excluded)."""
        return math.sqrt(alpha) * self.feature_map.prior_factor()

    def extra_variance(self, q: torch.Tensor, channel: torch.Tensor, batch: torch.Tensor | None,
                       n_groups: int) -> torch.Tensor | None:
        """Variance not captured by the weights' posterior (a sparse GP's DTC term), eV²."""
        return None

    def extra_covariance(self, q: torch.Tensor, channel: torch.Tensor, batch: torch.Tensor,
                         n_groups: int) -> torch.Tensor | None:
        """(B, B) covariance of structure energies not captured by the weights' posterior, eV²."""
        return None

    # ------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor.get_config() | {"type": "soap"}, "pair": self._pair_config}

    @property
    def n_pair_parameters(self) -> int:
        return 0 if self.pair is None else self.pair.weights.numel()

    @property
    def n_parameters(self) -> int:
        return self.n_pair_parameters + self.feature_map.n_basis

    # ------------------------------------------------------------ evaluation
    def _channel(self, graph: AtomicGraph) -> torch.Tensor:
        return self.species_index[graph.numbers]

    def _basis(self, q: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        """φ(q) - φ(isolated atom): the atom's basis relative to its isolated-atom value."""
        phi = self.feature_map(q, channel)
        return phi - self.isolated_basis.to(phi.dtype)[channel]

    def _set_isolated_basis(self) -> None:
        from ase import Atoms

        atoms = [Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]]) for z in self.species]
        with torch.no_grad():
            self.isolated_basis.zero_()
            graph = self.descriptor.graph(atoms)
            self.isolated_basis.copy_(self.feature_map(self.descriptor(graph), self._channel(graph)))

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        q = self.descriptor(graph)
        phi = self._basis(q, self._channel(graph))
        energies = phi @ self.weights.to(phi.dtype)
        if self.pair is not None:
            energies = energies + self.pair.atomic_energies(graph)
        return energies

    def atom_design(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom basis rows (N, P_total) of [pair, feature map] and the descriptor (N, F)."""
        q = self.descriptor(graph)
        phi = self._basis(q, self._channel(graph))
        if self.pair is not None:
            phi = torch.cat([self.pair.atom_design(graph), phi], 1)
        return phi, q

    @torch.no_grad()
    def uncertainty(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        """Predictive standard deviations of total and atomic energies, eV.

        The posterior of the weights (precision ``R^T R``) gives ``φ^T (R^T R)^{-1} φ``
        by one triangular solve; a sparse GP adds the variance its sparse points do not
        represent (the DTC term ``k** - k*^T K_MM^{-1} k*``), which grows away from the
        training data. Both are multiplied by ``uncertainty_scale²``, set by
        :meth:`calibrate_uncertainty` on validation data (1 until then).

        Returns
        -------
        dict
            ``"energy"`` (B,) and ``"energies"`` (N,), eV.
        """
        self.check_elements(graph)
        phi, q = self.atom_design(graph)
        r = self.posterior_factor.to(phi.dtype)
        n_structures = graph.n_structures
        per_structure = phi.new_zeros(n_structures, phi.shape[1]).index_add(0, graph.batch, phi)
        rows = torch.cat([per_structure, phi])
        solved = torch.linalg.solve_triangular(r.T, rows.T, upper=False)  # R^{-T} φ
        variance = (solved**2).sum(0)
        channel = self._channel(graph)
        extra_atoms = self.extra_variance(q, channel, None, 0)
        if extra_atoms is not None:
            extra_structures = self.extra_variance(q, channel, graph.batch, n_structures)
            variance = variance + torch.cat([extra_structures, extra_atoms])
        std = variance.clamp_min(0).sqrt() * self.uncertainty_scale.to(phi.dtype)
        return {"energy": std[:n_structures], "energies": std[n_structures:]}

    @torch.no_grad()
    def energy_covariance(self, graph: AtomicGraph) -> torch.Tensor:
        """Predicted covariance (B, B) of the structures' total energies, eV².

        ``Φᵀ (RᵀR)⁻¹ Φ`` over the structures' summed basis rows, plus (sparse GP) the DTC
        covariance, times ``uncertainty_scale²``; see :meth:`uncertainty`.
        """
        self.check_elements(graph)
        phi, q = self.atom_design(graph)
        n_structures = graph.n_structures
        per_structure = phi.new_zeros(n_structures, phi.shape[1]).index_add(0, graph.batch, phi)
        solved = torch.linalg.solve_triangular(self.posterior_factor.to(phi.dtype).T, per_structure.T, upper=False)
        covariance = solved.T @ solved
        extra = self.extra_covariance(q, self._channel(graph), graph.batch, n_structures)
        if extra is not None:
            covariance = covariance + extra
        return covariance * self.uncertainty_scale.to(phi.dtype) ** 2

    # ------------------------------------------------------------ fit
    def design(self, graph: AtomicGraph) -> dict[str, torch.Tensor]:
        """Derivatives of energies, forces and stresses with respect to [pair weights, weights].

        Returns
        -------
        dict
            ``"energy"`` (B, P), ``"forces"`` (N, 3, P), ``"stress"`` (B, 3, 3, P) (zeros
            for cells of zero volume), without the reference energies.
        """
        jac = self.descriptor.edge_jacobian(graph)
        channel = self._channel(graph)
        n_basis = self.feature_map.n_basis
        n_struct, n_atoms = graph.n_structures, len(graph.numbers)
        phi = self._basis(jac.features, channel)
        dtype = phi.dtype
        energy = phi.new_zeros(n_struct, n_basis).index_add(0, graph.batch, phi)
        forces = phi.new_zeros(n_atoms, 3, n_basis)
        virial = phi.new_zeros(n_struct, 3, 3, n_basis)
        edge_structure = graph.batch[jac.centre]
        chunk = max(1, _CHUNK_BYTES // (24 * max(n_basis, 1)))
        for start in range(0, len(jac.centre), chunk):
            part = slice(start, start + chunk)
            centre, neighbour = jac.centre[part], jac.neighbour[part]
            g = self.feature_map.edge_rows(jac.features, channel, centre, jac.gradient[part])
            # F_k = -dE/dr_k, and v_e = r_j - r_i: + at the centre, - at the neighbour
            forces.index_add_(0, centre, g)
            forces.index_add_(0, neighbour, g, alpha=-1.0)
            # edges come sorted by structure: one (3, E_b) x (E_b, 3 P) product per structure
            vectors, owner = jac.vectors[part].to(dtype), edge_structure[part]
            structures, counts = torch.unique_consecutive(owner, return_counts=True)
            for b, v, gb in zip(structures.tolist(), vectors.split(counts.tolist()),
                                g.split(counts.tolist()), strict=True):
                virial[b] += (v.T @ gb.reshape(len(gb), -1)).view(3, 3, n_basis).transpose(0, 1)
        volumes = graph.volumes().to(dtype)
        stress = torch.where(volumes[:, None, None, None] > 0,
                             virial / volumes.clamp_min(1e-30)[:, None, None, None], 0.0)
        out = {"energy": energy, "forces": forces, "stress": stress}
        if self.pair is not None:
            pair = self.pair.design(graph)
            out = {key: torch.cat([pair[key].to(dtype), value], -1) for key, value in out.items()}
        return out

    def fit(
        self,
        data: AtomsDataset | Sequence,
        *,
        energy_sigma: float = 0.001,
        force_sigma: float = 0.05,
        stress_sigma: float | None = 0.01,
        alpha: float = 1.0,
        pair_alpha: float = 1e-4,
        group_sigmas: Mapping[str, Mapping[str, float]] | None = None,
        validation: AtomsDataset | Sequence | float | None = None,
        search: Mapping[str, Sequence] | None = None,
        seed: int = 0,
        batch_size: int = 8,
        progress: bool = False,
    ) -> DescriptorPotential:
        """Fit the weights to energies, forces and stresses in one least-squares solve.

        Every observation is divided by its expected error, as in GAP: energies per
        atom by ``energy_sigma`` (eV/atom), force components by ``force_sigma`` (eV/Å),
        stress components by ``stress_sigma`` (eV/Å³; None ignores stresses). The
        reference energies E0 are fitted first by least squares on the composition (the
        mean energy per atom for one element); the weights then fit what remains.

        Parameters
        ----------
        data
            Training structures with energies (forces and stresses used when present
            and weighted).
        alpha
            Strength of the prior on the feature-map weights (ridge for a linear map; a
            multiplier of ``K_MM`` for a sparse GP, 1 meaning the GP prior itself).
        pair_alpha
            Ridge on the two-body weights (in units of the weighted residual).
        group_sigmas
            Per structure group (``atoms.info["config_type"]``): ``{"Surface": {"energy":
            0.005}}`` overrides any of ``energy``, ``forces``, ``stress`` for that group.
        validation
            Held-out structures, or the fraction of ``data`` to hold out (split by
            ``seed``, that fraction of each ``config_type`` group). They choose the hyper-parameters of ``search`` and calibrate the
            predicted uncertainties (:attr:`uncertainty_scale`); the final weights are then
            fitted to training and validation structures together.
        search
            Candidate values, e.g. ``{"energy_sigma": [5e-4, 1e-3], "alpha": [0.1, 1]}``, of
            any of ``energy_sigma``, ``force_sigma``, ``stress_sigma``, ``alpha``; every
            combination is solved (the rows are built once) and scored on the validation
            structures by ``E_MAE / min(E_MAE) + F_MAE / min(F_MAE)``. Holds out 10 % when
            ``validation`` is None.
        seed
            Seed of the validation split.
        batch_size
            Structures per batch while building the rows.
        progress
            Show progress bars.

        Returns
        -------
        self
            With :attr:`fit_info` recording sizes, timings, the search and the chosen values.
        """
        start_time = time.perf_counter()
        data = data if isinstance(data, AtomsDataset) else AtomsDataset(data)
        chosen = {"energy_sigma": energy_sigma, "force_sigma": force_sigma,
                  "stress_sigma": stress_sigma, "alpha": alpha}
        search = {k: list(v) for k, v in (search or {}).items()}
        unknown = set(search) - set(chosen)
        if unknown:
            raise ConfigError(f"search: unknown keys {sorted(unknown)}; allowed: {', '.join(chosen)}")
        if search and validation is None:
            validation = 0.1
        if isinstance(validation, float):
            if not 0 < validation < 1:
                raise ConfigError(f"validation fraction must be in (0, 1), got {validation}")
            train, held_out = data.split([1 - validation, validation], seed=seed, stratify=GROUP)
        else:
            train = data
            held_out = None if validation is None else (
                validation if isinstance(validation, AtomsDataset) else AtomsDataset(validation))
        self._check_species(data)
        for combination in [chosen] + [{**chosen, k: v} for k, vs in search.items() for v in vs]:
            _check_labels(data, _structure_sigmas(data, combination["energy_sigma"], combination["force_sigma"],
                                                  combination["stress_sigma"], group_sigmas))
        self.reference_energies.zero_()
        self.set_reference_energies(train.fit_reference_energies())
        features, channel = self._training_features(train, batch_size)
        self.prepare(train, features, channel)
        self._set_isolated_basis()
        del features
        prepared = time.perf_counter()

        n_pair = self.n_pair_parameters
        observed = self._observations(train, batch_size, progress, extra=False)
        held = None if held_out is None else self._observations(held_out, batch_size, progress, extra=True)
        rows_built = time.perf_counter()

        # Rows sharing a sigma in every solve are folded once; each solve below then
        # factorises a few (P+1)-row blocks instead of all observations.
        def labels_of(images) -> np.ndarray:
            return np.array([str(a.info.get(GROUP)) if group_sigmas else "" for a in images], dtype=str)

        train_labels = labels_of(train.images)
        reduced = observed.reduce(train_labels)
        n_observations = len(observed.energy) + len(observed.forces) + len(observed.stress)
        del observed

        def solve(obs: ReducedObservations, values: Mapping[str, Any], sigma_data: AtomsDataset,
                  labels: np.ndarray):
            sigmas = _structure_sigmas(sigma_data, values["energy_sigma"], values["force_sigma"],
                                       values["stress_sigma"], group_sigmas)
            by_label = {label: sigmas[np.flatnonzero(labels == label)[0]] for label in np.unique(labels)}
            prior = np.zeros((self.n_parameters, self.n_parameters))
            if n_pair:
                prior[:n_pair, :n_pair] = math.sqrt(pair_alpha) * np.eye(n_pair)
            prior[n_pair:, n_pair:] = self.prior_factor(values["alpha"])
            solver = StreamingLeastSquares(prior)
            for rows, targets, count in obs.weighted(by_label):
                solver.add(rows, targets, count=count)
            weights, factor = solver.solve()
            return weights, factor, solver.regularisation_added

        trials = []
        if search:
            names = list(search)
            grid = [dict(zip(names, combination)) for combination in itertools.product(*search.values())]
            for values in tqdm(grid, desc="hyper-parameter search", disable=not progress):
                candidate = {**chosen, **values}
                weights, _, _ = solve(reduced, candidate, train, train_labels)
                trials.append({**candidate, **held.errors(weights)})
            best = _best_trial(trials)
            chosen = {k: best[k] for k in chosen}

        scale = 1.0
        if held is not None:  # calibrate on structures the weights have not seen
            weights, factor, _ = solve(reduced, chosen, train, train_labels)
            if len(held.energy):
                solved = scipy.linalg.solve_triangular(factor.T, held.energy.T, lower=True)
                variance = (solved**2).sum(0) + held.energy_extra_variance
                errors = held.energy @ weights - held.energy_target
                scale = calibration_scale(errors, variance)
            validation_errors = held.errors(weights)
            n_observations += len(held.energy) + len(held.forces) + len(held.stress)
            held_labels = labels_of(held_out.images)
            reduced = reduced.merged(held.reduce(held_labels))
            train_labels = np.concatenate([train_labels, held_labels])
            train = AtomsDataset(train.images + held_out.images, source=data.source)
        solution, factor, added = solve(reduced, chosen, train, train_labels)
        with torch.no_grad():
            if n_pair:
                self.pair.weights.copy_(torch.as_tensor(solution[:n_pair]).reshape(self.pair.weights.shape))
            self.weights.copy_(torch.as_tensor(solution[n_pair:]))
            self.posterior_factor.copy_(torch.as_tensor(factor))
            self.uncertainty_scale.fill_(scale)
        self.fit_info = {
            "n_structures": len(data), "n_atoms": int(sum(len(a) for a in data)),
            "n_validation": 0 if held_out is None else len(held_out),
            "n_observations": int(n_observations),
            "n_parameters": self.n_parameters, "chosen": chosen, "uncertainty_scale": scale,
            "seconds_setup": prepared - start_time, "seconds_rows": rows_built - prepared,
            "seconds_total": time.perf_counter() - start_time, "regularisation_added": added,
        }
        if held is not None:
            self.fit_info["validation"] = validation_errors
        if trials:
            self.fit_info["search"] = trials
        return self

    def _check_species(self, data: AtomsDataset) -> None:
        _, species = data.composition_matrix()
        unknown = set(species) - set(self.species)
        if unknown:
            raise DataError(f"the data hold elements the model was not built for: {sorted(unknown)}",
                            source=data.source, field="numbers")
        absent = set(self.species) - set(species)
        if absent:
            raise DataError(f"the model's elements {sorted(absent)} do not occur in the training data",
                            source=data.source, field="numbers")

    def _observations(self, data: AtomsDataset, batch_size: int, progress: bool, extra: bool) -> Observations:
        observed = Observations()
        first = 0
        n_batches = -(-len(data) // batch_size)
        batches = data.graphs(self.cutoff, batch_size=batch_size, dtype=torch.float64)
        for graph in tqdm(batches, total=n_batches, desc="fit rows", disable=not progress):
            variance = None
            if extra:
                with torch.no_grad():
                    q = self.descriptor(graph)
                    variance = self.extra_variance(q, self._channel(graph), graph.batch, graph.n_structures)
            observed.add(self.design(graph), graph, self.reference_energies, first, variance)
            first += graph.n_structures
        return observed.finish(self.n_parameters)

    def _training_features(self, data: AtomsDataset, batch_size: int):
        parts, channels = [], []
        with torch.no_grad():
            for graph in data.graphs(self.descriptor.cutoff, batch_size=4 * batch_size, dtype=torch.float64):
                parts.append(self.descriptor(graph))
                channels.append(self._channel(graph))
        return torch.cat(parts), torch.cat(channels)


# ---------------------------------------------------------------------- helpers
def _structure_sigmas(data: AtomsDataset, energy: float, forces: float, stress: float | None,
                      groups: Mapping[str, Mapping[str, float]] | None) -> np.ndarray:
    """(n_structures, 3) sigmas of energy per atom, force component and stress component
    (inf where a quantity is not fitted)."""
    for name, value in (("energy_sigma", energy), ("force_sigma", forces), ("stress_sigma", stress)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    base = np.array([energy, forces, np.inf if stress is None else stress], dtype=float)
    out = np.tile(base, (len(data), 1))
    for group, values in (groups or {}).items():
        bad = set(values) - {"energy", "forces", "stress"}
        if bad:
            raise ConfigError(f"group_sigmas.{group}: unknown keys {sorted(bad)}; "
                              "allowed: energy, forces, stress")
        members = [k for k, a in enumerate(data.images) if str(a.info.get(GROUP)) == group]
        for column, key in enumerate(("energy", "forces", "stress")):
            if key in values:
                value = values[key]
                if value is not None and not value > 0:
                    raise ConfigError(f"group_sigmas.{group}.{key} must be positive, got {value}")
                out[members, column] = np.inf if value is None else value
    return out


def _check_labels(data: AtomsDataset, sigmas: np.ndarray) -> None:
    """Weighted forces must be present: a data set without them is a mistake, not a choice."""
    has_forces = [FORCES in a.arrays for a in data.images]
    if np.isfinite(sigmas[:, 1]).any() and not any(has_forces):
        raise DataError("forces are weighted (force_sigma) but no training structure has forces; "
                        "set force_sigma: null to fit energies only", source=data.source, field=FORCES)
    has_stress = [STRESS in a.info for a in data.images]
    if np.isfinite(sigmas[:, 2]).any() and not any(has_stress):
        raise DataError("stresses are weighted (stress_sigma) but no training structure has a stress; "
                        "set stress_sigma: null", source=data.source, field=STRESS)


def _best_trial(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial with the smallest sum of validation errors, each relative to its best value."""
    score = np.zeros(len(trials))
    for key in ("energy_mae", "forces_mae"):
        values = np.array([t.get(key, np.nan) for t in trials])
        if np.isfinite(values).any():
            score += values / np.nanmin(values)
    return trials[int(np.nanargmin(score))]
