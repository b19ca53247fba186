"""Read and write labelled structures: every ASE format, mlearn/pymatgen JSON, ASE databases.

:func:`read` returns a list of :class:`ase.Atoms` whose labels sit under ml4ms's
canonical names, in ASE units (see :mod:`ml4ms.keys`):

- ``atoms.info["energy"]``: float, total energy, eV;
- ``atoms.arrays["forces"]``: (n_atoms, 3), eV/Å;
- ``atoms.info["stress"]``: (6,), eV/Å³, Voigt order (xx, yy, zz, yz, xz, xy),
  positive = tensile (ASE's sign).

Where the labels come from, and the conversions applied:

- **ASE formats** (extxyz, VASP OUTCAR/vasprun.xml, Quantum ESPRESSO, CIF, traj...):
  ``ase.io.read``. Each label is looked up under its configured key (``energy_key``...)
  first in ``atoms.info``/``atoms.arrays``, then in the results of the attached
  calculator (ASE >= 3.23 moves ``energy``/``forces``/``stress`` of an extxyz file
  into a ``SinglePointCalculator``; ``REF_*`` keys stay in info/arrays). A stress of 9
  numbers or (3, 3) is converted to Voigt (off-diagonal pairs averaged). Without a
  stress, a virial (3x3 or Voigt-6, eV) under ``virial``/``virials`` -- or
  ``REF_virial``/``REF_virials`` when ``stress_key`` is ``REF_stress`` (the prefix of
  ``stress_key`` is used) -- becomes ``stress = -virial / volume``. No unit conversion
  otherwise: ASE readers already return eV, Å, eV/Å, eV/Å³.
- **mlearn / pymatgen JSON** (``.json``, ``.json.gz``, ``.json.bz2``, ``.json.xz``):
  see :mod:`ml4ms.data.pymatgen` (``virial_stress`` kBar, VASP sign, per-element
  component order -> eV/Å³, ASE sign and order).
- **ASE databases** (SQLite ``.db``, ASE's ``.json`` database, ``postgresql://`` URLs):
  labels from the row's calculator results, or from ``key_value_pairs``/``data`` under
  the configured keys. Key-value pairs (and data) are kept in ``atoms.info``.

After reading, the calculator is removed (``atoms.calc = None``) so that labels live in
one place. Its other results (``free_energy``, ``magmoms``, ``energies``...) move to
``atoms.info``/``atoms.arrays`` under their own names; values stored under the canonical
names that were *not* read as labels (e.g. a model's ``energy`` when ``energy_key`` is
``"REF_energy"``) are dropped so they cannot be mistaken for reference labels.
Every structure returned has passed :func:`ml4ms.data.validate.validate_structure`.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import inspect
import lzma
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from .._files import atomic_path
from ..errors import DataError, FileFormatError
from ..keys import ENERGY, FORCES, STRESS
from .pymatgen import (
    is_mlearn_records,
    is_structure_dict,
    load_json,
    read_mlearn,
    structure_from_dict,
)
from .validate import validate_structure

__all__ = ["read", "write"]

_DB_URL_PREFIXES = ("postgresql://", "postgres://")
_COMPRESSION = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Calculator results that are per atom; every other result is per structure.
_PER_ATOM_RESULTS = frozenset({"forces", "energies", "stresses", "charges", "magmoms"})
# Data items written by `write` to a database to carry arrays ASE's rows do not store.
_DB_ARRAYS_KEY = "ml4ms_arrays"
# Arrays ASE keeps in its own columns (or derives); never copied into `data`.
_ASE_ARRAYS = frozenset(
    {"numbers", "positions", "momenta", "initial_magmoms", "initial_charges", "tags", "masses"}
)

Index = int | str | slice


class _Keys(NamedTuple):
    energy: str
    forces: str
    stress: str

    @property
    def virials(self) -> tuple[str, ...]:
        # REF_stress pairs with REF_virial(s); plain stress with virial(s).
        prefix = self.stress[: -len("stress")] if self.stress.endswith("stress") else ""
        return (f"{prefix}virial", f"{prefix}virials")


# ----------------------------------------------------------------------------- reading


def read(
    path: str | os.PathLike,
    index: Index = ":",
    energy_key: str = ENERGY,
    forces_key: str = FORCES,
    stress_key: str = STRESS,
    format: str | None = None,
    *,
    select: Any = None,
    stress_order: str | Sequence[str] | None = None,
    require: Iterable[str] | str = (),
) -> list[Atoms]:
    """Read labelled structures from a file, JSON dataset or ASE database.

    Parameters
    ----------
    path
        A file ASE can read, an mlearn/pymatgen JSON file, an ASE database file
        (``.db``, or an ASE ``.json`` database, detected by content) or a
        ``postgresql://``/``postgres://`` URL.
    index
        Which structures, as in ASE: ``":"`` all (default), an int (``0``, ``-1``), a
        slice or slice string (``"0:10"``, ``"::2"``). For databases it applies to the
        rows matched by ``select``, in id order.
    energy_key, forces_key, stress_key
        Names of the labels in the source (e.g. ``"REF_energy"``). They are returned
        under ``"energy"``, ``"forces"`` and ``"stress"``.
    format
        ASE format name (``"extxyz"``, ``"vasp-out"``, ``"espresso-out"``...), or
        ``"db"``/``"postgresql"`` for a database, ``"mlearn"``/``"pymatgen"`` for JSON.
        Guessed from the name and content when omitted.
    select
        Database row selection passed to ``db.select`` (string such as
        ``"config_type=bulk,natoms<50"``, an id, a list of ``(key, op, value)``, or a
        dict of keyword filters). Databases only.
    stress_order
        mlearn only: the order of the six ``virial_stress`` components, e.g.
        ``"xx yy zz xy yz zx"``, overriding the per-element table.
    require
        Labels every structure must have, by their canonical names, e.g.
        ``("energy", "forces")``.

    Returns
    -------
    list of ase.Atoms
        Labels as described in the module docstring; no calculator attached.

    Raises
    ------
    FileFormatError
        The file is missing, truncated or malformed, or of an unknown format (one line,
        naming the file).
    DataError
        A label has the wrong shape, a value is NaN/inf, a required label is missing, a
        cell is degenerate or two atoms overlap (naming the file, structure index and
        field). For databases the index is the row id.
    """
    keys = _Keys(energy_key, forces_key, stress_key)
    idx = parse_index(index)
    fmt = None if format is None else format.lower()

    if _is_db_url(path):
        items = _read_db(str(path), "postgresql", idx, select, keys)
        source: str | Path = _redact_url(str(path))
    else:
        source = Path(path)
        if not source.exists():
            raise FileFormatError("no such file or directory", path=source)
        kind = _input_kind(source, fmt)
        if kind == "db":
            items = _read_db(source, "db", idx, select, keys)
        elif kind == "json":
            items = _read_json(source, idx, select, keys, stress_order, fmt)
        else:
            _no_select(select, source)
            items = _read_ase(source, idx, fmt, keys)

    for i, atoms in items:
        validate_structure(atoms, source=source, index=i, require=require)
    return [atoms for _, atoms in items]


def _no_select(select: Any, source: Path) -> None:
    if select is not None:
        raise DataError(
            "select= filters database rows; this source is not an ASE database (use index=)",
            source=source,
            field="select",
        )


def _is_db_url(path: Any) -> bool:
    return isinstance(path, str) and path.lower().startswith(_DB_URL_PREFIXES)


def _redact_url(url: str) -> str:
    """Drop the password from a database URL before it goes into an error message."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


