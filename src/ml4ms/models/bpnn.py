"""Atomic neural-network potentials of Behler and Parrinello (and ANI, PANNA).

The energy of a structure is a sum of atomic energies, each given by a small
feed-forward network of the atom's element applied to its standardised descriptor::

    q̂_i = (q_i - mean[Z_i]) / std[Z_i]                       (dimensionless, (F,))
    E_i = s * NN_{Z_i}(q̂_i) + E0[Z_i]                          (eV)
    E   = sum_i E_i                                             (eV)

``q_i`` is a per-atom descriptor (atom-centred symmetry functions by default, or SOAP),
``NN_Z`` one multilayer perceptron per element, ``s`` an energy scale (eV) set from
the training data, and E0 per-element offsets fitted by least squares to the training
energies. With ``anchor_isolated_atom`` the network's value at the descriptor of an
isolated atom, ``NN_Z(q̂_iso[Z])``, is subtracted, so that a lone atom's energy is
exactly E0 -- the right constraint when E0 are isolated-atom energies, a harmful one
when they are fitted to condensed structures. Forces and stress come from
:class:`~ml4ms.models.base.AtomisticModel` by autograd through the descriptor.

References
----------
J. Behler and M. Parrinello, "Generalized neural-network representation of
high-dimensional potential-energy surfaces", Phys. Rev. Lett. 98, 146401 (2007).

J. S. Smith, O. Isayev and A. E. Roitberg, "ANI-1: an extensible neural network
potential with DFT accuracy at force field computational cost", Chem. Sci. 8, 3192
(2017).

R. Lot, F. Pellegrini, Y. Shaidu and E. Küçükbenli, "PANNA: Properties from Artificial
Neural Network Architectures", Comput. Phys. Commun. 256, 107402 (2020).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config import construct
from ..data.graph import AtomicGraph
from ..descriptors.base import Descriptor, atomic_numbers_of
from ..errors import ConfigError
from .base import AtomisticModel, typical_atomic_energy_scale
from .repulsion import build_repulsion

if TYPE_CHECKING:
    from ..data.dataset import AtomsDataset

__all__ = ["ACTIVATIONS", "PRESETS", "AtomicNeuralNetwork", "build_nn_descriptor"]

#: Activation functions by name. ANI uses CELU with alpha = 0.1 (Smith et al. 2017);
#: Behler and Parrinello used tanh; SiLU is smooth and non-saturating.
ACTIVATIONS = {
    "silu": nn.functional.silu,
    "tanh": torch.tanh,
    "celu": lambda x: nn.functional.celu(x, alpha=0.1),
}

#: Ready-made sizes: ``AtomicNeuralNetwork(species, **PRESETS["medium"])``.
#: Feature counts for one element: small 1 + 8 + 2*2*2 = 17, medium 1 + 16 + 4*4*2 = 49,
#: large 1 + 24 + 6*5*2 = 85 (per element pair, see :func:`~ml4ms.descriptors.standard_acsf`).
PRESETS: dict[str, dict[str, Any]] = {
    "small": {
        "descriptor": {"type": "acsf", "r_cut": 5.0, "n_radial": 8, "n_angular": 2,
                       "zetas": [1.0, 4.0]},
        "hidden": [32, 32],
        "activation": "silu",
    },
    "medium": {
        "descriptor": {"type": "acsf", "r_cut": 5.0, "n_radial": 16, "n_angular": 4},
        "hidden": [64, 64],
        "activation": "silu",
    },
    "large": {
        "descriptor": {"type": "acsf", "r_cut": 6.0, "n_radial": 24, "n_angular": 6,
                       "zetas": [1.0, 2.0, 4.0, 8.0, 16.0]},
        "hidden": [128, 128, 64],
        "activation": "silu",
    },
}

_EXPLICIT_ACSF = ("g2_params", "g3_params", "g4_params", "g5_params")
#: Standard deviations below this are treated as constant features (std set to 1).
_STD_FLOOR = 1e-6


def _plain(value: Any) -> Any:
    """JSON-friendly copy: arrays and tuples become lists, NumPy scalars Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | torch.Tensor):
        return np.asarray(value).tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return value


