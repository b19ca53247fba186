"""AtomicGraph collates structures into flat tensors whose edges reproduce ASE's geometry."""

from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ml4ms.data import AtomicGraph


def _structures():
    cu = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 1))
    cu.rattle(0.05, seed=0)
    cu.info["energy"] = -14.0
    cu.info["stress"] = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * 1e-3
    water = molecule("H2O")
    water.arrays["forces"] = np.ones((3, 3))
    return [cu, water]


def test_batch_layout_and_edge_vectors_match_ase():
    images = _structures()
    graph = AtomicGraph.from_atoms(images, cutoff=3.0)
    assert graph.n_structures == 2
    assert graph.n_atoms.tolist() == [4, 3]
    assert graph.batch.tolist() == [0, 0, 0, 0, 1, 1, 1]
    vectors = graph.edge_vectors().numpy()
    offset = 0
    for k, atoms in enumerate(images):
        edges = graph.batch[graph.edge_index[0]] == k
        i0, j0, d0 = ase_neighbor_list("ijD", atoms, 3.0)
        got = sorted(zip(graph.edge_index[0][edges].numpy() - offset, graph.edge_index[1][edges].numpy() - offset,
                         *np.round(vectors[edges.numpy()], 8).T))
        want = sorted(zip(i0, j0, *np.round(d0, 8).T))
        assert got == want
        offset += len(atoms)


def test_labels_are_collated_with_nan_for_missing_ones():
    graph = AtomicGraph.from_atoms(_structures(), cutoff=3.0)
    assert graph.energy[0] == -14.0 and torch.isnan(graph.energy[1])
    assert torch.isnan(graph.forces[:4]).all() and (graph.forces[4:] == 1).all()
    # Voigt (xx, yy, zz, yz, xz, xy) becomes the symmetric 3x3 tensor.
    expected = 1e-3 * torch.tensor([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(graph.stress[0], expected)
    assert torch.isnan(graph.stress[1]).all()


def test_labels_can_be_left_out():
    graph = AtomicGraph.from_atoms(_structures(), cutoff=3.0, labels=False)
    assert graph.energy is None and graph.forces is None and graph.stress is None


def test_edge_vectors_are_differentiable_in_positions_and_cell():
    graph = AtomicGraph.from_atoms(bulk("Cu", "fcc", a=3.6), cutoff=3.0)
    positions = graph.positions.clone().requires_grad_(True)
    cell = graph.cell.clone().requires_grad_(True)
    total = graph.edge_vectors(positions, cell).norm(dim=1).sum()
    total.backward()
    assert cell.grad is not None and cell.grad.abs().sum() > 0
    # one atom seeing only its images: positions cancel out of every edge vector
    assert positions.grad.abs().max() < 1e-12


def test_dtype_and_device_conversion():
    graph = AtomicGraph.from_atoms(_structures(), cutoff=3.0, dtype=torch.float32)
    assert graph.positions.dtype == torch.float32 and graph.numbers.dtype == torch.int64
    assert graph.to(dtype=torch.float64).shifts.dtype == torch.float64


def test_consecutive_batches_respect_the_atom_budget_and_the_order():
    from ml4ms.data.graph import consecutive_batches

    assert consecutive_batches([3, 3, 3, 10, 1, 1], 6) == [[0, 1], [2], [3], [4, 5]]
    assert consecutive_batches([7], 5) == [[0]]  # too big for the budget: a batch of its own
    assert consecutive_batches([], 5) == []
