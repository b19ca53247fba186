"""Elemental property table: offline, cached, one row per atomic number.

The values come from the SQLite database that ships inside the `mendeleev
<https://mendeleev.readthedocs.io>`_ package (``mendeleev/elements.db``, opened read
only with Python's :mod:`sqlite3`; nothing is downloaded). mendeleev's own Python API
is not used: it goes through pandas and SQLAlchemy, is slow to import, and parts of it
(``fetch_ionization_energies`` in mendeleev 1.3) fail with SQLAlchemy 2.1 / pandas 3.
The table is built once per process, kept in memory, and returned as an ``(119, P)``
array or tensor whose row ``Z`` holds element ``Z`` (row 0 is all NaN).

Property names follow Magpie, the element data of Ward et al., "A general-purpose
machine learning framework for predicting properties of inorganic materials",
npj Comput. Mater. 2, 16028 (2016), as used by matminer's ``ElementProperty``
preset ``"magpie"``. The ``"magpie"`` preset here holds the 18 of Magpie's 22
properties that mendeleev provides or that follow from its data:

=========================  =======  ===============================================================
name                       unit     source (mendeleev column) and notes
=========================  =======  ===============================================================
Number                     --       atomic number Z
MendeleevNumber            --       ``mendeleev_number`` (Villars et al. 2004, extended to Z = 118):
                                    the same order as Magpie's (Spearman rank correlation 1.0 over
                                    Z = 1..103) but a different scale (H 105 here, 92 in Magpie)
AtomicWeight               Da       ``atomic_weight`` (IUPAC; agrees with Magpie within 0.2 %)
MeltingT                   K        ``phasetransitions.melting_point`` at 1 atm; for an element
                                    with several allotropes, the non-transition entry that is not a
                                    sublimation (white P 317.3 K, as Magpie). Carbon, which has no
                                    melting point at 1 atm, gets its triple-point temperature
                                    (4762 K; Magpie lists 3823 K). Within 1 % of Magpie for 97 of
                                    the 101 elements both have; Er 1.8 %, Pm 4 %, Bk 5 %
Column                     --       ``group_id``; lanthanides and actinides (no group in mendeleev)
                                    get 3, as in Magpie
Row                        --       ``period``
CovalentRadius             pm       ``covalent_radius_cordero`` (Cordero et al. 2008). mendeleev
                                    averages the three valences of C (73 pm; Magpie 76) and the
                                    low/high-spin values of Mn, Fe, Co (150, 142, 138 pm; Magpie
                                    uses low spin: 139, 132, 126)
Electronegativity          --       ``en_pauling`` (Pauling scale, CRC Handbook). Differs from
                                    Magpie for a few heavy elements (e.g. Pb 1.8 vs 2.33, W 1.7 vs
                                    2.36) and is missing for He, Ne, Ar, Kr, Pm, Eu, Tb, Yb, Z >= 95
NsValence ... NfValence    --       electrons in the s, p, d, f sub-shells outside the noble-gas
                                    core of ``electronic_configuration`` (Pb: s2 p2 d10 f14), the
                                    Magpie convention
NValence                   --       sum of the four above
NsUnfilled ... NfUnfilled  --       empty states of the occupied valence sub-shells: 2 - Ns,
                                    6 - Np, 10 - Nd, 14 - Nf when that sub-shell holds electrons,
                                    else 0
NUnfilled                  --       sum of the four above
=========================  =======  ===============================================================

Magpie's four DFT (OQMD) ground-state properties ``GSvolume_pa``, ``GSbandgap``,
``GSmagmom`` and ``SpaceGroupNumber`` are not in mendeleev and cannot be derived from
it; they are left out (see :data:`MAGPIE_UNAVAILABLE`). Compared with matminer's
Magpie tables (``matminer/utils/data_files/magpie_elementdata``) over Z = 1..103:
Number, AtomicWeight (within 0.2 %), Column, Row and the ten valence and unfilled
counts agree for every element; the other columns differ as noted above.

Extra properties (not in the ``"magpie"`` preset) can be requested by name:
``FirstIonizationEnergy`` (eV), ``ElectronAffinity`` (eV), ``DipolePolarizability``
(bohr³), ``VdWRadius`` (pm), ``BoilingT`` (K) and ``PettiforNumber``.

Missing values
--------------
A value mendeleev does not have is NaN in the table -- never zero. What a composition
descriptor does with it is its own, explicit choice (see
:class:`ml4ms.descriptors.composition.CompositionFeatures`, argument ``missing``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase.data import chemical_symbols

__all__ = [
    "N_ROWS",
    "MAGPIE_PROPERTIES",
    "MAGPIE_UNAVAILABLE",
    "PROPERTIES",
    "ElementPropertyInfo",
    "property_names",
    "resolve_properties",
    "element_table",
    "element_property",
    "valence_counts",
    "mendeleev_database",
]

#: Rows of the table: one per atomic number 0..118 (row 0, no element, is NaN).
N_ROWS = len(chemical_symbols)


@dataclass(frozen=True)
class ElementPropertyInfo:
    """What one property column holds.

    Attributes
    ----------
    name
        Magpie-style name (``"Electronegativity"``).
    unit
        Unit of the values (``""`` for dimensionless numbers and counts).
    description
        Where the values come from.
    """

    name: str
    unit: str
    description: str


_SUBSHELLS = ("s", "p", "d", "f")
_CAPACITY = {"s": 2, "p": 6, "d": 10, "f": 14}

#: Magpie's 22 properties (matminer preset "magpie"), in matminer's order.
_MAGPIE_ALL = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row",
    "CovalentRadius", "Electronegativity", "NsValence", "NpValence", "NdValence",
    "NfValence", "NValence", "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled",
    "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)

#: Magpie properties (DFT ground-state data from OQMD) that mendeleev cannot provide.
MAGPIE_UNAVAILABLE: tuple[str, ...] = ("GSvolume_pa", "GSbandgap", "GSmagmom", "SpaceGroupNumber")

#: The ``"magpie"`` preset: Magpie's properties available here, in matminer's order.
MAGPIE_PROPERTIES: tuple[str, ...] = tuple(p for p in _MAGPIE_ALL if p not in MAGPIE_UNAVAILABLE)

_INFO = [
    ElementPropertyInfo("Number", "", "atomic number"),
    ElementPropertyInfo("MendeleevNumber", "", "Mendeleev number (Villars 2004, mendeleev)"),
    ElementPropertyInfo("AtomicWeight", "Da", "standard atomic weight (IUPAC, mendeleev)"),
    ElementPropertyInfo("MeltingT", "K", "melting point at 101.325 kPa (CRC, mendeleev)"),
    ElementPropertyInfo("Column", "", "group in the periodic table (3 for La-Lu, Ac-Lr)"),
    ElementPropertyInfo("Row", "", "period in the periodic table"),
    ElementPropertyInfo("CovalentRadius", "pm", "covalent radius (Cordero 2008, mendeleev)"),
    ElementPropertyInfo("Electronegativity", "", "Pauling electronegativity (CRC, mendeleev)"),
    *[ElementPropertyInfo(f"N{s}Valence", "", f"valence {s} electrons outside the noble-gas core")
      for s in _SUBSHELLS],
    ElementPropertyInfo("NValence", "", "valence electrons outside the noble-gas core"),
    *[ElementPropertyInfo(f"N{s}Unfilled", "", f"empty states in the occupied valence {s} shell")
      for s in _SUBSHELLS],
    ElementPropertyInfo("NUnfilled", "", "empty states in the occupied valence shells"),
    ElementPropertyInfo("FirstIonizationEnergy", "eV", "first ionization energy (NIST, mendeleev)"),
    ElementPropertyInfo("ElectronAffinity", "eV", "electron affinity (CRC, mendeleev)"),
    ElementPropertyInfo("DipolePolarizability", "bohr^3",
                        "static dipole polarizability (Schwerdtfeger 2023, mendeleev)"),
    ElementPropertyInfo("VdWRadius", "pm", "van der Waals radius (CRC, mendeleev)"),
    ElementPropertyInfo("BoilingT", "K", "boiling point at 101.325 kPa (CRC, mendeleev)"),
    ElementPropertyInfo("PettiforNumber", "", "Pettifor chemical scale (Pettifor 1984)"),
]

#: Every property available, by name.
PROPERTIES: dict[str, ElementPropertyInfo] = {p.name: p for p in _INFO}


def property_names() -> list[str]:
    """Names of every available property, the ``"magpie"`` preset first."""
    return list(PROPERTIES)


def resolve_properties(properties: str | Sequence[str]) -> list[str]:
    """Property names from a preset name or a list of names.

    Parameters
    ----------
    properties
        ``"magpie"`` (the 18 Magpie properties available, :data:`MAGPIE_PROPERTIES`),
        ``"all"`` (every property in :data:`PROPERTIES`), or a sequence of names.

    Raises
    ------
    ValueError
        An unknown preset or property name (Magpie's OQMD properties are named as
        unavailable), a repeated name, or an empty list.
    """
    if isinstance(properties, str):
        if properties == "magpie":
            return list(MAGPIE_PROPERTIES)
        if properties == "all":
            return property_names()
        raise ValueError(
            f"unknown property preset {properties!r}: use 'magpie', 'all' or a list of names "
            f"from {property_names()}"
        )
    names = list(properties)
    if not names:
        raise ValueError("properties must name at least one property")
    for name in names:
        if name in MAGPIE_UNAVAILABLE:
            raise ValueError(
                f"property {name!r} (a Magpie DFT ground-state value from OQMD) is not "
                "available: the element data come from mendeleev, which does not have it"
            )
        if name not in PROPERTIES:
            raise ValueError(f"unknown element property {name!r}; available: {property_names()}")
    if len(set(names)) != len(names):
        raise ValueError(f"properties are repeated: {names}")
    return names


# ---------------------------------------------------------------------------- raw data
def mendeleev_database() -> Path:
    """Path of the SQLite database that ships with mendeleev.

    The package is located without importing it (importing mendeleev would import
    pandas and SQLAlchemy); the file is the one ``mendeleev.db.get_package_dbpath()``
    names.

    Raises
    ------
    ImportError
        mendeleev is not installed, or its database file is missing.
    """
    spec = importlib.util.find_spec("mendeleev")
    if spec is None or spec.origin is None:
        raise ImportError(
            "the element data come from the 'mendeleev' package, which is not installed: "
            "pip install 'mendeleev>=1.3,<2'"
        )
    path = Path(spec.origin).parent / "elements.db"
    if not path.is_file():
        raise ImportError(f"mendeleev is installed but its database is missing: {path}")
    return path


_SUBSHELL_RE = re.compile(r"^(\d+)([spdfg])(\d*)$")


def valence_counts(configuration: str) -> dict[str, int]:
    """Electrons per sub-shell type outside the noble-gas core.

    Parameters
    ----------
    configuration
        Ground-state configuration as mendeleev writes it, e.g. ``"[Xe] 4f14 5d10 6s2 6p2"``
        or ``"[Ar] 3d 4s2"`` (a missing count means one electron).

    Returns
    -------
    dict
        ``{"s": ns, "p": np, "d": nd, "f": nf}``: for Pb ``{"s": 2, "p": 2, "d": 10, "f": 14}``.

    Raises
    ------
    ValueError
        A token that is neither a ``[core]`` nor a sub-shell such as ``4f14``.
    """
    counts = dict.fromkeys(_SUBSHELLS, 0)
    for token in configuration.split():
        if token.startswith("[") and token.endswith("]"):
            continue  # noble-gas core
        match = _SUBSHELL_RE.match(token)
        if match is None:
            raise ValueError(
                f"cannot read the electron configuration {configuration!r} at {token!r}")
        kind = match.group(2)
        if kind not in counts:
            raise ValueError(f"unexpected {kind!r} sub-shell in {configuration!r}")
        counts[kind] += int(match.group(3) or 1)
    return counts


def _float(value) -> float:
    return np.nan if value is None else float(value)


def _query(uri: str):
    """The rows of mendeleev's tables that the property table is built from."""
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            "SELECT atomic_number, mendeleev_number, atomic_weight, group_id, period, "
            "covalent_radius_cordero, en_pauling, electronic_configuration, block, "
            "electron_affinity, dipole_polarizability, vdw_radius, pettifor_number "
            "FROM elements ORDER BY atomic_number"
        ).fetchall()
        phases = db.execute(
            "SELECT atomic_number, melting_point, boiling_point, triple_point_temperature, "
            "is_sublimation_point, is_transition FROM phasetransitions ORDER BY id"
        ).fetchall()
        ionization = db.execute(
            "SELECT atomic_number, ionization_energy FROM ionizationenergies WHERE ion_charge = 0"
        ).fetchall()
    return rows, phases, ionization