def _compression_suffix(path: Path) -> str:
    return path.suffix.lower() if path.suffix.lower() in _COMPRESSION else ""


def _base_suffix(path: Path) -> str:
    """The suffix under any compression suffix: ``.json`` for ``x.json.gz``."""
    name = path.name.lower()
    comp = _compression_suffix(path)
    return Path(name[: len(name) - len(comp)]).suffix


def _input_kind(path: Path, fmt: str | None) -> str:
    if fmt in ("db", "sqlite", "postgresql"):
        return "db"
    if fmt in ("json", "mlearn", "pymatgen"):
        return "json"
    if fmt is None and _base_suffix(path) == ".json":
        return "json"
    if fmt is None and path.suffix.lower() == ".db":
        return "db"
    return "ase"


def parse_index(index: Index) -> int | slice:
    """ASE-style index: int, slice, or a string such as ``":"``, ``"-1"``, ``"0:10:2"``."""
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, slice):
        return index
    if isinstance(index, str):
        text = index.strip()
        try:
            if ":" not in text:
                return int(text)
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            return slice(*parts)
        except ValueError:
            pass
    raise DataError(
        f"expected an int, a slice or a string such as ':', '-1' or '0:10', got {index!r}",
        field="index",
    )


def _apply_index(n_total: int, idx: int | slice, source: Any) -> list[int]:
    """Positions selected by ``idx`` in a sequence of ``n_total`` items."""
    if isinstance(idx, int):
        if not -n_total <= idx < n_total:
            raise DataError(
                f"index {idx} is out of range: the source holds {n_total} structures",
                source=source,
                field="index",
            )
        return [idx % n_total]
    return list(range(n_total))[idx]


