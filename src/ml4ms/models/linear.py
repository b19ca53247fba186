"""Linear and quadratic potentials in a descriptor (SNAP- and qSNAP-like), Bayesian ridge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..data.dataset import AtomsDataset
from .descriptor_potential import DescriptorPotential
from .feature_maps import FeatureMap, LinearMap, QuadraticMap


class LinearPotential(DescriptorPotential):
    """Atomic energy linear (or quadratic) in a SOAP descriptor, fitted by Bayesian ridge.

    ``E_i = w_Z · u_i (+ u_i^T W_Z u_i) + E0_Z``, ``u = q / s`` with ``s`` each
    feature's root mean square over the training atoms, one set of weights per central
    element ``Z`` -- the SNAP recipe (Thompson et al., J. Comput. Phys. 285, 316 (2015))
    with SOAP in place of the bispectrum (the power spectrum is its three-body analogue),
    and qSNAP's quadratic terms (Wood & Thompson, J. Chem. Phys. 148, 241721 (2018)).

    The weights are the posterior mean of Bayesian linear regression with Gaussian noise
    of the given sigmas and a Gaussian prior of precision ``alpha`` on each weight; the
    posterior covariance is kept, so every prediction has a standard deviation
    (:meth:`uncertainty`, calibrated by :meth:`calibrate_uncertainty`).

    Parameters
    ----------
    species
        Elements of the potential.
    descriptor
        SOAP arguments, e.g. ``{"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5,
        "rbf": "gto_smooth"}``.
    quadratic
        Add all products of pairs of features (use a compact descriptor: P grows as F²/2).
    pair
        Arguments of an added :class:`~ml4ms.models.LinearPairPotential` two-body term.

    Examples
    --------
    >>> from ml4ms.data import AtomsDataset                                  # doctest: +SKIP
    >>> train = AtomsDataset.from_dataset("mlearn", element="Cu", split="train")
    >>> model = LinearPotential(["Cu"], {"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5,
    ...                                  "rbf": "gto_smooth"}).fit(train, alpha=1e-6)
    """

    def __init__(self, species: Sequence[int | str], descriptor: Mapping[str, Any],
                 quadratic: bool = False, pair: Mapping[str, Any] | None = None) -> None:
        self.quadratic = bool(quadratic)
        super().__init__(species, descriptor, pair)

    def make_feature_map(self, n_features: int, n_channels: int) -> FeatureMap:
        return (QuadraticMap if self.quadratic else LinearMap)(n_features, n_channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "quadratic": self.quadratic}

    def prepare(self, data: AtomsDataset, features: torch.Tensor, channel: torch.Tensor) -> None:
        self.feature_map.set_scale(features)
