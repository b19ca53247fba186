"""Property data: inputs (compositions or structures), targets, ids and folds, from
public datasets, CSV tables, structure files or folders of CIFs.

Every reader checks what it reads and names the file, the row and the field of the
first problem: an unparseable formula (with its text), an unknown element, a CIF that
does not parse, an empty or non-numeric target.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..descriptors.composition import composition_of
from ..errors import ConfigError, DataError, FileFormatError, UnknownElementError

#: Column names recognised as the input of a CSV table, in order of preference.
COMPOSITION_COLUMNS = ("composition", "formula")
STRUCTURE_COLUMNS = ("cif", "structure")
ID_COLUMNS = ("id", "mbid", "material_id", "name")
PEROV5_TARGETS = ("heat_all", "heat_ref", "dir_gap", "ind_gap")
#: Public datasets: loader, default target, unit, input kind.
DATASETS = {
    "matbench_expt_gap": ("gap_expt", "eV", "composition"),
    "perov_5": ("heat_all", "eV/cell", "structure"),
}


@dataclass
class PropertyData:
    """Inputs with (optional) targets.

    Attributes
    ----------
    inputs
        Formula strings or :class:`ase.Atoms`, one per row.
    targets
        (n,) float64, or None for prediction inputs.
    ids
        One identifier per row.
    input_kind
        ``"composition"`` or ``"structure"``.
    target, unit
        Name and unit of the target (None when unknown).
    folds
        (n,) int64 official test fold of each row, or None.
    source
        Where the data came from (a file or a dataset name), for messages.
    """

    inputs: list
    targets: np.ndarray | None
    ids: list[str]
    input_kind: str
    target: str | None = None
    unit: str | None = None
    folds: np.ndarray | None = None
    source: str = ""
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, rows: np.ndarray) -> PropertyData:
        rows = np.asarray(rows, int)
        return PropertyData(
            [self.inputs[k] for k in rows], None if self.targets is None else self.targets[rows],
            [self.ids[k] for k in rows], self.input_kind, self.target, self.unit,
            None if self.folds is None else self.folds[rows], self.source, self.columns,
        )


def load_property_data(source: str | os.PathLike, *, target: str | None = None,
                       require_targets: bool = True) -> PropertyData:
    """Read property data.

    Parameters
    ----------
    source
        ``"matbench_expt_gap"`` or ``"perov_5"`` (all 7,572 structures of both CDVAE
        files; ``"perov_5:val"`` or ``"perov_5:test"`` for one), a CSV file with a
        ``composition``/``formula`` or ``cif`` column, a folder of ``.cif`` files, or any
        structure file :func:`ml4ms.data.read` takes (targets from ``atoms.info``).
    target
        The target column or ``info`` key (default: the dataset's; required for files
        when ``require_targets``).
    require_targets
        False for prediction inputs: targets are read when present, not required.

    Raises
    ------
    ConfigError, DataError, FileFormatError
        Unknown dataset, missing column, and bad rows (named by file, row and field).
    """
    text = str(source)
    name, _, option = text.partition(":")
    if name in DATASETS and not Path(text).exists():
        return _load_dataset(name, option or None, target)
    path = Path(text)
    if path.is_dir():
        return _read_cif_folder(path, target, require_targets)
    if not path.is_file():
        raise ConfigError(f"{text}: no such file, folder or dataset (datasets: {', '.join(DATASETS)})")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, target, require_targets)
    return _read_structure_file(path, target, require_targets)


def _load_dataset(name: str, option: str | None, target: str | None) -> PropertyData:
    from ..data.datasets import load

    default_target, unit, kind = DATASETS[name]
    if name == "matbench_expt_gap":
        if option or (target not in (None, default_target)):
            raise ConfigError(f"matbench_expt_gap has one target, {default_target!r}, and no options")
        table = load(name)
        return PropertyData(list(table.compositions), np.asarray(table.targets), list(table.ids), kind,
                            default_target, unit, np.asarray(table.folds), name)
    key = target or default_target
    if key not in PEROV5_TARGETS:
        raise ConfigError(f"perov_5 has no target {key!r}; targets: {', '.join(PEROV5_TARGETS)}")
    splits = [option] if option else ["val", "test"]
    images: list[Atoms] = []
    for split in splits:
        images += load(name, split=split)
    targets = np.array([a.info[key] for a in images], float)
    unit = "eV/cell" if key.startswith("heat") else "eV"
    ids = [str(a.info.get("material_id", k)) for k, a in enumerate(images)]
    return PropertyData(images, targets, ids, kind, key, unit, None, name)


def _row(row: int | str) -> str:
    return f"row {row} (line {row + 2})" if isinstance(row, int) else str(row)


def _parse_target(value: Any, where: str, row: int | str, column: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{_row(row)}: the target is empty", source=where, field=column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{_row(row)}: the target is not a number: {value!r}",
                        source=where, field=column) from None
    if not np.isfinite(number):
        raise DataError(f"{_row(row)}: the target is {number}", source=where, field=column)
    return number


def _check_composition(text: str, where: str, row: int, column: str) -> str:
    try:
        composition_of(text)
    except UnknownElementError as exc:
        raise UnknownElementError(f"{_row(row)}: {text!r}: {exc}", source=where, field=column) from None
    except DataError as exc:
        raise DataError(f"{_row(row)}: cannot read {text!r}: {exc}", source=where, field=column) from None
    return text


def _parse_cif(text: str, where: str, row: int | str) -> Atoms:
    import ase.io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms = ase.io.read(io.StringIO(text), format="cif")
    except Exception as exc:  # ASE raises many types for malformed CIFs
        raise FileFormatError(f"{_row(row)}: the CIF does not parse ({type(exc).__name__}: {exc})",
                              path=where) from None
    if len(atoms) == 0:
        raise FileFormatError(f"{_row(row)}: the CIF has no atoms", path=where)
    for key in ("spacegroup", "unit_cell", "occupancy"):
        atoms.info.pop(key, None)
    atoms.arrays.pop("spacegroup_kinds", None)
    return atoms


def _read_csv(path: Path, target: str | None, require_targets: bool) -> PropertyData:
    where = str(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c]
        rows = list(reader)
    if not columns:
        raise FileFormatError("the CSV file has no header row", path=path)
    lower = {c.lower(): c for c in columns}
    comp_col = next((lower[c] for c in COMPOSITION_COLUMNS if c in lower), None)
    cif_col = next((lower[c] for c in STRUCTURE_COLUMNS if c in lower), None)
    if comp_col is None and cif_col is None:
        raise DataError(f"{where}: no input column; expected one of "
                        f"{', '.join(COMPOSITION_COLUMNS + STRUCTURE_COLUMNS)} (columns: {', '.join(columns)})",
                        field="columns")
    if not rows:
        raise DataError(f"{where}: the table has no rows", field="rows")
    id_col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
    if target is None and require_targets:
        raise ConfigError(f"{where}: name the target column (columns: {', '.join(columns)})")
    if target is not None and target not in columns and require_targets:
        raise DataError(f"{where}: no target column {target!r} (columns: {', '.join(columns)})", field=target)
    kind = "structure" if cif_col is not None and comp_col is None else "composition"
    inputs: list = []
    for k, row in enumerate(rows):
        if kind == "structure":
            inputs.append(_parse_cif(row[cif_col] or "", where, k))
        else:
            inputs.append(_check_composition((row[comp_col] or "").strip(), where, k, comp_col))
    targets = None
    if target is not None and target in columns:
        targets = np.array([_parse_target(row[target], where, k, target) for k, row in enumerate(rows)])
    ids = [row[id_col] if id_col else str(k) for k, row in enumerate(rows)]
    return PropertyData(inputs, targets, ids, kind, target, None, None, where, columns)


def _read_cif_folder(path: Path, target: str | None, require_targets: bool) -> PropertyData:
    files = sorted(path.glob("*.cif"))
    if not files:
        raise DataError(f"{path}: the folder holds no .cif files", field="files")
    if require_targets:
        raise ConfigError(f"{path}: a folder of CIFs has no targets; use it for prediction only")
    inputs = [_parse_cif(f.read_text(encoding="utf-8", errors="replace"), str(f), f.name) for f in files]
    return PropertyData(inputs, None, [f.stem for f in files], "structure", target, None, None, str(path))


def _read_structure_file(path: Path, target: str | None, require_targets: bool) -> PropertyData:
    from ..data.io import read

    images = read(path)
    if not images:
        raise DataError(f"{path}: no structures", field="structures")
    targets = None
    if target is not None:
        present = [target in a.info for a in images]
        if all(present):
            targets = np.array([_parse_target(a.info[target], str(path), f"structure {k}", target)
                                for k, a in enumerate(images)])
        elif require_targets:
            k = present.index(False)
            raise DataError(f"no {target!r} in its info", source=path, index=k, field=target)
    elif require_targets:
        raise ConfigError(f"{path}: name the target (an atoms.info key)")
    ids = [str(a.info.get("id", a.info.get("material_id", k))) for k, a in enumerate(images)]
    return PropertyData(list(images), targets, ids, "structure", target, None, None, str(path))