def _read_ase(
    path: Path, idx: int | slice, fmt: str | None, keys: _Keys
) -> list[tuple[int, Atoms]]:
    # Let ASE read only what is asked when the source indices follow from the index
    # alone; negative indices need the total count, so read everything then. An int is
    # read as a one-item slice so that "no such structure" (an empty list) cannot be
    # confused with a parsing error.
    if isinstance(idx, int) and idx >= 0:
        ase_index: slice | None = slice(idx, idx + 1)
    elif (
        isinstance(idx, slice)
        and (idx.start is None or idx.start >= 0)
        and (idx.stop is None or idx.stop >= 0)
        and (idx.step is None or idx.step > 0)
    ):
        ase_index = idx
    else:
        ase_index = None
    try:
        with warnings.catch_warnings():
            # ASE warns e.g. about unknown info keys; the result is checked below anyway.
            warnings.simplefilter("ignore")
            out = ase.io.read(str(path), index=ase_index or slice(None), format=fmt)
    except Exception as err:  # noqa: BLE001 - ASE readers raise anything on bad input
        what = f"as {fmt}" if fmt else "(format guessed from the name and content)"
        raise FileFormatError(
            f"cannot read {what}: {_one_line(err)} (truncated or malformed file?)", path=path
        ) from None
    images = [out] if isinstance(out, Atoms) else list(out)

    if ase_index is not None:
        start, step = ase_index.start or 0, ase_index.step or 1
        positions = [start + k * step for k in range(len(images))]
        if isinstance(idx, int) and not images:
            raise DataError(f"index {idx} is out of range", source=path, field="index")
    else:
        positions = _apply_index(len(images), idx, path)
        images = [images[p] for p in positions]

    for i, atoms in zip(positions, images):
        _extract_labels(atoms, keys, source=path, index=i)
    return list(zip(positions, images))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no details"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(err).__name__}: {text}"


