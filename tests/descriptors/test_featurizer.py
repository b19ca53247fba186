"""Featurizer: any descriptor as a scikit-learn transformer, and the generic ``create``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch
from ase.build import bulk, molecule
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from ml4ms.data import AtomicGraph
from ml4ms.descriptors import CompositionFeatures, Descriptor, Featurizer
from ml4ms.errors import UnknownElementError


class Coordination(Descriptor):
    """Per-atom test descriptor: [number of neighbours within the cutoff, sum of distances]."""

    def __init__(self, cutoff=3.0, species=None):
        super().__init__()
        self.cutoff = cutoff
        self.species = species

    @property
    def per_atom(self):
        return True

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        r = graph.edge_vectors().norm(dim=1)
        out = torch.zeros(len(graph.numbers), 2, dtype=r.dtype)
        out[:, 0].index_add_(0, graph.edge_index[0], torch.ones_like(r))
        out[:, 1].index_add_(0, graph.edge_index[0], r)
        return out

    def get_number_of_features(self):
        return 2

    def feature_labels(self):
        return ["coordination", "sum of distances"]


def _structures():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)  # 4 atoms, 12 neighbours each within 3 Å
    nacl = bulk("NaCl", "rocksalt", a=5.6)    # 2 atoms, 6 neighbours each at 2.8 Å
    water = molecule("H2O")                    # isolated: every pair lies within 3 Å
    return [cu, nacl, water]


def test_create_follows_dscribe_shapes():
    d = Coordination()
    one = d.create(_structures()[0])
    assert one.shape == (4, 2) and (one[:, 0] == 12).all()
    many = d.create(_structures())
    assert isinstance(many, list) and [m.shape for m in many] == [(4, 2), (2, 2), (3, 2)]
    same = d.create([bulk("Cu", "fcc", a=3.6, cubic=True)] * 3)
    assert same.shape == (3, 4, 2)
    centers = d.create(_structures()[:2], centers=[[0, 2], [1]])
    assert [c.shape for c in centers] == [(2, 2), (1, 2)]


def test_threads_give_the_same_features():
    images = [bulk("Cu", "fcc", a=3.6 + 0.01 * k, cubic=True).repeat(2) for k in range(9)]
    np.testing.assert_array_equal(Coordination().create(images, n_jobs=1), Coordination().create(images, n_jobs=3))


def test_unknown_species_is_named():
    with pytest.raises(UnknownElementError, match="structure 1.*Na, Cl"):
        Coordination(species=[29]).create(_structures()[:2])


def test_transform_pools_per_atom_features_per_structure():
    f = Featurizer(Coordination()).fit(_structures())
    x = f.transform(_structures())
    assert x.shape == (3, 2)
    assert x[0, 0] == 12 and x[1, 0] == 6
    assert Featurizer(Coordination(), pool="sum").fit(_structures()).transform(_structures())[1, 0] == 12
    rows = Featurizer(Coordination(), pool="none").fit(_structures()).transform(_structures())
    assert rows.shape == (9, 2)
    assert list(f.get_feature_names_out()) == ["mean(coordination)", "mean(sum of distances)"]
    assert scipy.sparse.issparse(Featurizer(Coordination(), sparse=True).fit(_structures()).transform(_structures()))


def test_works_in_a_pipeline_with_grid_search_and_clone():
    rng = np.random.default_rng(0)
    images = []
    for k in range(30):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.4, 3.8), cubic=True)
        images.append(atoms)
    y = np.array([a.cell[0, 0] for a in images])  # the lattice constant, a smooth function of distances
    pipe = make_pipeline(Featurizer(Coordination(cutoff=4.0)), Ridge())
    search = GridSearchCV(pipe, {"ridge__alpha": [1e-6, 1.0]}, cv=3).fit(images, y)
    assert search.best_score_ > 0.9
    copy = clone(pipe)
    assert copy.steps[0][1].descriptor is not pipe.steps[0][1].descriptor


def test_per_structure_descriptor_is_not_pooled():
    f = Featurizer(CompositionFeatures(properties=["Electronegativity"], stats=("mean",))).fit([])
    x = f.transform(_structures())
    assert x.shape == (3, 1)
    assert x[2, 0] == pytest.approx((2 * 2.20 + 3.44) / 3, abs=1e-6)  # Pauling: H 2.20, O 3.44


def test_errors_name_the_structure_in_the_callers_list_across_chunks():
    images = [bulk("Cu", "fcc", a=3.6)] * 70 + [bulk("NaCl", "rocksalt", a=5.6)]
    featurizer = Featurizer(Coordination(species=[29]), chunk_size=16).fit(images)
    with pytest.raises(UnknownElementError, match="structure 70"):
        featurizer.transform(images)
