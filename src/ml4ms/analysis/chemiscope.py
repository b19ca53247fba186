"""Datasets for the chemiscope viewer: structures, properties and map coordinates in one JSON file.

chemiscope (https://chemiscope.org, lab-cosmo/chemiscope) shows a map of a dataset next
to the structures, linked: a click on a point opens its structure or atomic environment.
This module writes its input format without needing the chemiscope package:

.. code-block:: text

    {"meta": {"name", "description", "authors", "references"},
     "structures": [{"size", "names", "x", "y", "z", "cell"?}, ...],
     "properties": {NAME: {"target": "structure" | "atom", "values": [...],
                           "units"?, "description"?}, ...},
     "environments"?: [{"structure", "center", "cutoff"}, ...],
     "settings"?: {"target", "map": {"x": {"property"}, "y": ..., "color": ...}}}

Positions and cells are in Å, rows of the cell flattened as ``[ax, ay, az, bx, ...]``;
the cell is left out when a cell vector has zero length (a molecule), as chemiscope's
own writer does. ``"atom"`` properties hold one value per environment, in the order of
``environments``; 2-D values are split into ``NAME[1]``, ``NAME[2]``... Values are
numbers or strings; NaN and infinities are refused (JSON has no such numbers).

Open the file at https://chemiscope.org (drag it onto the page), or in Python with
``chemiscope.show_input(path)`` in a notebook.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from .._files import atomic_path
from ..errors import ConfigError, DataError, FileFormatError

__all__ = [
    "all_environments",
    "chemiscope_input",
    "map_settings",
    "read_chemiscope",
    "structures_from_chemiscope",
    "write_chemiscope",
]

_TARGETS = ("structure", "atom")
_PROPERTY_KEYS = ("target", "values", "units", "description")
_META_KEYS = ("name", "description", "authors", "references")


def _structure_json(atoms: Atoms) -> dict[str, Any]:
    positions = np.asarray(atoms.positions, dtype=float)
    data: dict[str, Any] = {
        "size": len(atoms),
        "names": list(atoms.get_chemical_symbols()),
        "x": positions[:, 0].tolist(),
        "y": positions[:, 1].tolist(),
        "z": positions[:, 2].tolist(),
    }
    cell = np.asarray(atoms.cell, dtype=float)
    if (np.linalg.norm(cell, axis=1) > 0).all():
        data["cell"] = cell.ravel().tolist()
    return data


def all_environments(images: Sequence[Atoms], cutoff: float = 3.5) -> list[dict[str, Any]]:
    """Every atom of every structure as a chemiscope environment, in order.

    Parameters
    ----------
    images
        Structures.
    cutoff
        Radius (Å) of the sphere chemiscope highlights around the centre.
    """
    if not cutoff > 0:
        raise ConfigError(f"the environment cutoff must be positive (Å), got {cutoff!r}")
    n_atoms = np.array([len(a) for a in images])
    structure = np.repeat(np.arange(len(n_atoms)), n_atoms)
    center = np.arange(n_atoms.sum()) - np.repeat(np.cumsum(n_atoms) - n_atoms, n_atoms)
    return [{"structure": int(s), "center": int(c), "cutoff": float(cutoff)} for s, c in zip(structure, center)]


def map_settings(
    x: str, y: str, *, z: str | None = None, color: str | None = None, symbol: str | None = None,
    target: str | None = None, palette: str | None = None,
) -> dict[str, Any]:
    """The ``settings`` block that opens the viewer on a given map.

    Parameters
    ----------
    x, y, z
        Property names for the axes (``z`` None for a 2-D map).
    color
        Property that colours the points.
    symbol
        A categorical (string-valued) property that chooses the marker shapes.
    target
        ``"structure"`` or ``"atom"``: which points the viewer shows first.
    palette
        chemiscope palette name for the colours (``"viridis"``, ``"tab10"``...).
    """
    settings: dict[str, Any] = {}
    if target is not None:
        if target not in _TARGETS:
            raise ConfigError(f"settings target must be 'structure' or 'atom', got {target!r}")
        settings["target"] = target
    panel: dict[str, Any] = {"x": {"property": x}, "y": {"property": y}, "z": {"property": z or ""}}
    if color is not None:
        panel["color"] = {"property": color} | ({"palette": palette} if palette else {})
    if symbol is not None:
        panel["symbol"] = symbol
    settings["map"] = panel
    return settings


def _values_list(name: str, values, expected: int, target: str) -> list:
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"expected one value per {target}, got an array of shape {array.shape}", field=name)
    if len(array) != expected:
        per = "environment" if target == "atom" else "structure"
        raise DataError(f"target {target!r} needs {expected} values (one per {per}), got {len(array)}", field=name)
    if array.dtype.kind in "USO":
        items = array.tolist()
        if array.dtype.kind == "O" and not all(isinstance(v, str) for v in items):
            try:
                array = array.astype(float)
            except (TypeError, ValueError):
                raise DataError("values must all be numbers or all be strings", field=name) from None
        else:
            return [str(v) for v in items]
    if array.dtype.kind not in "biuf":
        raise DataError(f"values must be numbers or strings, got dtype {array.dtype}", field=name)
    array = array.astype(float)
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(f"{int(bad.sum())} value(s) are NaN or infinite (first at index {int(np.argmax(bad))}); "
                        "chemiscope files hold finite numbers only", field=name)
    return array.tolist()


def _normalise_properties(
    properties: Mapping[str, Any], n_structures: int, n_environments: int | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, prop in properties.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"property names must be non-empty strings, got {name!r}")
        if not isinstance(prop, Mapping):
            raise ConfigError(f"property {name!r}: expected a mapping with 'target' and 'values', "
                              f"got {type(prop).__name__}")
        unknown = set(prop) - set(_PROPERTY_KEYS)
        if unknown:
            raise ConfigError(f"property {name!r}: unknown keys {sorted(unknown)}; allowed: {list(_PROPERTY_KEYS)}")
        target = prop.get("target")
        if target not in _TARGETS:
            raise ConfigError(f"property {name!r}: target must be 'structure' or 'atom', got {target!r}")
        if "values" not in prop:
            raise ConfigError(f"property {name!r} has no 'values'")
        if target == "atom" and n_environments is None:
            raise ConfigError(f"property {name!r} has target 'atom' but no environments were given")
        expected = n_environments if target == "atom" else n_structures
        values = np.asarray(prop["values"])
        if values.ndim > 2:
            raise DataError(f"values must be 1-D or 2-D, got shape {values.shape}", field=name)
        columns = [values] if values.ndim <= 1 else [values[:, k] for k in range(values.shape[1])]
        for k, column in enumerate(columns):
            key = name if len(columns) == 1 else f"{name}[{k + 1}]"
            if key in out:
                raise ConfigError(f"property {key!r} is given twice")
            entry: dict[str, Any] = {"target": target, "values": _values_list(key, column, expected, target)}
            if prop.get("units") is not None:
                entry["units"] = str(prop["units"])
            if prop.get("description") is not None:
                extra = f" [component {k + 1}]" if len(columns) > 1 else ""
                entry["description"] = str(prop["description"]) + extra
            out[key] = entry
    return out


def chemiscope_input(
    images: Sequence[Atoms],
    properties: Mapping[str, Any] | None = None,
    *,
    environments: Sequence | None = None,
    meta: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A chemiscope dataset as a JSON-ready dict.

    Parameters
    ----------
    images
        Structures (positions in Å).
    properties
        ``{name: {"target": "structure" | "atom", "values": array, "units": str,
        "description": str}}``; ``values`` of shape (n,) or (n, k) (split into
        ``name[1]``... ``name[k]``), numbers or strings, n the number of structures or of
        environments.
    environments
        For ``"atom"`` properties: dicts ``{"structure", "center", "cutoff"}`` or tuples
        ``(structure, center, cutoff)`` (cutoff in Å); :func:`all_environments` lists
        every atom.
    meta
        ``name`` (default "ml4ms dataset"), ``description``, ``authors`` (list of str),
        ``references`` (list of str).
    settings
        Viewer settings, e.g. from :func:`map_settings`; property names they mention
        must exist.

    Raises
    ------
    ConfigError
        Unknown keys, bad targets, atom properties without environments, settings that
        name missing properties.
    DataError
        Values of the wrong length, NaN or infinite values, environments that point
        outside their structure.
    """
    images = list(images)
    if not images:
        raise DataError("a chemiscope dataset needs at least one structure", field="structures")
    meta = dict(meta or {})
    unknown = set(meta) - set(_META_KEYS)
    if unknown:
        raise ConfigError(f"meta: unknown keys {sorted(unknown)}; allowed: {list(_META_KEYS)}")
    clean_meta: dict[str, Any] = {"name": str(meta.get("name") or "ml4ms dataset")}
    if meta.get("description") is not None:
        clean_meta["description"] = str(meta["description"])
    for key in ("authors", "references"):
        if meta.get(key) is not None:
            if isinstance(meta[key], str):
                raise ConfigError(f"meta {key} must be a list of strings, got a single string")
            clean_meta[key] = [str(v) for v in meta[key]]
    structures = [_structure_json(a) for a in images]
    data: dict[str, Any] = {"meta": clean_meta}
    if settings is not None:
        data["settings"] = json.loads(json.dumps(settings))
    data["structures"] = structures
    n_environments = None
    if environments is not None:
        envs = []
        for k, env in enumerate(environments):
            if isinstance(env, Mapping):
                env = (env.get("structure"), env.get("center"), env.get("cutoff"))
            if len(env) != 3:
                raise DataError(f"environment {k}: expected (structure, center, cutoff), got {env!r}",
                                field="environments")
            s, c, cutoff = int(env[0]), int(env[1]), float(env[2])
            if not 0 <= s < len(structures):
                raise DataError(f"environment {k}: structure {s} is not in the {len(structures)} structures",
                                field="environments")
            if not 0 <= c < structures[s]["size"]:
                raise DataError(f"environment {k}: atom {c} is not in structure {s} of {structures[s]['size']} "
                                "atoms", field="environments")
            if not cutoff > 0:
                raise DataError(f"environment {k}: the cutoff must be positive, got {cutoff}", field="environments")
            envs.append({"structure": s, "center": c, "cutoff": cutoff})
        data["environments"] = envs
        n_environments = len(envs)
    data["properties"] = _normalise_properties(properties or {}, len(structures), n_environments)
    if settings is not None:
        _check_settings(data["settings"], data["properties"], n_environments is not None)
    return data