def _read_json(
    path: Path,
    idx: int | slice,
    select: Any,
    keys: _Keys,
    stress_order: str | Sequence[str] | None,
    fmt: str | None,
) -> list[tuple[int, Atoms]]:
    data = load_json(path)
    if _is_ase_json_db(data):
        if fmt in ("mlearn", "pymatgen"):
            raise FileFormatError(f"this is an ASE JSON database, not {fmt} JSON", path=path)
        return _read_db(path, "json", idx, select, keys)
    _no_select(select, path)
    if is_structure_dict(data):
        data = [data]
    if not isinstance(data, list):
        raise FileFormatError(
            "expected a list of mlearn records, pymatgen Structure dict(s) or an ASE "
            f"JSON database; got a JSON {type(data).__name__}",
            path=path,
        )
    positions = _apply_index(len(data), idx, path)
    if not data:
        return []
    if is_mlearn_records(data):
        images = read_mlearn(
            [data[p] for p in positions], stress_order=stress_order, source=path, indices=positions
        )
        return list(zip(positions, images))
    if all(is_structure_dict(d) for d in data):
        items = []
        for p in positions:
            atoms = structure_from_dict(data[p], source=path, index=p)
            _extract_labels(atoms, keys, source=path, index=p)
            items.append((p, atoms))
        return items
    raise FileFormatError(
        "expected a list of mlearn records ({'structure', 'outputs', ...}) or of pymatgen "
        "Structure dicts ({'lattice', 'sites', ...})",
        path=path,
    )


def _is_ase_json_db(data: Any) -> bool:
    return isinstance(data, dict) and "ids" in data and "nextid" in data


def _connect(target: str | Path, db_type: str, **kwargs: Any):
    import ase.db

    try:
        # No lock files: reads may be from read-only directories, and writes go to a
        # private temporary file.
        return ase.db.connect(str(target), type=db_type, use_lock_file=False, **kwargs)
    except ImportError as err:
        source = _redact_url(str(target)) if isinstance(target, str) else target
        raise FileFormatError(
            f"{db_type} databases need ASE's optional back-end ({err.name or err}); "
            "install it with `pip install ase-db-backends psycopg2-binary`",
            path=source,
        ) from None


def _read_db(
    target: str | Path, db_type: str, idx: int | slice, select: Any, keys: _Keys
) -> list[tuple[int, Atoms]]:
    source = _redact_url(str(target)) if isinstance(target, str) else target
    try:
        db = _connect(target, db_type)
        if select is None:
            rows = list(db.select())
        elif isinstance(select, Mapping):
            rows = list(db.select(**select))
        else:
            rows = list(db.select(select))
    except FileFormatError:
        raise
    except Exception as err:  # noqa: BLE001 - sqlite3/psycopg2/ASE errors alike
        raise FileFormatError(
            f"cannot read the ASE database: {_one_line(err)}", path=source
        ) from None

    items = []
    for p in _apply_index(len(rows), idx, source):
        row = rows[p]
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        data = row.get("data") or {}
        for key, value in dict(data).items():
            if key == _DB_ARRAYS_KEY and isinstance(value, Mapping):
                for name, arr in value.items():
                    arr = np.asarray(arr)
                    if arr.shape[:1] == (len(atoms),):
                        atoms.arrays[name] = arr
            else:
                atoms.info[key] = value
        _extract_labels(atoms, keys, source=source, index=row.id)
        items.append((row.id, atoms))
    return items


def _extract_labels(atoms: Atoms, keys: _Keys, *, source: Any, index: int) -> None:
    """Move the labels to their canonical places, in place; drop the calculator."""
    n = len(atoms)
    results = dict(getattr(atoms.calc, "results", None) or {})
    info, arrays = atoms.info, atoms.arrays

    def fail(message: str, field: str) -> DataError:
        return DataError(message, source=source, index=index, field=field)

    def take(key: str, *stores: dict[str, Any]) -> Any:
        for store in stores:
            if key in store:
                return store.pop(key)
        return None

    def as_float(value: Any, field: str) -> np.ndarray:
        try:
            return np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise fail(f"expected numbers, got {value!r:.80}", field) from None

    energy = take(keys.energy, info, results)
    forces = take(keys.forces, arrays, info, results)
    stress = take(keys.stress, info, results)
    if stress is not None:
        stress = _as_voigt(as_float(stress, keys.stress), fail, keys.stress)
    else:
        for key in keys.virials:
            virial = take(key, info)
            if virial is not None:
                volume = abs(float(np.linalg.det(atoms.cell.array)))
                if not volume > 0:
                    raise fail("cannot convert a virial to a stress: the cell has zero volume", key)
                stress = -_as_voigt(as_float(virial, key), fail, key) / volume
                break

    # Leftover calculator results keep their names; canonical names that were not the
    # configured source are not labels and must not become labels.
    _keep_other_results(atoms, results)
    for store in (info, arrays):
        for name in (ENERGY, FORCES, STRESS):
            if name in store and name not in (keys.energy, keys.forces, keys.stress):
                del store[name]
    atoms.calc = None

    if energy is not None:
        e = as_float(energy, keys.energy)
        if e.size != 1:
            raise fail(f"expected one number (eV), got shape {e.shape}", keys.energy)
        info[ENERGY] = float(e.reshape(()))
    if forces is not None:
        f = as_float(forces, keys.forces)
        if f.shape != (n, 3):
            raise fail(f"expected shape ({n}, 3), got {f.shape}", keys.forces)
        arrays[FORCES] = f
    if stress is not None:
        info[STRESS] = stress


