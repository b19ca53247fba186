"""Whether a network pins a lone atom's energy to E0 (``anchor_isolated_atom``).

Specifications, for both network families: by default E0 is a per-element offset and a
lone atom gets whatever the network gives; anchored, a lone atom has exactly E0 and every
energy difference is what the unanchored network with the same weights gives; the choice
travels in the config and the file; and a file written before the option existed (no
flag in its config or weights) loads anchored, as it was trained.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from ml4ms import testing
from ml4ms.data import AtomicGraph
from ml4ms.data.dataset import AtomsDataset
from ml4ms.models.bpnn import AtomicNeuralNetwork
from ml4ms.models.mpnn import EquivariantMPNN
from ml4ms.serialization import FORMAT_VERSION, load, save, write_file

from .conftest import emt_cells

BUILDERS = {
    "mpnn": lambda **kw: EquivariantMPNN(["Cu"], cutoff=4.5, seed=3, channels=16, n_layers=2, n_radial=6,
                                         readout_hidden=8, **kw),
    "bpnn": lambda **kw: AtomicNeuralNetwork(["Cu"], {"type": "acsf", "r_cut": 4.5}, hidden=(8, 8), seed=3, **kw),
}


@pytest.fixture(scope="module")
def cells():
    return emt_cells(3, seed=5)


def _energy(model, images):
    graph = AtomicGraph.from_atoms(list(images), model.cutoff, dtype=torch.float64, labels=False)
    with torch.no_grad():
        return model.eval()(graph, compute_forces=False)["energy"].numpy()


def _lone_cu():
    return Atoms("Cu", positions=[[0.0, 0.0, 0.0]])


@pytest.mark.parametrize("family", BUILDERS)
def test_by_default_e0_is_an_offset_and_anchored_a_lone_atom_has_exactly_e0(family, cells):
    free, anchored = BUILDERS[family](), BUILDERS[family](anchor_isolated_atom=True)
    free.initialize(AtomsDataset(cells))  # feature statistics: a lone atom's input is not zero
    anchored.load_state_dict({**free.state_dict(), "isolated_anchor": torch.tensor(True)})
    assert not free.anchor_isolated_atom and anchored.anchor_isolated_atom
    for model in (free, anchored):
        model.set_reference_energies({"Cu": -3.5})
    lone_free, lone_anchored = _energy(free, [_lone_cu()])[0], _energy(anchored, [_lone_cu()])[0]
    assert lone_anchored == pytest.approx(-3.5, abs=1e-12)
    assert abs(lone_free + 3.5) > 1e-4  # the network's own value for a lone atom
    testing.assert_isolated_atom_energy(anchored, "Cu")
    testing.assert_isolated_atom_energy(free, "Cu")  # no E0 promised: zero force, finite energy
    # Anchoring subtracts one constant per atom: energy differences are unchanged.
    shift = lone_free - lone_anchored
    n = np.array([len(a) for a in cells])
    np.testing.assert_allclose(_energy(free, cells) - _energy(anchored, cells), n * shift, rtol=0, atol=1e-9)


@pytest.mark.parametrize("family", BUILDERS)
def test_the_choice_travels_in_the_config_and_the_file(family, tmp_path, cells):
    for anchor in (False, True):
        model = BUILDERS[family](anchor_isolated_atom=anchor)
        model.initialize(AtomsDataset(cells))
        assert model.config["anchor_isolated_atom"] is anchor
        loaded = load(save(model, tmp_path / f"{anchor}.ml4ms"))
        assert loaded.anchor_isolated_atom is anchor
        np.testing.assert_allclose(_energy(loaded, cells), _energy(model, cells), rtol=0, atol=1e-10)


@pytest.mark.parametrize("family", BUILDERS)
def test_a_file_from_before_the_option_loads_anchored_as_it_was_trained(family, tmp_path, cells):
    model = BUILDERS[family](anchor_isolated_atom=True)
    model.initialize(AtomsDataset(cells))
    # what save() wrote before the option: no flag in the config, none among the weights
    tensors = {k: v for k, v in model.state_dict().items() if k != "isolated_anchor"}
    config = {k: v for k, v in model.config.items() if k != "anchor_isolated_atom"}
    header = {"format_version": FORMAT_VERSION, "ml4ms_version": "0.1.0", "class": type(model).__name__,
              "config": config, "elements": model.elements, "cutoff": model.cutoff, "dtype": "float64",
              "reference_energies": model.get_reference_energies()}
    old = load(write_file(tmp_path / "old.ml4ms", tensors, header))
    assert old.anchor_isolated_atom is True and old.config["anchor_isolated_atom"] is True
    np.testing.assert_allclose(_energy(old, cells), _energy(model, cells), rtol=0, atol=1e-10)
    testing.assert_isolated_atom_energy(old, "Cu")