def build_nn_descriptor(config: Mapping[str, Any], species: Sequence[int]) -> Descriptor:
    """The per-atom descriptor of an atomic neural network, from a plain mapping.

    Parameters
    ----------
    config
        ``{"type": "acsf", ...}``: with any of ``g2_params``, ``g3_params``,
        ``g4_params``, ``g5_params`` the arguments of :class:`~ml4ms.descriptors.ACSF`
        (an explicit set), otherwise those of :func:`~ml4ms.descriptors.standard_acsf`
        (``r_cut``, ``n_radial``, ``n_angular``, ``zetas``, ...).
        ``{"type": "soap", ...}``: the arguments of :class:`~ml4ms.descriptors.SOAP`, built
        by :func:`~ml4ms.models.descriptor_potential.build_descriptor` (use
        ``rbf="gto_smooth"`` for forces that are continuous at the cutoff).
        ``species`` is always the model's; ``periodic`` is always True (periodic
        descriptors describe isolated structures too: their graphs have no images).
    species
        Atomic numbers of the model.

    Returns
    -------
    Descriptor
        Per-atom, periodic, float64 (cast to the model's dtype by ``model.to``).

    Raises
    ------
    ConfigError
        Unknown type or keys, ``periodic=False``, or a descriptor that is not per atom.
    """
    config = dict(config)
    kind = str(config.pop("type", "acsf")).lower()
    config.pop("species", None)
    if not config.pop("periodic", True):
        raise ConfigError("descriptor.periodic must be True for a potential: a non-periodic "
                          "descriptor would ignore periodic images of bulk structures")
    if config.pop("dtype", "float64") not in ("float64", torch.float64):
        raise ConfigError("descriptor.dtype: the descriptor follows the model's dtype; "
                          "use model.to(torch.float32) for single precision")
    if kind == "acsf":
        from ..descriptors.acsf import ACSF, standard_acsf

        make = ACSF if any(key in config for key in _EXPLICIT_ACSF) else standard_acsf
        return construct(make, config, section="descriptor", what=make.__name__,
                         species=list(species), periodic=True, dtype="float64")
    if kind == "soap":
        from .descriptor_potential import build_descriptor

        return build_descriptor({**config, "type": "soap", "periodic": True}, species)
    raise ConfigError(f"descriptor.type must be 'acsf' or 'soap'; got {kind!r}")