def _keep_other_results(atoms: Atoms, results: Mapping[str, Any]) -> None:
    """Copy calculator results other than the labels into info (per atom: arrays)."""
    n = len(atoms)
    for name, value in results.items():
        if name in (ENERGY, FORCES, STRESS):
            continue
        value = np.asarray(value) if isinstance(value, (list, tuple)) else value
        if name in _PER_ATOM_RESULTS and np.shape(value)[:1] == (n,):
            atoms.arrays.setdefault(name, np.asarray(value))
        else:
            atoms.info.setdefault(name, value)


def _as_voigt(value: np.ndarray, fail: Callable[[str, str], DataError], field: str) -> np.ndarray:
    """6 numbers (ASE Voigt order) or 9 / (3, 3) numbers -> Voigt (xx, yy, zz, yz, xz, xy)."""
    if value.size == 6 and value.ndim == 1:
        return value.astype(np.float64)
    if value.size == 9 and value.shape in ((9,), (3, 3)):
        return full_3x3_to_voigt_6_stress(value.reshape(3, 3))
    raise fail(f"expected 6 (Voigt) or 9 (3x3) numbers, got shape {value.shape}", field)


# ----------------------------------------------------------------------------- writing


def write(
    path: str | os.PathLike,
    images: Atoms | Iterable[Atoms],
    format: str | None = None,
) -> None:
    """Write labelled structures so that :func:`read` returns them unchanged.

    Labels are taken from ``info["energy"]``, ``arrays["forces"]`` and
    ``info["stress"]`` (or, when absent there, from an attached calculator's results).

    - ``.xyz``/``.extxyz`` (optionally ``.gz``/``.bz2``/``.xz``), or ``format="extxyz"``:
      extended XYZ written with ASE's column and key=value encoders but with every float
      printed in its shortest exact form (ASE's own writer rounds per-atom columns to 8
      decimals), so positions, forces, energy, stress (as the 3x3 ``stress`` key),
      ``config_type`` and other info round-trip exactly.
    - ``.db`` (SQLite) or ``.json`` (ASE JSON database), or a ``postgresql://`` URL:
      rows are appended; labels go to the row's calculator columns, scalar info to
      ``key_value_pairs``, other info and custom per-atom arrays to ``data``.
    - Anything else: ``ase.io.write`` with the labels attached as a
      ``SinglePointCalculator`` (what is kept depends on the format).

    Files are written atomically: to a temporary file in the same directory, then
    renamed over ``path`` (a database is copied, appended to, then renamed), so a
    reader never sees a half-written file. A ``postgresql://`` database is appended to
    in one transaction, committed after the last row: on failure no row is added
    (the server's id sequence may still advance, leaving a gap in the row ids).

    Parameters
    ----------
    path
        Output file or database URL.
    images
        One structure or several.
    format
        ASE format name, or ``"db"``/``"json"`` for databases; guessed from the name
        when omitted.

    Raises
    ------
    FileFormatError
        Unknown format, or the writer failed (nothing is written then).
    DataError
        A label has the wrong shape, or a structure fails
        :func:`~ml4ms.data.validate.validate_structure` (which :func:`read` would reject).
    """
    images = [images] if isinstance(images, Atoms) else list(images)
    fmt = None if format is None else format.lower()
    source = _redact_url(str(path)) if _is_db_url(path) else Path(path)
    # Write only what `read` accepts back; fail before touching the destination.
    prepared = [_with_canonical_labels(a, source=source, index=i) for i, a in enumerate(images)]
    for i, atoms in enumerate(prepared):
        validate_structure(atoms, source=source, index=i)

    if _is_db_url(path):
        _write_db_rows(str(path), "postgresql", prepared, source=source)
        return
    path = Path(path)
    suffix = _base_suffix(path)
    if fmt in ("db", "sqlite") or (fmt is None and path.suffix.lower() == ".db"):
        _write_db_file(path, "db", prepared)
    elif fmt == "json" or (fmt is None and suffix == ".json"):
        _write_db_file(path, "json", prepared)
    elif fmt == "extxyz" or (fmt is None and suffix in (".xyz", ".extxyz")):
        opener = _COMPRESSION.get(_compression_suffix(path), open)
        with atomic_path(path) as tmp, opener(tmp, "wt", encoding="utf-8") as fh:
            _write_extxyz(fh, prepared)
    else:
        _write_with_ase(path, fmt, prepared)


