"""pymatgen ``Structure``/``Molecule`` dictionaries and mlearn JSON, read without pymatgen.

pymatgen is not an ml4ms dependency. Its ``Structure.as_dict()`` output is plain JSON,
so it is parsed here directly into :class:`ase.Atoms`.

mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)) stores each structure as ::

    {"structure": <Structure.as_dict()>, "num_atoms": int, "element": "Cu",
     "group": "Elastic", "tag": "train", "description": "...",
     "outputs": {"energy": float, "forces": [[fx, fy, fz], ...], "virial_stress": [6 floats]}}

Conversions done by :func:`read_mlearn` (ml4ms converts units at the reader and nowhere
else):

==========================  ==================================  ==============================
mlearn field                ml4ms label                         conversion
==========================  ==================================  ==============================
``outputs.energy``          ``info["energy"]``, eV              none (total energy of the cell)
``outputs.forces``          ``arrays["forces"]``, (n, 3) eV/Å   none
``outputs.virial_stress``   ``info["stress"]``, (6,) eV/Å³      ``σ = -0.1 GPa × v``, reordered
                                                                to ASE Voigt (xx yy zz yz xz xy)
``group``                   ``info["config_type"]``             none
``description``, ``tag``    ``info["description"]``,            none
                            ``info["tag"]``
==========================  ==================================  ==============================

``virial_stress`` is in kBar (0.1 GPa) with VASP's sign (positive = compressive), so
the ASE stress (positive = tensile) is ``-0.1 * GPa * v`` with ``ase.units.GPa`` =
6.2415e-3 eV/Å³. The order of its six components differs between the elements of the
mlearn set (found from the shear-strained ``Elastic`` cells; see
``shared/data/README.md``), hence :data:`MLEARN_STRESS_ORDER`.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.units import GPa

from ..errors import DataError, FileFormatError, UnknownElementError
from ..keys import ENERGY, FORCES, GROUP, STRESS

__all__ = [
    "MLEARN_STRESS_ORDER",
    "load_json",
    "is_mlearn_records",
    "is_structure_dict",
    "parse_stress_order",
    "read_mlearn",
    "structure_from_dict",
    "virial_stress_to_ase",
]

#: Component order of mlearn's ``virial_stress`` for each element. Ni, Cu and Mo use
#: ``[xx, yy, zz, xy, xz, yz]``; Li, Si and Ge use VASP's ``[xx, yy, zz, xy, yz, zx]``.
#: Inferred from which component carries the stress in shear-strained cells and checked
#: against dE/dε in ``tests/data/test_mlearn.py``.
MLEARN_STRESS_ORDER: dict[str, tuple[str, ...]] = {
    "Ni": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Cu": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Mo": ("xx", "yy", "zz", "xy", "xz", "yz"),
    "Li": ("xx", "yy", "zz", "xy", "yz", "xz"),
    "Si": ("xx", "yy", "zz", "xy", "yz", "xz"),
    "Ge": ("xx", "yy", "zz", "xy", "yz", "xz"),
}

# Position of each tensor component in ASE's Voigt vector (xx, yy, zz, yz, xz, xy).
_VOIGT_INDEX = {"xx": 0, "yy": 1, "zz": 2, "yz": 3, "xz": 4, "xy": 5}
# The tensor is symmetric, so "zx" is "xz" etc.
_CANONICAL = {"zy": "yz", "zx": "xz", "yx": "xy"}

# One kBar with VASP's sign (positive = compressive) in ASE's eV/Å³ (positive = tensile).
KBAR_TO_ASE_STRESS: float = -0.1 * GPa

_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def load_json(path: str | os.PathLike) -> Any:
    """Load a JSON file, plain or compressed (``.gz``, ``.bz2``, ``.xz``).

    Raises
    ------
    FileFormatError
        The file is missing, cannot be decompressed or is not valid JSON. The message
        names the file (and the line and column of a syntax error).
    """
    path = Path(path)
    opener = _COMPRESSED.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FileFormatError("no such file", path=path) from None
    except json.JSONDecodeError as err:
        raise FileFormatError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            " (truncated or malformed file?)",
            path=path,
        ) from None
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as err:
        raise FileFormatError(f"cannot read JSON: {type(err).__name__}: {err}", path=path) from None


def parse_stress_order(order: str | Sequence[str]) -> tuple[str, ...]:
    """Parse a stress-component order such as ``"xx yy zz xy yz zx"``.

    Parameters
    ----------
    order
        Six component names separated by spaces or commas, or a sequence of six names.
        ``zx``/``zy``/``yx`` are the same as ``xz``/``yz``/``xy`` (the tensor is
        symmetric).

    Returns
    -------
    tuple of str
        Six canonical names (``xz``, not ``zx``), a permutation of
        ``xx yy zz yz xz xy``.

    Raises
    ------
    DataError
        Not six names, an unknown name, or a component listed twice.
    """
    names = order.replace(",", " ").split() if isinstance(order, str) else list(order)
    canonical = tuple(_CANONICAL.get(str(n).strip().lower(), str(n).strip().lower()) for n in names)
    if len(canonical) != 6 or sorted(canonical) != sorted(_VOIGT_INDEX):
        raise DataError(
            f"expected six distinct components out of xx yy zz yz xz xy, got {order!r}",
            field="stress_order",
        )
    return canonical


def virial_stress_to_ase(virial_stress: np.ndarray, order: Sequence[str]) -> np.ndarray:
    """Convert mlearn/VASP ``virial_stress`` (kBar, positive = compressive) to ASE stress.

    Parameters
    ----------
    virial_stress
        ndarray of shape (..., 6), kBar, components in ``order``.
    order
        Component names of the six columns, e.g. ``("xx", "yy", "zz", "xy", "yz", "xz")``.

    Returns
    -------
    ndarray of shape (..., 6)
        eV/Å³, ASE Voigt order (xx, yy, zz, yz, xz, xy), positive = tensile:
        ``σ = -0.1 × GPa × v``.
    """
    order = parse_stress_order(order)
    v = np.asarray(virial_stress, dtype=np.float64)
    out = np.empty_like(v)
    out[..., [_VOIGT_INDEX[c] for c in order]] = KBAR_TO_ASE_STRESS * v
    return out


def is_structure_dict(obj: Any) -> bool:
    """Whether ``obj`` looks like a pymatgen ``Structure``/``Molecule`` dict."""
    return (
        isinstance(obj, Mapping)
        and "sites" in obj
        and ("lattice" in obj or obj.get("@class") in ("Structure", "Molecule", "IStructure"))
    )


def is_mlearn_records(obj: Any) -> bool:
    """Whether ``obj`` is a list of mlearn records (dicts with a ``structure`` key)."""
    return (
        isinstance(obj, list)
        and len(obj) > 0
        and all(isinstance(r, Mapping) and is_structure_dict(r.get("structure")) for r in obj)
    )


def structure_from_dict(
    d: Mapping[str, Any],
    *,
    source: str | os.PathLike | None = None,
    index: int | None = None,
) -> Atoms:
    """Build :class:`ase.Atoms` from a pymatgen ``Structure.as_dict()`` (or ``Molecule``).

    Parameters
    ----------
    d
        The dict: ``lattice.matrix`` (3x3, Å, lattice vectors as rows) and ``sites``,
        each with ``species`` = ``[{"element": "Cu", "occu": 1}]`` and ``xyz``
        (Cartesian, Å) or, failing that, ``abc`` (fractional). Without ``lattice``
        (a ``Molecule``) the structure is not periodic and has no cell.
        Site ``properties`` present on every site with one shape become
        ``atoms.arrays``; structure-level ``properties`` go to ``atoms.info``.
    source, index
        Where the dict came from, for error messages.

    Returns
    -------
    ase.Atoms
        ``pbc`` is True along all three directions when there is a lattice.

    Raises
    ------
    DataError
        A missing or malformed field, or a site with partial occupancy or more than
        one species (ml4ms needs one element per site).
    UnknownElementError
        A species that is not a chemical element (e.g. a pymatgen DummySpecies).
    """

    def fail(message: str, field: str, cls: type[DataError] = DataError) -> DataError:
        return cls(message, source=source, index=index, field=field)

    if not isinstance(d, Mapping):
        raise fail(f"expected a pymatgen Structure dict, got {type(d).__name__}", "structure")
    sites = d.get("sites")
    if not isinstance(sites, list) or not all(isinstance(s, Mapping) for s in sites):
        raise fail("expected a list of site dicts under 'sites'", "sites")

    try:
        species = [s["species"] for s in sites]
    except KeyError:
        raise fail("a site has no 'species'", "species") from None
    n_species = np.fromiter((len(sp) for sp in species), dtype=np.int64, count=len(sites))
    if (n_species != 1).any():
        k = int(np.flatnonzero(n_species != 1)[0])
        raise fail(
            f"site {k} has {int(n_species[k])} species {_describe_species(species[k])}; "
            "disordered (partially occupied) sites are not supported",
            "species",
        )
    try:
        symbols = [sp[0]["element"] for sp in species]
        occu = np.array([sp[0].get("occu", 1.0) for sp in species], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise fail("a site's species has no 'element' or a non-numeric 'occu'", "species") from None
    if len(occu) and not np.allclose(occu, 1.0, rtol=0, atol=1e-8):
        k = int(np.flatnonzero(~np.isclose(occu, 1.0, rtol=0, atol=1e-8))[0])
        raise fail(
            f"site {k} has occupancy {occu[k]} of {symbols[k]}; "
            "partially occupied sites are not supported",
            "species",
        )
    unknown = sorted(
        {str(s) for s in symbols if not isinstance(s, str) or s not in atomic_numbers or s == "X"}
    )
    if unknown:
        raise fail(f"unknown element(s) {unknown}", "species", UnknownElementError)

    lattice = d.get("lattice")
    if lattice is not None:
        try:
            cell = np.asarray(lattice["matrix"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise fail("expected a 3x3 numeric 'lattice.matrix'", "cell") from None
        if cell.shape != (3, 3):
            raise fail(f"expected lattice.matrix of shape (3, 3), got {cell.shape}", "cell")
        pbc = True
    else:
        cell = np.zeros((3, 3))
        pbc = False

    try:
        if all("xyz" in s for s in sites):
            positions = np.asarray([s["xyz"] for s in sites], dtype=np.float64)
        elif lattice is not None:
            positions = np.asarray([s["abc"] for s in sites], dtype=np.float64) @ cell
        else:
            raise KeyError("xyz")
    except (KeyError, TypeError, ValueError):
        raise fail(
            "every site needs numeric 'xyz' (Cartesian, Å) or 'abc' coordinates", "positions"
        ) from None
    positions = positions.reshape(len(sites), -1) if len(sites) else np.zeros((0, 3))
    if positions.shape != (len(sites), 3):
        raise fail(
            f"expected coordinates of shape ({len(sites)}, 3), got {positions.shape}", "positions"
        )

    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=pbc)

    props = d.get("properties")
    if isinstance(props, Mapping):
        atoms.info.update(props)
    charge = d.get("charge")
    if charge not in (None, 0, 0.0):
        atoms.info["charge"] = charge
    _site_properties_to_arrays(atoms, sites)
    return atoms


def _describe_species(species: Any) -> str:
    try:
        return "(" + ", ".join(f"{sp['element']}:{sp.get('occu', 1)}" for sp in species) + ")"
    except (KeyError, TypeError):
        return repr(species)


def _site_properties_to_arrays(atoms: Atoms, sites: list[Mapping[str, Any]]) -> None:
    """Numeric site properties shared by every site become per-atom arrays."""
    if not sites:
        return
    first = sites[0].get("properties")
    if not isinstance(first, Mapping):
        return
    for key in first:
        if key in ("numbers", "positions"):
            continue
        try:
            values = np.asarray([s["properties"][key] for s in sites])
        except (KeyError, TypeError):
            continue
        if values.dtype.kind in "biuf" and values.shape[0] == len(atoms):
            atoms.arrays[key] = values.astype(np.float64) if values.dtype.kind == "f" else values


def read_mlearn(
    path_or_records: str | os.PathLike | Iterable[Mapping[str, Any]],
    *,
    stress_order: str | Sequence[str] | None = None,
    source: str | os.PathLike | None = None,
    indices: Sequence[int] | None = None,
) -> list[Atoms]:
    """Read mlearn records (a JSON file or already-loaded records) into labelled Atoms.

    Parameters
    ----------
    path_or_records
        A ``.json`` (or ``.json.gz``/``.bz2``/``.xz``) file holding a list of mlearn
        records, or the list itself.
    stress_order
        The component order of ``virial_stress``, e.g. ``"xx yy zz xy yz zx"``; overrides
        :data:`MLEARN_STRESS_ORDER`, which is looked up by the record's ``element``
        (or, without one, by the structure's only element).
    source
        Name used in error messages when records are passed directly.
    indices
        The index of each record in its source, for error messages (default 0, 1, ...).

    Returns
    -------
    list of ase.Atoms
        Periodic, with the labels present in each record's ``outputs``:

        - ``info["energy"]``: ``outputs.energy``, total energy in eV (unchanged);
        - ``arrays["forces"]``: ``outputs.forces``, (n, 3) eV/Å (unchanged, site order);
        - ``info["stress"]``: (6,) eV/Å³, ASE Voigt order (xx, yy, zz, yz, xz, xy),
          positive = tensile: ``-0.1 * ase.units.GPa * virial_stress`` (kBar, VASP sign,
          positive = compressive), after reordering by ``stress_order``;
        - ``info["config_type"]`` from ``group``; ``info["description"]``,
          ``info["tag"]`` unchanged.

    Raises
    ------
    FileFormatError
        The file is missing, or is not valid JSON, or not a list of mlearn records.
    DataError
        A record has a malformed structure or labels of the wrong shape (naming the
        source, the record index and the field), or it has a ``virial_stress`` for an
        element with no known component order and ``stress_order`` is not given.
    """
    if isinstance(path_or_records, (str, os.PathLike)):
        source = path_or_records if source is None else source
        records = load_json(path_or_records)
        if not isinstance(records, list):
            raise FileFormatError("expected a JSON list of mlearn records", path=source)
    else:
        records = list(path_or_records)
    if indices is None:
        indices = range(len(records))
    override = None if stress_order is None else parse_stress_order(stress_order)
    return [
        _record_to_atoms(rec, source=source, index=int(i), stress_order=override)
        for i, rec in zip(indices, records)
    ]


def _record_to_atoms(
    record: Any,
    *,
    source: str | os.PathLike | None,
    index: int,
    stress_order: tuple[str, ...] | None,
) -> Atoms:
    def fail(message: str, field: str) -> DataError:
        return DataError(message, source=source, index=index, field=field)

    if not isinstance(record, Mapping) or "structure" not in record:
        raise fail("expected an mlearn record with a 'structure'", "structure")
    atoms = structure_from_dict(record["structure"], source=source, index=index)
    n = len(atoms)
    if "num_atoms" in record and record["num_atoms"] != n:
        raise fail(
            f"num_atoms is {record['num_atoms']} but the structure has {n} sites", "num_atoms"
        )

    outputs = record.get("outputs") or {}
    if not isinstance(outputs, Mapping):
        raise fail("expected a dict under 'outputs'", "outputs")
    if outputs.get("energy") is not None:
        energy = outputs["energy"]
        if isinstance(energy, bool) or not isinstance(energy, (int, float)):
            raise fail(f"expected a number, got {energy!r}", "energy")
        atoms.info[ENERGY] = float(energy)
    if outputs.get("forces") is not None:
        forces = _as_float_array(outputs["forces"], fail, "forces")
        if forces.shape != (n, 3):
            raise fail(f"expected shape ({n}, 3), got {forces.shape}", "forces")
        atoms.arrays[FORCES] = forces
    if outputs.get("virial_stress") is not None:
        virial = _as_float_array(outputs["virial_stress"], fail, "virial_stress")
        if virial.shape != (6,):
            raise fail(f"expected 6 numbers, got shape {virial.shape}", "virial_stress")
        order = stress_order or _element_stress_order(record, atoms, fail)
        atoms.info[STRESS] = virial_stress_to_ase(virial, order)

    if record.get("group") is not None:
        atoms.info[GROUP] = record["group"]
    for key in ("description", "tag"):
        if record.get(key) is not None:
            atoms.info[key] = record[key]
    return atoms


def _as_float_array(value: Any, fail: Any, field: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail("expected numbers", field) from None


def _element_stress_order(record: Mapping[str, Any], atoms: Atoms, fail: Any) -> tuple[str, ...]:
    element = record.get("element")
    if element is None:
        present = sorted(set(atoms.get_chemical_symbols()))
        element = present[0] if len(present) == 1 else "".join(present)
    order = MLEARN_STRESS_ORDER.get(element)
    if order is None:
        raise fail(
            f"the component order of virial_stress is not known for {element!r} "
            f"(known: {', '.join(MLEARN_STRESS_ORDER)}); pass stress_order=, "
            "e.g. 'xx yy zz xy yz zx' for VASP's order",
            "virial_stress",
        )
    return order
