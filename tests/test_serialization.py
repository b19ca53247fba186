"""Model files: a safetensors file with a JSON header; round trips, atomic writes, bad files.

Oracles: ASE's Lennard-Jones and Morse calculators for the predictions of a reloaded
model, and the safetensors library itself (not ml4ms) for what is on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct

import numpy as np
import pytest
import safetensors
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.calculators.morse import MorsePotential as AseMorse
from safetensors import safe_open
from safetensors.torch import save_file

import ml4ms
from ml4ms import serialization, testing
from ml4ms.errors import ModelFileError
from ml4ms.models import LennardJones, Morse
from ml4ms.simulate import Calculator

ARGON = {"sigma": 3.405, "epsilon": 0.0103, "smooth": True}
MORSE = {"epsilon": 0.05, "rho0": 5.0, "r0": 3.8, "rcut1": 1.6, "rcut2": 2.2}


def argon_crystal() -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.26) * (2, 2, 2)
    atoms.rattle(0.08, seed=0)
    return atoms


def read_raw_header(path) -> dict:
    """The ml4ms header as stored, read with safetensors alone."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["ml4ms"])


def rewrite_header(source, destination, *, rehash=True, **changes) -> None:
    """Copy a model file, changing header fields, with safetensors alone (weights intact).

    With ``rehash`` the checksum is recomputed as a writer would, so that the file stands
    for one written by another ml4ms (a newer version, another registry of classes);
    without it, the file stands for a hand-edited one.
    """
    with safe_open(str(source), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        header = json.loads(handle.metadata()["ml4ms"])
    header.update(changes)
    if rehash:
        header["sha256"] = hashlib.sha256(
            json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True,
                       ensure_ascii=False).encode()
            + b"".join(
                name.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode()
                + t.contiguous().view(torch.uint8).numpy().tobytes()
                for name, t in sorted(tensors.items())
            )
        ).hexdigest()
    save_file(tensors, str(destination), metadata={"ml4ms": json.dumps(header)})