@functools.lru_cache(maxsize=1)
def _full_table() -> tuple[np.ndarray, tuple[str, ...]]:
    """Every property for every element, (N_ROWS, len(PROPERTIES)), read-only."""
    names = tuple(PROPERTIES)
    col = {n: k for k, n in enumerate(names)}
    table = np.full((N_ROWS, len(names)), np.nan)
    uri = mendeleev_database().as_uri() + "?mode=ro&immutable=1"
    try:
        rows, phases, ionization = _query(uri)
    except sqlite3.Error as exc:
        raise ImportError(
            f"cannot read the element data from mendeleev's database {uri}: {exc}; "
            "ml4ms needs 'mendeleev>=1.3,<2'"
        ) from exc
    for (z, mendeleev_number, weight, group, period, r_cov, en, config, block,
         affinity, alpha, r_vdw, pettifor) in rows:
        if not 0 < z < N_ROWS:
            continue
        t = table[z]
        t[col["Number"]] = z
        t[col["MendeleevNumber"]] = _float(mendeleev_number)
        t[col["AtomicWeight"]] = _float(weight)
        # Magpie places the f block in column 3.
        t[col["Column"]] = 3.0 if (group is None and block == "f") else _float(group)
        t[col["Row"]] = _float(period)
        t[col["CovalentRadius"]] = _float(r_cov)
        t[col["Electronegativity"]] = _float(en)
        t[col["ElectronAffinity"]] = _float(affinity)
        t[col["DipolePolarizability"]] = _float(alpha)
        t[col["VdWRadius"]] = _float(r_vdw)
        t[col["PettiforNumber"]] = _float(pettifor)
        if config:
            counts = valence_counts(config)
            for s in _SUBSHELLS:
                n = counts[s]
                t[col[f"N{s}Valence"]] = n
                t[col[f"N{s}Unfilled"]] = _CAPACITY[s] - n if n else 0
            t[col["NValence"]] = sum(counts.values())
            t[col["NUnfilled"]] = sum(t[col[f"N{s}Unfilled"]] for s in _SUBSHELLS)
    for z, melting, boiling, _, _, _ in _pick_phase(phases):
        table[z, col["MeltingT"]] = melting
        table[z, col["BoilingT"]] = boiling
    for z, energy in ionization:
        if 0 < z < N_ROWS:
            table[z, col["FirstIonizationEnergy"]] = _float(energy)
    table.setflags(write=False)
    return table, names


