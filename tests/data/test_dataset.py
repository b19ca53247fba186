"""AtomsDataset: splits, statistics, reference energies, hashing and batching."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ml4ms.data.dataset import AtomsDataset
from ml4ms.errors import DataError


def _labelled(n: int = 12):
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) if k % 2 else bulk("Au", "fcc", a=4.1).repeat((2, 1, 1))
        if k % 3 == 0:
            atoms[0].symbol = "Au" if atoms[0].symbol == "Cu" else "Cu"
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["config_type"] = f"run{k % 4}"
        atoms.calc = None
        images.append(atoms)
    return images


def test_reference_energies_solve_the_composition_least_squares_problem():
    # Energies built exactly from known per-element values are recovered exactly.
    e0 = {"Cu": -3.5, "Au": -2.25}
    images = _labelled()
    for atoms in images:
        atoms.info["energy"] = sum(e0[s] for s in atoms.get_chemical_symbols())
    fitted = AtomsDataset(images).fit_reference_energies()
    assert fitted == pytest.approx(e0, abs=1e-10)


def test_single_element_reference_energy_is_the_mean_energy_per_atom():
    images = [a for a in _labelled() if set(a.get_chemical_symbols()) == {"Cu"}]
    mean = np.mean([a.info["energy"] / len(a) for a in images])
    # all structures have 4 atoms, so the least-squares E0 is the mean energy per atom
    assert AtomsDataset(images).fit_reference_energies()["Cu"] == pytest.approx(mean)


def test_random_split_is_a_seeded_partition():
    data = AtomsDataset(_labelled(20))
    parts = data.split([0.5, 0.25, 0.25], seed=3)
    assert [len(p) for p in parts] == [10, 5, 5]
    ids = sorted(id(a) for p in parts for a in p)
    assert ids == sorted(id(a) for a in data)
    again = data.split([0.5, 0.25, 0.25], seed=3)
    assert [id(a) for a in again[1]] == [id(a) for a in parts[1]]
    other = data.split([0.5, 0.25, 0.25], seed=4)
    assert [id(a) for a in other[0]] != [id(a) for a in parts[0]]


def test_group_split_keeps_each_group_in_one_part():
    data = AtomsDataset(_labelled(20))
    train, test = data.split([0.5, 0.5], by="config_type", seed=0)
    assert not {a.info["config_type"] for a in train} & {a.info["config_type"] for a in test}
    assert len(train) + len(test) == 20


def test_stratified_split_gives_every_group_its_share():
    images = _labelled(40)
    for k, atoms in enumerate(images):  # 30 "bulk", 10 "surface": the rare kind
        atoms.info["config_type"] = "surface" if k % 4 == 0 else "bulk"
    data = AtomsDataset(images)
    train, validation = data.split([0.9, 0.1], seed=2, stratify="config_type")
    assert sorted(id(a) for a in train.images + validation.images) == sorted(id(a) for a in images)
    assert sorted(a.info["config_type"] for a in validation) == ["bulk", "bulk", "bulk", "surface"]
    # with a single group it is the plain random split
    plain = AtomsDataset(_labelled(20))
    assert [id(a) for a in plain.split([0.7, 0.3], seed=5, stratify="no_such_key")[1]] == \
        [id(a) for a in plain.split([0.7, 0.3], seed=5)[1]]
    with pytest.raises(ValueError, match="either"):
        data.split([0.5, 0.5], by="config_type", stratify="config_type")


def test_split_by_value():
    parts = AtomsDataset(_labelled(8)).split_by("config_type")
    assert sorted(parts) == ["run0", "run1", "run2", "run3"]
    assert all(len(p) == 2 for p in parts.values())


def test_statistics_describe_counts_coverage_and_ranges():
    images = _labelled(6)
    images.append(molecule("H2O"))  # unlabelled
    stats = AtomsDataset(images).statistics()
    assert stats.n_structures == 7
    assert stats.n_atoms == sum(len(a) for a in images)
    assert set(stats.elements) == {"Cu", "Au", "H", "O"}
    assert stats.coverage["energy"] == pytest.approx(6 / 7)
    assert stats.coverage["stress"] == 0
    per_atom = [a.info["energy"] / len(a) for a in images[:6]]
    assert stats.energy_per_atom["min"] == pytest.approx(min(per_atom))
    forces = np.concatenate([a.arrays["forces"] for a in images[:6]])
    assert stats.forces["max_norm"] == pytest.approx(np.linalg.norm(forces, axis=1).max())
    assert stats.groups == {"run0": 2, "run1": 2, "run2": 1, "run3": 1}


def test_required_label_missing_names_the_structure():
    images = _labelled(4)
    del images[2].info["energy"]
    with pytest.raises(DataError, match="structure 2: energy"):
        AtomsDataset(images, source="x.xyz", require=("energy",))


def test_hash_changes_with_any_label_and_not_otherwise():
    images = _labelled(4)
    h = AtomsDataset(images).hash()
    assert h == AtomsDataset([a.copy() for a in images]).hash()
    images[1].arrays["forces"][0, 0] += 1e-9
    assert AtomsDataset(images).hash() != h


def test_batches_cover_every_structure_once_with_cached_neighbour_lists():
    data = AtomsDataset(_labelled(10))
    graphs = list(data.graphs(cutoff=3.0, batch_size=4, shuffle=True, seed=1))
    assert [g.n_structures for g in graphs] == [4, 4, 2]
    assert sum(len(g.numbers) for g in graphs) == sum(len(a) for a in data)
    assert sorted(float(e) for g in graphs for e in g.energy) == sorted(a.info["energy"] for a in data)
    first = data.neighbor_lists(3.0)
    assert data.neighbor_lists(3.0) is first
