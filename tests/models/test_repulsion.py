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


def test_an_unknown_repulsion_is_refused():
    with pytest.raises(ConfigError, match="repulsion must be one of zbl"):
        AtomicNeuralNetwork(["Cu"], descriptor=ACSF_SMALL, repulsion="lj")
    with pytest.raises(ValueError):
        ZBLRepulsion([29], cutoff=5.0, inner=1.0, outer=0.5)


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