@pytest.fixture
def saved(tmp_path):
    model = LennardJones(**ARGON, species=[18], reference_energies={"Ar": -0.125})
    path = ml4ms.save(
        model,
        tmp_path / "argon.ml4ms",
        metrics={"energy_mae_meV_per_atom": 1.5},
        training_data_hash="sha256:0123abcd",
    )
    return model, path


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize(
    "model, oracle, e0",
    [
        (
            LennardJones(**ARGON, reference_energies={"Ar": -0.125}),
            AseLennardJones(**ARGON),
            -0.125,
        ),
        (
            LennardJones(sigma=3.4, epsilon=0.01, rc=8.0),
            AseLennardJones(sigma=3.4, epsilon=0.01, rc=8.0),
            0.0,
        ),
        (Morse(**MORSE, reference_energies={18: 0.5}), AseMorse(**MORSE), 0.5),
    ],
    ids=["lj_smooth_E0", "lj_shifted", "morse_E0"],
)
def test_a_reloaded_model_predicts_what_ase_does_and_what_the_original_did(
    tmp_path, model, oracle, e0
):
    path = ml4ms.save(model, tmp_path / "model.ml4ms")
    loaded = ml4ms.load(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert loaded.get_reference_energies() == model.get_reference_energies()
    assert not loaded.training
    structure = argon_crystal()
    reference = structure.copy()
    reference.calc = oracle
    expected_energy = reference.get_potential_energy() + e0 * len(structure)
    for candidate in (loaded, model):
        atoms = structure.copy()
        atoms.calc = Calculator(candidate)
        assert atoms.get_potential_energy() == pytest.approx(expected_energy, abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=1e-12)
    testing.assert_isolated_atom_energy(loaded, "Ar", e0)


def test_the_element_list_and_the_unknown_element_check_survive_the_round_trip(saved):
    _, path = saved
    loaded = ml4ms.load(path)
    assert loaded.species == [18]
    assert loaded.elements == ["Ar"]
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = Calculator(loaded)
    with pytest.raises(ml4ms.errors.UnknownElementError, match="Cu"):
        atoms.get_potential_energy()


def test_the_dtype_survives_the_round_trip(tmp_path):
    model = LennardJones(**ARGON, reference_energies={"Ar": -0.125}).to(torch.float32)
    loaded = ml4ms.load(ml4ms.save(model, tmp_path / "f32.ml4ms"))
    assert loaded.reference_energies.dtype == torch.float32
    assert float(loaded.reference_energies[18]) == pytest.approx(-0.125)


def test_the_header_records_what_the_model_file_documents(saved):
    model, path = saved
    header = read_raw_header(path)
    assert header["format_version"] == serialization.FORMAT_VERSION
    assert isinstance(header["format_version"], int) and header["format_version"] >= 1
    assert header["ml4ms_version"] == ml4ms.__version__
    assert header["class"] == "LennardJones"
    assert header["config"] == {**model.get_config(), "species": [18]}
    assert header["elements"] == ["Ar"]
    assert header["cutoff"] == pytest.approx(3 * ARGON["sigma"])
    assert header["units"] == {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3"}
    assert header["reference_energies"] == {"Ar": -0.125}
    assert header["metrics"] == {"energy_mae_meV_per_atom": 1.5}
    assert header["training_data_hash"] == "sha256:0123abcd"
    assert ml4ms.load(path).file_header == header
    assert serialization.read_header(path) == header


def test_the_file_is_plain_safetensors_with_json_metadata(saved):
    model, path = saved
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    on_disk = json.loads(raw[8 : 8 + length])  # the safetensors layout: u64 length, JSON, data
    assert set(on_disk["__metadata__"]) == {"ml4ms"}
    with safe_open(str(path), framework="numpy") as handle:
        assert set(handle.keys()) == set(model.state_dict())
        np.testing.assert_array_equal(
            handle.get_tensor("reference_energies"), model.reference_energies.numpy()
        )
    assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # no pickle, no zip


def test_files_are_written_atomically_and_leave_no_temporary_files(tmp_path):
    target = tmp_path / "nested" / "dir" / "model.ml4ms"
    returned = ml4ms.save(LennardJones(), target)
    assert returned == target
    assert os.listdir(target.parent) == ["model.ml4ms"]
    ml4ms.save(Morse(), target)  # overwriting is a rename too
    assert os.listdir(target.parent) == ["model.ml4ms"]
    assert isinstance(ml4ms.load(target), Morse)


def test_a_write_that_fails_midway_leaves_the_existing_file_untouched(saved, monkeypatch):
    _, path = saved
    before = path.read_bytes()

    def failing_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(serialization, "save_file", failing_save_file)
    with pytest.raises(OSError, match="No space left"):
        ml4ms.save(Morse(), path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    monkeypatch.undo()
    assert isinstance(ml4ms.load(path), LennardJones)


# ------------------------------------------------------------------ bad files
def test_a_missing_file_raises_model_file_error_naming_it(tmp_path):
    path = tmp_path / "nowhere.ml4ms"
    with pytest.raises(ModelFileError, match=f"{path}.*no such model file"):
        ml4ms.load(path)
    assert issubclass(ModelFileError, OSError)


@pytest.mark.parametrize(
    "content",
    [b"", os.urandom(2048), b"not a model\n" * 10],
    ids=["empty", "random_bytes", "text"],
)
def test_garbage_raises_model_file_error(tmp_path, content):
    path = tmp_path / "garbage.ml4ms"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        ml4ms.load(path)


@pytest.mark.parametrize(
    "fraction", [0.003, 0.3, 0.9, 0.999], ids=["in_length", "in_header", "in_data", "last_byte"]
)
def test_a_truncated_file_raises_model_file_error(saved, tmp_path, fraction):
    _, path = saved
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.ml4ms"
    truncated.write_bytes(raw[: int(fraction * len(raw))])
    with pytest.raises(ModelFileError, match="truncated.ml4ms"):
        ml4ms.load(truncated)


def test_a_flipped_byte_in_the_weights_is_detected_by_the_checksum(saved, tmp_path):
    _, path = saved
    raw = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", raw[:8])
    entry = json.loads(raw[8 : 8 + length])["reference_energies"]
    assert entry["dtype"] == "F64" and entry["shape"] == [119]  # E0 of Z = 0..118
    start = 8 + length + entry["data_offsets"][0]
    raw[start + 18 * 8 + 3] ^= 0x01  # a low mantissa bit of E0(Ar): -0.125 -> almost -0.125
    tampered = tmp_path / "tampered.ml4ms"
    tampered.write_bytes(bytes(raw))
    with safe_open(str(tampered), framework="pt") as handle:  # still a valid safetensors file
        assert float(handle.get_tensor("reference_energies")[18]) != -0.125
    with pytest.raises(ModelFileError, match="checksum"):
        ml4ms.load(tampered)


def test_a_hand_edited_header_is_detected_by_the_checksum(saved, tmp_path):
    _, path = saved
    edited = tmp_path / "edited.ml4ms"
    rewrite_header(path, edited, rehash=False, config={**ARGON, "epsilon": 10.0, "species": [18]})
    with pytest.raises(ModelFileError, match="checksum"):
        ml4ms.load(edited)


def test_a_newer_format_version_asks_for_a_newer_ml4ms(saved, tmp_path):
    _, path = saved
    future = tmp_path / "future.ml4ms"
    rewrite_header(path, future, format_version=999)
    with pytest.raises(ModelFileError, match=r"format version 999 is newer.*upgrade ml4ms"):
        ml4ms.load(future)


def test_an_unknown_model_class_raises_model_file_error(saved, tmp_path):
    _, path = saved
    unknown = tmp_path / "unknown.ml4ms"
    rewrite_header(path, unknown, **{"class": "NoSuchPotential"})
    with pytest.raises(ModelFileError, match="unknown model class 'NoSuchPotential'"):
        ml4ms.load(unknown)


def test_a_config_the_class_does_not_accept_raises_model_file_error(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad_config.ml4ms"
    rewrite_header(path, bad, config={"sigma": 1.0, "no_such_argument": 2})
    with pytest.raises(ModelFileError, match="cannot rebuild LennardJones"):
        ml4ms.load(bad)


@pytest.mark.parametrize(
    "metadata, message",
    [
        (None, "without an ml4ms header"),
        ({"ml4ms": "{not json"}, "not valid JSON"),
        ({"ml4ms": json.dumps({"class": "LennardJones"})}, "no format_version"),
    ],
    ids=["no_header", "bad_json", "no_version"],
)
def test_a_safetensors_file_without_a_proper_header_raises_model_file_error(
    tmp_path, metadata, message
):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match=message):
        ml4ms.load(path)


class _Exploit:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_a_pickle_file_is_rejected_without_being_unpickled(tmp_path, monkeypatch, kind):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "exploit": _Exploit(marker)}
    if kind == "torch_zip":
        torch.save(payload, path)
    elif kind == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()

    unpickled = []

    def refuse(*args, **kwargs):
        unpickled.append(args)
        raise AssertionError("ml4ms tried to unpickle a file")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        ml4ms.load(path)
    assert unpickled == []
    assert not marker.exists()


def test_reading_the_header_of_a_file_does_not_build_the_model(saved, monkeypatch):
    _, path = saved

    def no_build(*args, **kwargs):
        raise AssertionError("read_header built a model")

    monkeypatch.setattr(serialization, "model_class", no_build)
    assert serialization.read_header(path)["class"] == "LennardJones"


def test_safetensors_is_the_format(saved):
    _, path = saved
    tensors = safetensors.torch.load_file(str(path))
    assert set(tensors) == {"reference_energies"}


def test_a_header_that_is_json_but_not_an_object_is_a_model_file_error(tmp_path):
    path = tmp_path / "list.ml4ms"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"ml4ms": "[1, 2]"})
    with pytest.raises(ModelFileError, match="not a JSON object"):
        ml4ms.load(path)