def _check_settings(settings: dict, properties: dict, has_environments: bool) -> None:
    if settings.get("target") == "atom" and not has_environments:
        raise ConfigError("settings target 'atom' needs environments")
    panel = settings.get("map", {})
    named = [panel.get(axis, {}).get("property") for axis in ("x", "y", "z", "color", "size")
             if isinstance(panel.get(axis), Mapping)]
    if isinstance(panel.get("symbol"), str):
        named.append(panel["symbol"])
    missing = sorted({p for p in named if p and p not in properties})
    if missing:
        raise ConfigError(f"settings name properties that are not in the dataset: {missing}; "
                          f"available: {sorted(properties)}")


def write_chemiscope(
    path: str | os.PathLike,
    images: Sequence[Atoms],
    properties: Mapping[str, Any] | None = None,
    *,
    environments: Sequence | None = None,
    meta: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write a chemiscope dataset (see :func:`chemiscope_input`) to ``path``, atomically.

    ``path`` must end in ``.json`` or ``.json.gz`` (gzip-compressed, which chemiscope
    also opens). The meta name defaults to the file's stem.
    """
    path = Path(path)
    name = path.name
    if not (name.endswith(".json") or name.endswith(".json.gz")):
        raise ConfigError(f"{path}: a chemiscope file must end in .json or .json.gz")
    meta = dict(meta or {})
    meta.setdefault("name", name.split(".")[0])
    data = chemiscope_input(images, properties, environments=environments, meta=meta, settings=settings)
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    with atomic_path(path) as tmp:
        if name.endswith(".gz"):
            with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as handle:
                handle.write(text)
        else:
            tmp.write_text(text, encoding="utf-8")
    return path


def read_chemiscope(path: str | os.PathLike) -> dict[str, Any]:
    """Load a chemiscope JSON (or ``.json.gz``) file as a dict, checking its required parts.

    Raises
    ------
    FileFormatError
        Unreadable, not JSON, or without ``structures``/``properties``, or with
        property lengths that do not match the structures or environments.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                data = json.load(handle)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"not a readable chemiscope JSON file ({exc})", path=path) from None
    if not isinstance(data, dict) or "structures" not in data or "properties" not in data:
        raise FileFormatError("a chemiscope file needs 'structures' and 'properties'", path=path)
    n_structures = len(data["structures"])
    n_environments = len(data.get("environments", []))
    for s, structure in enumerate(data["structures"]):
        size = structure.get("size")
        if any(len(structure.get(k, [])) != size for k in ("names", "x", "y", "z")):
            raise FileFormatError(f"structure {s}: names/x/y/z do not all have {size} entries", path=path)
    for name, prop in data["properties"].items():
        expected = n_environments if prop.get("target") == "atom" else n_structures
        if len(prop.get("values", [])) != expected:
            raise FileFormatError(f"property {name!r}: {len(prop.get('values', []))} values for {expected} "
                                  f"{prop.get('target')}s", path=path)
    return data


def structures_from_chemiscope(data: Mapping[str, Any]) -> list[Atoms]:
    """The structures of a chemiscope dataset (a dict from :func:`read_chemiscope`) as ASE Atoms.

    A structure with a ``cell`` is periodic in all three directions, one without is not.
    """
    images = []
    for structure in data["structures"]:
        positions = np.column_stack([structure["x"], structure["y"], structure["z"]])
        cell = structure.get("cell")
        images.append(Atoms(symbols=structure["names"], positions=positions,
                            cell=None if cell is None else np.reshape(cell, (3, 3)), pbc=cell is not None))
    return images
