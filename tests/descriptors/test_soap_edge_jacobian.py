"""SOAP's per-edge Jacobian: the derivative closed-form fits build force and stress rows from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from ml4ms.descriptors import SOAP


def _structures():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    cu.numbers[::3] = 8
    cu.rattle(0.1, seed=3)
    tri = Atoms("CuOCu", scaled_positions=[[0, 0, 0], [0.45, 0.52, 0.48], [0.1, 0.7, 0.3]],
                cell=[[3.6, 0.1, 0.0], [0.3, 3.7, 0.2], [0.1, -0.2, 3.9]], pbc=True)
    return [cu, tri]


SETTINGS = [
    dict(rbf="gto_smooth"),
    dict(rbf="gto"),
    dict(rbf="gto", weighting={"function": "pow", "r0": 2.0, "c": 1.0, "m": 2, "d": 1.0}),
    dict(rbf="gto_smooth", compression={"mode": "mu2", "species_weighting": {"Cu": 1.0, "O": 0.4}}),
]


@pytest.mark.parametrize("options", SETTINGS, ids=lambda o: "-".join(str(v)[:12] for v in o.values()))
def test_edge_sums_equal_autograd_forces_and_virial_of_a_linear_functional(options):
    soap = SOAP(species=["Cu", "O"], r_cut=4.0, n_max=3, l_max=3, sigma=0.5, periodic=True, **options)
    graph = soap.graph(_structures())
    jac = soap.edge_jacobian(graph)
    weights = torch.randn(len(graph.numbers), soap.get_number_of_features(), dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    positions = graph.positions.clone().requires_grad_(True)
    strain = torch.zeros(graph.n_structures, 3, 3, dtype=torch.float64, requires_grad=True)
    symmetric = 0.5 * (strain + strain.transpose(1, 2))
    strained = graph.replace(positions=positions + torch.einsum("na,nab->nb", positions, symmetric[graph.batch]),
                             cell=graph.cell + torch.bmm(graph.cell, symmetric))
    features = soap(strained)
    d_positions, d_strain = torch.autograd.grad((features * weights).sum(), [positions, strain])

    torch.testing.assert_close(jac.features, features.detach(), rtol=0, atol=1e-13)
    g = (jac.gradient * weights[jac.centre][:, None, :]).sum(2)
    from_edges = torch.zeros_like(d_positions).index_add(0, jac.neighbour, g).index_add(0, jac.centre, -g)
    torch.testing.assert_close(from_edges, d_positions, rtol=1e-10, atol=1e-10)
    owner = graph.batch[jac.centre]
    virial = torch.zeros_like(d_strain).index_add(0, owner, g[:, :, None] * jac.vectors[:, None, :])
    torch.testing.assert_close(virial, d_strain, rtol=1e-10, atol=1e-10)


def test_chunking_does_not_change_the_result():
    soap = SOAP(species=["Cu", "O"], r_cut=4.0, n_max=3, l_max=2, sigma=0.5, periodic=True)
    graph = soap.graph(_structures())
    whole = soap.edge_jacobian(graph)
    pieces = soap.edge_jacobian(graph, chunk_edges=7)
    torch.testing.assert_close(pieces.gradient, whole.gradient, rtol=0, atol=1e-14)


def test_edges_beyond_the_cutoff_and_images_of_an_aperiodic_soap_are_left_out():
    soap = SOAP(species=["Cu", "O"], r_cut=3.0, n_max=2, l_max=2, sigma=0.5, periodic=False)
    graph = soap.graph(_structures()[:1])
    jac = soap.edge_jacobian(graph.replace(cutoff=graph.cutoff))
    assert np.all(np.linalg.norm(jac.vectors.numpy(), axis=1) < soap.cutoff)
    assert len(jac.centre) == int(((graph.shifts == 0).all(1)).sum())


@pytest.mark.parametrize("options", [dict(average="inner"), dict(compression={"mode": "mu1nu1"})])
def test_settings_without_an_edge_jacobian_are_refused_clearly(options):
    soap = SOAP(species=["Cu", "O"], r_cut=3.0, n_max=2, l_max=2, sigma=0.5, periodic=True, **options)
    with pytest.raises(ValueError, match="edge_jacobian"):
        soap.edge_jacobian(soap.graph(_structures()))


def test_get_config_rebuilds_the_same_descriptor():
    soap = SOAP(species=["O", "Cu"], r_cut=4.0, n_max=3, l_max=2, sigma=0.4, rbf="gto_smooth",
                periodic=True, cutoff_width=0.7)
    twin = SOAP(**soap.get_config())
    structures = _structures()
    np.testing.assert_array_equal(twin.create(structures[0]), soap.create(structures[0]))