def _with_canonical_labels(atoms: Atoms, *, source: Any, index: int) -> Atoms:
    """A copy without calculator; labels in info/arrays (falling back to calc results)."""
    results = getattr(atoms.calc, "results", None) or {}
    energy = atoms.info.get(ENERGY, results.get(ENERGY))
    forces = atoms.arrays.get(FORCES, results.get(FORCES))
    stress = atoms.info.get(STRESS, results.get(STRESS))
    out = atoms.copy()
    out.calc = None
    n = len(atoms)

    def fail(message: str, field: str) -> DataError:
        return DataError(message, source=source, index=index, field=field)

    if energy is not None:
        try:
            out.info[ENERGY] = float(energy)
        except (TypeError, ValueError):
            raise fail(f"expected a number (eV), got {energy!r:.80}", ENERGY) from None
    if forces is not None:
        f = np.asarray(forces)
        if f.shape != (n, 3) or f.dtype.kind not in "iuf":
            raise fail(f"expected shape ({n}, 3), got {f.shape}", FORCES)
        out.arrays[FORCES] = f.astype(np.float64)
    if stress is not None:
        s = np.asarray(stress)
        if s.dtype.kind not in "iuf":
            raise fail(f"expected numbers, got {stress!r:.80}", STRESS)
        out.info[STRESS] = _as_voigt(s.astype(np.float64), fail, STRESS)
    _keep_other_results(out, results)
    return out


def _labels_calculator(atoms: Atoms) -> Atoms:
    """A copy whose labels sit in a SinglePointCalculator (for ASE writers, databases)."""
    copy = atoms.copy()
    results = {}
    for store, name in ((copy.info, ENERGY), (copy.arrays, FORCES), (copy.info, STRESS)):
        if name in store:
            results[name] = store.pop(name)
    copy.calc = SinglePointCalculator(copy, **results) if results else None
    return copy


def _write_extxyz(fh, images: Sequence[Atoms]) -> None:
    from ase.io import extxyz

    for atoms in images:
        if STRESS in atoms.info:
            # ASE's extxyz stores `stress` as a 3x3 special key and reads it back as Voigt.
            atoms = atoms.copy()
            atoms.info[STRESS] = voigt_6_to_full_3x3_stress(atoms.info[STRESS])
        n = len(atoms)
        columns = ["symbols", "positions"] + [
            k
            for k in atoms.arrays
            if k not in ("numbers", "positions", "symbols", "species", "pos")
        ]
        arrays = {k: atoms.arrays[k] for k in columns[2:]}
        arrays["symbols"] = np.array(atoms.get_chemical_symbols())
        arrays["positions"] = atoms.positions
        if atoms.constraints and hasattr(extxyz, "_make_move_mask"):
            mask = extxyz._make_move_mask(atoms)
            if not mask.all():
                columns.append("move_mask")
                arrays["move_mask"] = mask
        comment, ncols, dtype, fmt = extxyz.output_column_format(atoms, columns, arrays, True)
        # "%r" of a Python float is its shortest exact representation.
        fmt = fmt.replace("%16.8f", "%r")
        data = np.zeros(n, dtype)
        for column, ncol in zip(columns, ncols):
            value = arrays[column]
            if ncol == 1:
                data[column] = np.squeeze(value)
            else:
                for c in range(ncol):
                    data[column + str(c)] = value[:, c]
        fh.write(f"{n}\n{comment}\n")
        fh.writelines(fmt % row for row in data.tolist())


