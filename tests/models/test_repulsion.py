"""The ZBL repulsion baseline of the network potentials: the published screening function, a
smooth switch, exact forces and stresses, and close contacts that stay repulsive."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from ml4ms import load, save
from ml4ms.data.graph import AtomicGraph
from ml4ms.errors import ConfigError
from ml4ms.models import AtomicNeuralNetwork, EquivariantMPNN
from ml4ms.models.repulsion import ZBLRepulsion, zbl_pair_energy
from ml4ms.testing import assert_forces_match_finite_difference, assert_stress_matches_finite_difference

ACSF_SMALL = {"type": "acsf", "r_cut": 4.0, "n_radial": 4, "n_angular": 1, "zetas": [1]}


def networks():
    return [AtomicNeuralNetwork(["Cu", "O"], descriptor=ACSF_SMALL, hidden=[8], seed=1, repulsion="zbl"),
            EquivariantMPNN(["Cu", "O"], cutoff=4.0, channels=8, n_layers=1, n_radial=4, readout_hidden=8,
                            repulsion="zbl")]


def pair_energy(model, z1, z2, r):
    atoms = Atoms(numbers=[z1, z2], positions=[[0, 0, 0], [r, 0, 0]])
    graph = AtomicGraph.from_atoms([atoms], model.cutoff, labels=False)
    with torch.no_grad():
        return float(model(graph, compute_forces=False)["energy"][0])


def test_the_screening_function_is_the_published_one_and_tends_to_bare_coulomb():
    # ZBL's universal function at the reduced distance x = 1 (Ziegler, Biersack, Littmark 1985):
    # 0.18175 e^-3.1998 + 0.50986 e^-0.94229 + 0.28022 e^-0.4029 + 0.02817 e^-0.20162
    phi_1 = 0.18175 * math.exp(-3.1998) + 0.50986 * math.exp(-0.94229) + 0.28022 * math.exp(-0.4029) \
        + 0.02817 * math.exp(-0.20162)
    z = torch.tensor([29])
    a = 0.46850 / (2 * 29**0.23)
    r = torch.tensor([a], dtype=torch.float64)
    bare = 14.399645 * 29 * 29 / a
    assert float(zbl_pair_energy(r, z, z)[0]) == pytest.approx(bare * phi_1, rel=1e-12)
    tiny = torch.tensor([1e-6], dtype=torch.float64)
    assert float(zbl_pair_energy(tiny, z, z)[0]) * 1e-6 / (14.399645 * 29 * 29) == pytest.approx(1.0, rel=1e-4)


def test_the_switch_takes_the_repulsion_from_full_to_zero_between_its_radii():
    repulsion = ZBLRepulsion([8, 29], cutoff=5.0)
    reach = 2 * 1.32  # covalent radius of Cu (ASE's table), Å
    for r, expected in ((0.5 * reach, "full"), (reach, 0.0), (1.2 * reach, 0.0)):
        atoms = Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]])
        graph = AtomicGraph.from_atoms([atoms], 5.0, labels=False)
        energy = float(repulsion(graph).sum())
        if expected == "full":
            full = float(zbl_pair_energy(torch.tensor([r], dtype=torch.float64), torch.tensor([29]),
                                         torch.tensor([29]))[0])
            assert energy == pytest.approx(full, rel=1e-12)
        else:
            assert energy == 0.0
    # C² at the outer radius: energies just inside fall off as the cube of the distance to it
    inside = [float(repulsion(AtomicGraph.from_atoms([Atoms("Cu2", positions=[[0, 0, 0], [reach - h, 0, 0]])],
                                                     5.0, labels=False)).sum()) for h in (1e-2, 5e-3)]
    assert inside[0] / inside[1] == pytest.approx(8.0, rel=0.05)


@pytest.mark.parametrize("model", networks(), ids=["bpnn", "mpnn"])
def test_forces_and_stress_with_the_repulsion_are_exact_derivatives(model):
    atoms = bulk("Cu", "fcc", a=3.0, cubic=True)  # compressed: nearest neighbours at 2.1 Å, inside the switch
    atoms.rattle(0.05, seed=2)
    atoms[0].symbol = "O"
    model.eval()
    assert_forces_match_finite_difference(model, atoms)
    assert_stress_matches_finite_difference(model, atoms)


@pytest.mark.parametrize("model", networks(), ids=["bpnn", "mpnn"])
def test_close_contacts_are_strongly_repulsive_whatever_the_weights(model):
    without = type(model)(species=model.species, **{**model.get_config(), "repulsion": None})
    rise = pair_energy(model, 29, 29, 1.2) - pair_energy(model, 29, 29, 1.6)
    baseline = pair_energy(without, 29, 29, 1.2) - pair_energy(without, 29, 29, 1.6)
    assert rise - baseline > 20.0  # eV: ZBL alone gives about 46 eV between these distances
    assert pair_energy(model, 29, 8, 0.8) > pair_energy(model, 29, 8, 1.4) + 20.0


@pytest.mark.parametrize("model", networks(), ids=["bpnn", "mpnn"])
def test_the_repulsion_is_in_the_config_and_survives_save_and_load(model, tmp_path):
    config = json.loads(json.dumps(model.get_config()))
    assert config["repulsion"] == "zbl"
    loaded = load(save(model, tmp_path / "model.ml4ms"))
    assert loaded.repulsion is not None
    for r in (1.0, 1.5, 2.2):
        assert pair_energy(loaded, 29, 29, r) == pytest.approx(pair_energy(model, 29, 29, r), abs=1e-12)


def _cu_data(n=4, seed=0):
    from ml4ms.data.dataset import AtomsDataset
    from ml4ms.data.emt import label_with_emt

    rng = np.random.default_rng(seed)
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.08, seed=int(rng.integers(1000)))
        images.append(label_with_emt(atoms, "bulk"))
    return AtomsDataset(images)


def _shortest(data):
    from ase.neighborlist import neighbor_list

    return min(float(neighbor_list("d", atoms, 3.0).min()) for atoms in data)


@pytest.mark.parametrize("model", networks(), ids=["bpnn", "mpnn"])
def test_initialize_puts_the_switch_below_the_closest_pair_of_the_training_data(model):
    data = _cu_data()
    shortest = _shortest(data)
    model.initialize(data)
    window = model.repulsion.window_inner[29, 29].item(), model.repulsion.window_outer[29, 29].item()
    assert window == pytest.approx((0.75 * shortest, shortest), rel=1e-12)
    # the network sees no baseline on its own data ...
    for graph in data.graphs(model.cutoff, batch_size=2):
        assert float(model.repulsion(graph).abs().max()) == 0.0
    # ... while pairs it never saw (Cu-O) keep the covalent window, 0.6 to 1.0 of 1.32 + 0.66 Å
    assert model.repulsion.window_outer[29, 8].item() == pytest.approx(1.98, rel=1e-12)
    # and a contact closer than the data is pushed apart by the full ZBL energy at 0.75 of it
    r = 0.7 * shortest
    full = float(zbl_pair_energy(torch.tensor([r], dtype=torch.float64), torch.tensor([29]), torch.tensor([29]))[0])
    graph = AtomicGraph.from_atoms([Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]])], model.cutoff, labels=False)
    assert float(model.repulsion(graph).sum()) == pytest.approx(full, rel=1e-12)


def test_the_covalent_range_ignores_the_data_and_the_window_travels_with_the_model_file(tmp_path):
    data = _cu_data()
    fixed = AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, hidden=[8], seed=1,
                                repulsion={"type": "zbl", "range": "covalent"})
    fixed.initialize(data)
    assert fixed.repulsion.window_outer[29, 29].item() == pytest.approx(2.64, rel=1e-12)
    assert fixed.get_config()["repulsion"] == {"type": "zbl", "range": "covalent"}
    fitted = AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, hidden=[8], seed=1, repulsion="zbl")
    fitted.initialize(data)
    loaded = load(save(fitted, tmp_path / "model.ml4ms"))
    assert loaded.repulsion.window_outer[29, 29].item() == pytest.approx(_shortest(data), rel=1e-12)
    for r in (1.4, 1.8, 2.0):
        assert pair_energy(loaded, 29, 29, r) == pytest.approx(pair_energy(fitted, 29, 29, r), abs=1e-12)


def test_a_pair_the_data_shows_only_far_apart_keeps_the_covalent_window():
    from ml4ms.data.dataset import AtomsDataset
    from ml4ms.data.emt import label_with_emt

    stretched = bulk("Cu", "fcc", a=4.5, cubic=True)  # nearest neighbours 3.18 Å, beyond 2 x 1.32 Å
    repulsion = ZBLRepulsion([29], cutoff=5.0)
    moved = repulsion.fit_range(AtomsDataset([label_with_emt(stretched, "bulk")]))
    assert moved["Cu-Cu"] == pytest.approx((0.75 * 2.64, 2.64), rel=1e-12)


def test_a_state_without_windows_loads_with_the_covalent_window():
    model = AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, hidden=[8], seed=1, repulsion="zbl")
    state = {k: v for k, v in model.state_dict().items() if "window" not in k}
    model.repulsion.window_outer.fill_(1.0)
    model.load_state_dict(state, strict=True)
    assert model.repulsion.window_outer[29, 29].item() == pytest.approx(2.64, rel=1e-12)


def test_an_unknown_repulsion_is_refused():
    with pytest.raises(ConfigError, match="repulsion must be one of zbl"):
        AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, repulsion="lj")
    with pytest.raises(ValueError):
        ZBLRepulsion([29], cutoff=5.0, inner=1.0, outer=0.5)
    with pytest.raises(ConfigError, match="range must be one of data, covalent"):
        AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, repulsion={"type": "zbl", "range": "nearest"})
    with pytest.raises(ConfigError, match="unknown repulsion option"):
        AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, repulsion={"type": "zbl", "width": 1.0})


def test_without_it_nothing_changes():
    plain = EquivariantMPNN(["Cu"], cutoff=4.0, channels=8, n_layers=1, n_radial=4, readout_hidden=8)
    assert plain.repulsion is None and plain.get_config()["repulsion"] is None
    assert np.isfinite(pair_energy(plain, 29, 29, 2.0))


@pytest.mark.parametrize("kind", ["bpnn", "mpnn"])
def test_the_command_line_configuration_switches_it_on(kind):
    from pathlib import Path

    from ml4ms.cli.fit import build_model
    from ml4ms.config import load_fit_config

    example = Path(__file__).resolve().parents[2] / "examples" / "mlearn" / f"Cu-{kind}.yaml"
    config = load_fit_config(example, overrides=["model.repulsion=zbl"])
    assert isinstance(build_model(config.model, [29]).repulsion, ZBLRepulsion)
    assert build_model(load_fit_config(example).model, [29]).repulsion is None