def _pick_phase(phases) -> list[tuple]:
    """One (Z, melting point, boiling point, ...) per element from the phase-transition rows.

    Rules (documented in the module docstring): drop rows that mark a solid-solid
    transition; prefer a row that is not a sublimation point (white rather than red
    phosphorus); an element that has no melting point at 1 atm but sublimes (carbon)
    gets its triple-point temperature.
    """
    by_z: dict[int, list[tuple]] = {}
    for row in phases:
        z, melting, boiling, triple, sublimation, transition = row
        if 0 < z < N_ROWS and not transition:
            by_z.setdefault(z, []).append(row)
    out = []
    for z, rows in sorted(by_z.items()):
        rows.sort(key=lambda r: (bool(r[4]), r[1] is None))  # non-sublimation, with a value
        z, melting, boiling, triple, sublimation, _ = rows[0]
        if melting is None and sublimation and triple is not None:
            melting = triple
        out.append((z, _float(melting), _float(boiling), triple, sublimation, None))
    return out


def element_table(
    properties: str | Sequence[str] = "magpie",
    *,
    as_tensor: bool = False,
    dtype: torch.dtype = torch.float64,
) -> np.ndarray | torch.Tensor:
    """Property values by atomic number.

    Parameters
    ----------
    properties
        ``"magpie"``, ``"all"`` or a list of names (see :func:`resolve_properties`).
    as_tensor
        Return a new ``torch.Tensor`` of ``dtype`` instead of a read-only NumPy array.
    dtype
        Tensor dtype when ``as_tensor``.

    Returns
    -------
    ndarray or Tensor
        Shape (119, P): row ``Z`` holds element ``Z`` (row 0 is NaN), column ``k`` the
        property ``properties[k]`` in the unit of :data:`PROPERTIES`. Missing values are NaN.

    Examples
    --------
    >>> from ml4ms.descriptors.elements import element_table
    >>> float(element_table(["Electronegativity"])[26, 0])   # Fe
    1.83
    """
    names = resolve_properties(properties)
    table, all_names = _full_table()
    index = [all_names.index(n) for n in names]
    values = table[:, index]
    if as_tensor:
        return torch.tensor(values, dtype=dtype)
    values.setflags(write=False)
    return values


def element_property(name: str, element: str | int) -> float:
    """One value, e.g. ``element_property("Electronegativity", "O")`` -> 3.44 (NaN if missing).

    Raises
    ------
    ValueError
        Unknown property or element.
    """
    if isinstance(element, str):
        if element not in chemical_symbols[1:]:
            raise ValueError(f"unknown element symbol {element!r}")
        z = chemical_symbols.index(element)
    else:
        z = int(element)
        if not 0 < z < N_ROWS:
            raise ValueError(f"atomic number out of range: {z}")
    return float(element_table([name])[z, 0])