def _write_with_ase(path: Path, fmt: str | None, images: list[Atoms]) -> None:
    from ase.io.formats import filetype

    if fmt is None:
        try:
            fmt = filetype(str(path), read=False)
        except Exception as err:  # noqa: BLE001
            raise FileFormatError(
                f"cannot tell the format from the name: {_one_line(err)}", path=path
            ) from None
    prepared = [_labels_calculator(a) for a in images]
    try:
        with atomic_path(path) as tmp:
            ase.io.write(str(tmp), prepared if len(prepared) != 1 else prepared[0], format=fmt)
    except Exception as err:  # noqa: BLE001 - ASE writers raise anything
        raise FileFormatError(
            f"cannot write {len(prepared)} structure(s) as {fmt}: {_one_line(err)}", path=path
        ) from None


def _write_db_file(path: Path, db_type: str, images: list[Atoms]) -> None:
    # Appending in place could leave a half-appended file; copy, append, then rename.
    with atomic_path(path, copy_existing=True) as tmp:
        _write_db_rows(tmp, db_type, images, source=path)


def _write_db_rows(target: str | Path, db_type: str, images: list[Atoms], source: Any) -> None:
    from ase.db.core import check

    rows = []
    for atoms in images:
        copy = _labels_calculator(atoms)
        kvp: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key, value in copy.info.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # keys that look like formulas
                    check({key: value})
                kvp[key] = value.item() if isinstance(value, np.generic) else value
            except (ValueError, TypeError):
                data[key] = value
        extra = {k: v for k, v in copy.arrays.items() if k not in _ASE_ARRAYS}
        if extra:
            data[_DB_ARRAYS_KEY] = extra
        rows.append((copy, kvp, data))
    try:
        db = _connect(target, db_type)
        with _transaction(db):
            for copy, kvp, data in rows:
                db.write(copy, key_value_pairs=kvp, data=data)
    except FileFormatError:
        raise
    except Exception as err:  # noqa: BLE001 - sqlite3/psycopg2/ASE errors alike
        raise FileFormatError(
            f"cannot write to the ASE database: {_one_line(err)}", path=source
        ) from None


@contextmanager
def _transaction(db: Any) -> Iterator[None]:
    """``with db:`` -- one transaction on ASE's SQL back-ends -- made all or nothing.

    Two quirks are undone: inside ``with db:`` ASE commits every 5000 writes
    (``managed_connection(commit_frequency=5000)``), so a large write could be left
    half-committed; and ase-db-backends' PostgreSQL connection wrapper has no
    ``rollback``, so a failed write raised an ``AttributeError`` from ``__exit__`` in
    place of its own error. ASE's JSON database ignores ``with``; it is written to a
    temporary copy anyway.
    """
    with db:
        con = getattr(db, "connection", None)
        if con is not None and not hasattr(con, "rollback") and hasattr(con, "con"):
            con.rollback = con.con.rollback  # the wrapped psycopg2 connection's
        managed = getattr(db, "managed_connection", None)
        if managed is not None and "commit_frequency" in inspect.signature(managed).parameters:
            # An instance attribute: only this connection object, discarded after.
            db.managed_connection = functools.partial(managed, commit_frequency=2**62)
        yield