class AtomicNeuralNetwork(AtomisticModel):
    """Behler-Parrinello atomic neural-network potential: one MLP per element.

    ``E = sum_i s * [NN_{Z_i}(q̂_i) - NN_{Z_i}(q̂_iso[Z_i])] + E0[Z_i]`` (eV), see the module
    documentation. The networks of all elements are held as stacked parameters, one
    ``(S, fan_in, fan_out)`` weight and ``(S, fan_out)`` bias per layer (``S`` elements),
    and evaluated element by element on the atoms of that element (a loop over the
    few elements, never over atoms). Call :meth:`initialize` with the training data
    before training: it fits E0, the feature standardisation and the energy scale.

    Parameters
    ----------
    species
        Elements of the potential, as symbols or atomic numbers.
    descriptor
        Plain mapping naming the per-atom descriptor, ``{"type": "acsf", "r_cut": 5.0}``
        (default) or ``{"type": "soap", ...}``; see :func:`build_nn_descriptor`. Its
        cutoff (Å) is the model's.
    hidden
        Widths of the hidden layers; the output layer (width 1) is added.
    activation
        ``"silu"`` (default), ``"tanh"`` (Behler-Parrinello) or ``"celu"`` (ANI, alpha 0.1).
    seed
        Seed of the weight initialisation (a local generator: the global RNG is untouched).
        Models that differ only in ``seed`` form a committee.
    repulsion
        ``"zbl"`` adds the Ziegler–Biersack–Littmark screened nuclear repulsion, switched off
        smoothly below the shortest distance of each element pair in the training data
        (set by :meth:`initialize`; :class:`~ml4ms.models.repulsion.ZBLRepulsion`), so that
        close contacts the training data never showed stay repulsive in hot MD; the network
        learns the rest. A dict ``{"type": "zbl", ...}`` passes options (e.g.
        ``"range": "covalent"``). None (default): no baseline.
    anchor_isolated_atom
        Subtract the network's value for an isolated atom, so that a lone atom's energy is
        exactly E0. False (default) for E0 fitted to the training data; True for E0 set
        to isolated-atom energies. Files written before this option load anchored.

    Attributes
    ----------
    descriptor : Descriptor
        Maps an AtomicGraph to (N, F) features.
    weights, biases : nn.ParameterList
        Layer ``k``: (S, n_k, n_{k+1}) and (S, n_{k+1}); ``n_0 = F``, last width 1.
    feature_mean, feature_std : Tensor
        Buffers of shape (S, F): per-element standardisation of the features (0 and 1
        until :meth:`initialize`).
    energy_scale : Tensor
        Scalar buffer, eV: multiplies the network output (1 until :meth:`initialize`).

    Notes
    -----
    Parameters and buffers are float64 whatever torch's default dtype;
    ``model.to(torch.float32)`` evaluates in single precision (graphs in float32).

    Weights are drawn from N(0, 1/fan_in) (LeCun normal, as is usual for smooth
    activations), biases are zero: with standardised inputs the pre-activations of every
    layer are of order one at the start of training.

    References
    ----------
    J. Behler and M. Parrinello, Phys. Rev. Lett. 98, 146401 (2007);
    J. S. Smith, O. Isayev and A. E. Roitberg, Chem. Sci. 8, 3192 (2017).

    Examples
    --------
    >>> from ml4ms.models.bpnn import AtomicNeuralNetwork, PRESETS
    >>> model = AtomicNeuralNetwork(["Cu"], **PRESETS["small"])
    >>> model.cutoff, model.n_features
    (5.0, 17)
    """

    def __init__(
        self,
        species: Sequence[int | str],
        descriptor: Mapping[str, Any] = {"type": "acsf", "r_cut": 5.0},  # copied, never mutated
        hidden: Sequence[int] = (64, 64),
        activation: str = "silu",
        seed: int = 0,
        repulsion: str | dict | None = None,
        anchor_isolated_atom: bool = False,
    ) -> None:
        if species is None or len(species) == 0:
            raise ConfigError("an atomic neural network needs its species (the elements it models)")
        numbers = atomic_numbers_of(species)
        if not isinstance(descriptor, Mapping):
            raise ConfigError("descriptor must be a mapping such as "
                              f"{{'type': 'acsf', 'r_cut': 5.0}}, "
                              f"got {type(descriptor).__name__}")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        try:
            widths = [int(h) for h in hidden]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"hidden must be a list of layer widths, got {hidden!r}") from err
        if any(h < 1 for h in widths):
            raise ConfigError(f"hidden layer widths must be >= 1, got {widths}")
        described = build_nn_descriptor(descriptor, numbers)
        super().__init__(cutoff=described.cutoff, species=numbers)
        self._descriptor_config = _plain(dict(descriptor))
        self._descriptor_config.setdefault("type", "acsf")
        self.hidden = widths
        self.activation = activation
        self.seed = int(seed)
        self.repulsion = build_repulsion(repulsion, self.species, self.cutoff)
        self._register_isolated_anchor(anchor_isolated_atom)
        self.descriptor = described.to(torch.float64)
        self.n_features = described.get_number_of_features()
        n_species = len(self.species)

        shape = (n_species, self.n_features)
        self.register_buffer("feature_mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("feature_std", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        # the raw descriptor of a lone atom of each element: derived from the config, so not saved
        self.register_buffer("isolated_features", self._isolated_features(), persistent=False)

        generator = torch.Generator().manual_seed(self.seed)
        sizes = [self.n_features, *widths, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            w = torch.randn(n_species, fan_in, fan_out, generator=generator, dtype=torch.float64)
            self.weights.append(nn.Parameter(w / math.sqrt(fan_in)))
            self.biases.append(nn.Parameter(torch.zeros(n_species, fan_out, dtype=torch.float64)))

    # ------------------------------------------------------------------ configuration
    def get_config(self) -> dict[str, Any]:
        return {
            "descriptor": dict(self._descriptor_config),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "seed": self.seed,
            "repulsion": None if self.repulsion is None else self.repulsion.get_config(),
            "anchor_isolated_atom": self.anchor_isolated_atom,
        }

    def extra_repr(self) -> str:
        from ase.data import chemical_symbols

        elements = ", ".join(chemical_symbols[z] for z in self.species)
        return (f"species=[{elements}], n_features={self.n_features}, hidden={self.hidden}, "
                f"activation={self.activation!r}, cutoff={self.cutoff:g}")

    # ------------------------------------------------------------------ evaluation
    def _isolated_features(self) -> torch.Tensor:
        """(S, F) raw descriptor of a lone atom of each element (zeros for ACSF; not for SOAP)."""
        from ase import Atoms

        atoms = [Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]]) for z in self.species]
        with torch.no_grad():
            graph = AtomicGraph.from_atoms(atoms, self.cutoff, dtype=torch.float64, labels=False)
            return self.descriptor(graph).to(torch.float64)

    def _network(self, x: torch.Tensor, element: int) -> torch.Tensor:
        """Output of element ``element``'s network (species index) on (n, F) inputs: (n,)."""
        act = ACTIVATIONS[self.activation]
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.addmm(b[element], x, w[element])
            if k < last:
                x = act(x)
        return x[:, 0]

    def features(self, graph: AtomicGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised features (N, F) and species index (N,) of every atom of ``graph``."""
        dtype = self.feature_mean.dtype
        channel = self.species_index[graph.numbers]
        # cast: a descriptor may compute in its own precision; the networks use the model's
        q = self.descriptor(graph).to(dtype)
        return (q - self.feature_mean[channel]) / self.feature_std[channel], channel

    def atomic_energies(self, graph: AtomicGraph) -> torch.Tensor:
        """Per-atom energies without E0, shape (N,), eV."""
        x, channel = self.features(graph)
        anchor = self.anchor_isolated_atom
        if anchor:
            reference = (self.isolated_features.to(x.dtype) - self.feature_mean) / self.feature_std
        out = x.new_zeros(x.shape[0])
        for element in range(len(self.species)):
            if len(self.species) == 1:
                rows = None
                inputs = x
            else:
                rows = torch.nonzero(channel == element).reshape(-1)
                if rows.numel() == 0:
                    continue
                inputs = x.index_select(0, rows)
            if anchor:  # the lone atom's row rides along, so a lone atom has exactly E0
                inputs = torch.cat([inputs, reference[element:element + 1]])
            y = self._network(inputs, element)
            if anchor:
                y = y[:-1] - y[-1]
            out = y if rows is None else out.index_copy(0, rows, y)
        out = self.energy_scale.to(x.dtype) * out
        return out if self.repulsion is None else out + self.repulsion(graph).to(out.dtype)

    # ------------------------------------------------------------------ data-dependent set-up
    def initialize(self, data: AtomsDataset, *, batch_size: int = 16) -> None:
        """Set E0, the feature standardisation and the energy scale from the training set.

        * E0: least squares on the composition of the energies the network leaves
          (:meth:`fit_reference_energies`, called last, with the other statistics set).
        * ``feature_mean``, ``feature_std`` (S, F): mean and population standard
          deviation of the descriptor over the training atoms of each element (all atoms
          for an element absent from ``data``); a standard deviation below 1e-6 (a
          constant feature, e.g. a species pair that never occurs) is set to 1.
        * ``energy_scale`` (eV): the RMS force component of the data (eV/Å, used as eV:
          with standardised inputs and unit weights the network's gradient is of order
          one per feature unit, so the initial forces come out on the data's scale);
          without forces the standard deviation of the energy per atom left after E0;
          1 when neither is available or it is zero.

        Parameters
        ----------
        data
            Training structures (never validation or test structures).
        batch_size
            Structures per descriptor batch.
        """
        super().initialize(data)
        n_species, n_features = len(self.species), self.n_features
        # Chan et al.'s pairwise update of count, mean and sum of squared deviations:
        # one pass over the data, stable in float64
        count = torch.zeros(n_species + 1, dtype=torch.float64)
        mean = torch.zeros(n_species + 1, n_features, dtype=torch.float64)
        m2 = torch.zeros(n_species + 1, n_features, dtype=torch.float64)
        with torch.no_grad():
            for graph in data.graphs(self.cutoff, batch_size=batch_size, dtype=torch.float64):
                self.check_elements(graph)
                graph = graph.to(device=self.feature_mean.device)
                q = self.descriptor(graph).to(torch.float64).cpu()
                channel = self.species_index.cpu()[graph.numbers.cpu()]
                for group in range(n_species + 1):
                    part = q if group == n_species else q[channel == group]
                    n_b = part.shape[0]
                    if n_b == 0:
                        continue
                    mean_b = part.mean(0)
                    m2_b = ((part - mean_b) ** 2).sum(0)
                    n_a, total = count[group], count[group] + n_b
                    delta = mean_b - mean[group]
                    mean[group] += delta * (n_b / total)
                    m2[group] += m2_b + delta**2 * (n_a * n_b / total)
                    count[group] = total
        if count[-1] == 0:
            return
        seen = count[:-1] > 0
        mean[:-1][~seen] = mean[-1]
        std = torch.sqrt(m2 / count.clamp_min(1)[:, None])
        std[:-1][~seen] = std[-1]
        std = torch.where(std < _STD_FLOOR, torch.ones_like(std), std)

        scale = typical_atomic_energy_scale(data)
        with torch.no_grad():
            self.feature_mean.copy_(mean[:-1].to(self.feature_mean))
            self.feature_std.copy_(std[:-1].to(self.feature_std))
            self.energy_scale.fill_(scale)
        # The standardised network starts with an offset per element (a bulk atom's
        # features are far from a lone atom's); fold it into E0 so training starts centred.
        self.fit_reference_energies(data, batch_size=batch_size)
