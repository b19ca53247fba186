"""Composition features: Magpie-style statistics of elemental properties.

For a composition with atomic fractions :math:`x_i` (summing to one) of elements
whose property values are :math:`p_i`, the statistics are those of matminer's
``ElementProperty`` (Ward et al., "A general-purpose machine learning framework for
predicting properties of inorganic materials", npj Comput. Mater. 2, 16028 (2016)):

==========  ==========================================================================
``mean``    :math:`\\bar p = \\sum_i x_i p_i`
``avg_dev`` :math:`\\sum_i x_i |p_i - \\bar p|` (mean absolute deviation)
``min``     :math:`\\min_i p_i` over the elements present (unweighted); label ``minimum``
``max``     :math:`\\max_i p_i`; label ``maximum``
``range``   ``max - min``
``mode``    :math:`p_i` of the element with the largest fraction; ties (``numpy.isclose``
            fractions, as matminer) go to the smallest property value
==========  ==========================================================================

Every statistic has the unit of its property (see
:data:`ml4ms.descriptors.elements.PROPERTIES`). The element data and which of Magpie's
properties are available are described in :mod:`ml4ms.descriptors.elements`.

Three entry points share one vectorised kernel (``index_add``/``scatter_reduce``
over the structures of a batch), so they give identical numbers:

- :class:`CompositionFeatures` is a :class:`~ml4ms.descriptors.base.Descriptor`
  (torch module): ``forward(graph)`` returns (B, F) from the atoms of each structure
  in an :class:`~ml4ms.data.graph.AtomicGraph`;
- :meth:`CompositionFeatures.transform` / :meth:`CompositionFeatures.featurize`
  take formula strings (``"Cu1.8S1"``, ``"Ag(AuS)2"``, ``"CuSO4·5H2O"``), mappings
  (``{"Fe": 2, "O": 3}``) or :class:`ase.Atoms`, for tabular data such as
  ``matbench_expt_gap`` that has no structures;
- :class:`CompositionFeaturizer` is a scikit-learn transformer for pipelines.

Formulas are read by :func:`parse_formula` (no pymatgen needed).

Missing element data
--------------------
The element table holds NaN where the data source has no value (e.g. the Pauling
electronegativity of Eu, Tb, Yb, noble gases). ``missing=`` chooses what happens
when a composition contains such an element -- never a silent zero:

``"impute"`` (default, matminer's default ``impute_nan=True``)
    The missing value is replaced by the mean of that property over every element
    of the table that has a value (Z = 1..118).
``"ignore"``
    The statistics of that property are taken over the elements that have a value,
    their fractions renormalised; NaN if none has.
``"nan"``
    Every statistic of that property is NaN for that composition.
``"raise"``
    A :class:`~ml4ms.errors.DataError` names the composition, the element and the property.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..data.graph import AtomicGraph
from ..errors import DataError, UnknownElementError
from .base import Descriptor
from .elements import N_ROWS, PROPERTIES, element_table, resolve_properties

__all__ = [
    "FormulaError",
    "UnknownElementInFormulaError",
    "parse_formula",
    "composition_of",
    "STATS",
    "CompositionFeatures",
    "CompositionFeaturizer",
]

#: Statistic names accepted in ``stats=`` -> the name used in feature labels (matminer's).
STATS: dict[str, str] = {
    "mean": "mean",
    "avg_dev": "avg_dev",
    "min": "minimum",
    "minimum": "minimum",
    "max": "maximum",
    "maximum": "maximum",
    "range": "range",
    "mode": "mode",
}
_MISSING = ("impute", "ignore", "nan", "raise")
_SYMBOLS = {s: z for z, s in enumerate(chemical_symbols) if z > 0}
#: Separators of the parts of an adduct or hydrate formula: "CuSO4·5H2O".
_SEPARATORS = "·•⋅*"
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_LABEL_PREFIX = "MagpieData"


# =============================================================================== parsing
class FormulaError(DataError):
    """A chemical formula cannot be read.

    Attributes
    ----------
    formula
        The formula as given.
    position
        0-based index of the character at fault (``len(formula)`` for "unexpected end").
    reason
        What is wrong there, in words.
    """

    def __init__(self, formula: str, position: int, message: str, *, index: int | None = None):
        self.formula = formula
        self.position = position
        self.reason = message
        super().__init__(
            f"cannot read formula {formula!r} at position {position}: {message}",
            index=index, field="composition",
        )


class UnknownElementInFormulaError(FormulaError, UnknownElementError):
    """A formula names an element symbol that does not exist (``"Xx2O"``, ``"fe"``)."""


class _FormulaParser:
    """Recursive-descent reader of formulas: groups, fractional amounts, hydrates."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None, cls=FormulaError):
        raise cls(self.text, self.pos if position is None else position, message)

    def peek(self) -> str | None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else None

    def number(self) -> float | None:
        self.peek()
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return float(match.group())

    def formula(self) -> dict[str, float]:
        total: dict[str, float] = {}
        if self.peek() is None:
            self.fail("the formula is empty")
        while True:
            start = self.pos
            factor = self.number()  # "5H2O" in "CuSO4·5H2O"
            if factor is not None and (self.peek() is None or self.peek() in _SEPARATORS):
                multiplier = self.text[start:self.pos].strip()
                self.fail(f"the multiplier {multiplier!r} multiplies nothing")
            part = self.group(closing=None, start=start)
            _add(total, part, 1.0 if factor is None else factor)
            c = self.peek()
            if c is None:
                break
            if c in _SEPARATORS:
                self.pos += 1
                if self.peek() is None:
                    self.fail(f"nothing follows {c!r}")
                continue
            if c in _CLOSE.values():
                self.fail(f"{c!r} closes a bracket that was never opened")
            self.fail(f"unexpected character {c!r}")
        return total

    def group(self, closing: str | None, start: int) -> dict[str, float]:
        out: dict[str, float] = {}
        while True:
            c = self.peek()
            if c is None or c in _SEPARATORS or c in _CLOSE.values():
                break
            if c in _CLOSE:
                opened = self.pos
                self.pos += 1
                inner = self.group(closing=_CLOSE[c], start=self.pos)
                if self.peek() != _CLOSE[c]:
                    self.fail(f"{c!r} opened at position {opened} is not closed by {_CLOSE[c]!r}")
                self.pos += 1
                amount = self.number()
                _add(out, inner, 1.0 if amount is None else amount)
            elif "A" <= c <= "Z":
                begin = self.pos
                end = begin + 1
                while end < len(self.text) and "a" <= self.text[end] <= "z":
                    end += 1
                symbol = self.text[begin:end]
                if symbol not in _SYMBOLS:
                    self.fail(f"unknown element symbol {symbol!r}", begin,
                              UnknownElementInFormulaError)
                self.pos = end
                amount = self.number()
                out[symbol] = out.get(symbol, 0.0) + (1.0 if amount is None else amount)
            elif c.isdigit() or c == ".":
                self.fail("a number must follow an element symbol or a closing bracket")
            elif c.isalpha():
                self.fail(f"expected an element symbol (capital letter first), found {c!r}",
                          cls=UnknownElementInFormulaError)
            else:
                self.fail(f"unexpected character {c!r}")
        if not out:
            if closing is not None:
                self.fail(f"empty brackets: expected an element before {closing!r}")
            self.fail("expected an element symbol")
        return out


def _add(total: dict[str, float], part: Mapping[str, float], factor: float) -> None:
    for symbol, amount in part.items():
        total[symbol] = total.get(symbol, 0.0) + amount * factor


def parse_formula(formula: str) -> dict[str, float]:
    """Element amounts of a chemical formula.

    Accepts nested brackets (``()``, ``[]``, ``{}``), fractional amounts
    (``"Cu1.8S1"``, ``"Al0.01Ga0.99P1"``), repeated elements (summed), spaces
    (``"Fe2 O3"``) and adducts/hydrates joined by ``·``, ``•``, ``⋅`` or ``*`` with an
    optional leading multiplier (``"CuSO4·5H2O"``). Symbols are case-sensitive:
    ``"CO"`` is carbon monoxide, ``"Co"`` cobalt.

    Parameters
    ----------
    formula
        The formula.

    Returns
    -------
    dict
        Element symbol -> amount (in formula units), in order of first appearance.
        Elements whose total amount is zero are dropped, as in pymatgen.

    Raises
    ------
    FormulaError
        Malformed formula; the message names the formula and the 0-based position.
    UnknownElementInFormulaError
        A symbol that is not an element (a subclass of FormulaError and of
        :class:`~ml4ms.errors.UnknownElementError`).

    Examples
    --------
    >>> parse_formula("Ca3(PO4)2")
    {'Ca': 3.0, 'P': 2.0, 'O': 8.0}
    >>> parse_formula("CuSO4·5H2O")
    {'Cu': 1.0, 'S': 1.0, 'O': 9.0, 'H': 10.0}
    """
    if not isinstance(formula, str):
        raise TypeError(f"a formula must be a str, got {type(formula).__name__}")
    amounts = _FormulaParser(formula).formula()
    amounts = {s: a for s, a in amounts.items() if a != 0.0}
    if not amounts:
        raise FormulaError(formula, 0, "every amount is zero")
    return amounts


def composition_of(item, *, index: int | None = None) -> dict[int, float]:
    """Atomic number -> amount (> 0) for a formula, a mapping or a structure.

    Parameters
    ----------
    item
        A formula string (see :func:`parse_formula`); a mapping from element symbol,
        atomic number or element object with a ``symbol`` attribute (pymatgen's
        ``Composition``) to amount; or an :class:`ase.Atoms` (its atoms are counted).
    index
        Position of ``item`` in a list, for error messages.

    Raises
    ------
    FormulaError, UnknownElementError, DataError
        Unreadable formula, unknown element, negative or non-finite amount, nothing in it.
    """
    if isinstance(item, str):
        try:
            amounts = parse_formula(item)
        except FormulaError as exc:
            raise type(exc)(exc.formula, exc.position, exc.reason, index=index) from None
        return {_SYMBOLS[s]: a for s, a in amounts.items()}
    if isinstance(item, Atoms):
        if len(item) == 0:
            raise DataError("the structure has no atoms", index=index, field="numbers")
        counts = Counter(int(z) for z in item.numbers)
        bad = [z for z in counts if not 0 < z < N_ROWS]
        if bad:
            raise UnknownElementError(f"atomic numbers {bad} are not elements",
                                      index=index, field="numbers")
        return {z: float(n) for z, n in counts.items()}
    if isinstance(item, Mapping):
        out: dict[int, float] = {}
        for key, amount in item.items():
            z = _atomic_number(key, index)
            try:
                value = float(amount)
            except (TypeError, ValueError):
                raise DataError(f"amount of {key!r} is not a number: {amount!r}",
                                index=index, field="composition") from None
            if not math.isfinite(value) or value < 0:
                raise DataError(f"amount of {key!r} must be finite and >= 0, got {amount!r}",
                                index=index, field="composition")
            if value > 0:
                out[z] = out.get(z, 0.0) + value
        if not out:
            raise DataError(f"the composition {dict(item)!r} has no element with a positive amount",
                            index=index, field="composition")
        return out
    raise DataError(
        f"expected a formula string, a mapping element -> amount or an ase.Atoms, "
        f"got {type(item).__name__}", index=index, field="composition",
    )


def _atomic_number(key, index: int | None) -> int:
    symbol = getattr(key, "symbol", key)  # pymatgen Element / Species
    if isinstance(symbol, str):
        if symbol not in _SYMBOLS:
            raise UnknownElementError(f"unknown element symbol {symbol!r}",
                                      index=index, field="composition")
        return _SYMBOLS[symbol]
    try:
        z = int(symbol)
    except (TypeError, ValueError):
        raise UnknownElementError(f"cannot read an element from {key!r}",
                                  index=index, field="composition") from None
    if not 0 < z < N_ROWS:
        raise UnknownElementError(f"atomic number out of range: {z}",
                                  index=index, field="composition")
    return z


def _describe(item) -> str:
    if isinstance(item, str):
        return repr(item)
    if isinstance(item, Atoms):
        return f"Atoms({item.get_chemical_formula()!r})"
    return repr(item)


# ====================================================================== the descriptor
class CompositionFeatures(Descriptor):
    """Fraction-weighted statistics of elemental properties (Magpie / matminer ``ElementProperty``).

    A per-structure descriptor that needs no neighbour list (``cutoff`` is None,
    ``per_atom`` is False). Reference: Ward et al., npj Comput. Mater. 2, 16028 (2016).

    Parameters
    ----------
    properties
        ``"magpie"`` (default: the 18 Magpie properties the element data provide, see
        :mod:`ml4ms.descriptors.elements`), ``"all"``, or a list of property names.
    stats
        Statistics per property, any of ``"mean"``, ``"avg_dev"``, ``"min"``
        (``"minimum"``), ``"max"`` (``"maximum"``), ``"range"``, ``"mode"``; see the
        module docstring for their definitions.
    missing
        What to do with an element that has no value for a property: ``"impute"``
        (default, as matminer), ``"ignore"``, ``"nan"`` or ``"raise"``; see the module
        docstring.
    dtype
        Floating-point dtype of the features.

    Attributes
    ----------
    property_names : list of str
        The properties, in column order.
    table : torch.Tensor
        Buffer (119, P): property values by atomic number, after the ``missing``
        policy's imputation (NaN where missing unless ``missing="impute"``).

    Notes
    -----
    Feature ``k * S + s`` is statistic ``s`` of property ``k`` (matminer's order), with
    label ``"MagpieData {stat} {property}"`` (e.g. ``"MagpieData mean Electronegativity"``),
    where ``stat`` is matminer's name (``minimum``, ``maximum``...). Every feature has the
    unit of its property.

    Examples
    --------
    >>> cf = CompositionFeatures(properties=["Electronegativity"], stats=("mean", "max"))
    >>> cf.featurize("Fe2O3")                               # doctest: +SKIP
    array([2.796, 3.44 ])
    """

    cutoff = None
    species = None

    def __init__(
        self,
        properties: str | Sequence[str] = "magpie",
        stats: Sequence[str] = ("mean", "avg_dev", "min", "max", "range", "mode"),
        *,
        missing: str = "impute",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if isinstance(stats, str):
            raise ValueError(f"stats must be a sequence of names, got the string {stats!r}")
        stats = list(stats)
        if not stats:
            raise ValueError("stats must name at least one statistic")
        unknown = [s for s in stats if s not in STATS]
        if unknown:
            raise ValueError(f"unknown statistic(s) {unknown}; choose from {sorted(STATS)}")
        canonical = [STATS[s] for s in stats]
        if len(set(canonical)) != len(canonical):
            raise ValueError(f"stats are repeated: {stats}")
        if missing not in _MISSING:
            raise ValueError(f"missing must be one of {_MISSING}, got {missing!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.property_names: list[str] = resolve_properties(properties)
        self.stats: list[str] = canonical
        self.missing = missing
        self.dtype = dtype
        raw = element_table(self.property_names, as_tensor=True, dtype=torch.float64)
        if missing == "impute":
            fill = torch.nanmean(raw[1:], dim=0)
            raw = torch.where(torch.isnan(raw), fill, raw)
            raw[0] = float("nan")
        self.register_buffer("table", raw.to(dtype), persistent=False)

    # ------------------------------------------------------------------ contract
    @property
    def per_atom(self) -> bool:
        return False

    def get_number_of_features(self) -> int:
        return len(self.property_names) * len(self.stats)

    def feature_labels(self) -> list[str]:
        return [f"{_LABEL_PREFIX} {s} {p}" for p in self.property_names for s in self.stats]

    def feature_units(self) -> list[str]:
        """Unit of each feature (that of its property; ``""`` for dimensionless)."""
        return [PROPERTIES[p].unit for p in self.property_names for _ in self.stats]

    def extra_repr(self) -> str:
        return (f"properties={len(self.property_names)}, stats={self.stats}, "
                f"missing={self.missing!r}")

    def forward(self, graph: AtomicGraph) -> torch.Tensor:
        """Statistics over the atoms of each structure.

        Parameters
        ----------
        graph
            Only ``numbers`` (N,), ``batch`` (N,) and the number of structures are used.

        Returns
        -------
        Tensor
            (B, F), ``self.dtype``, on the device of the module.

        Raises
        ------
        DataError
            A structure without atoms, an atomic number that is not an element, or
            (``missing="raise"``) an element without a value.
        """
        numbers = graph.numbers.to(self.table.device)
        batch = graph.batch.to(self.table.device)
        n_structures = graph.n_structures
        if numbers.numel() and (numbers.min() < 1 or numbers.max() >= N_ROWS):
            bad = int(torch.nonzero((numbers < 1) | (numbers >= N_ROWS))[0, 0])
            raise UnknownElementError(f"atomic number {int(numbers[bad])} is not an element",
                                      index=int(batch[bad]), field="numbers")
        n_atoms = torch.bincount(batch, minlength=n_structures)
        if n_structures and int(n_atoms.min()) == 0:
            empty = int(torch.nonzero(n_atoms == 0)[0, 0])
            raise DataError("the structure has no atoms", index=empty, field="numbers")
        key = batch * N_ROWS + numbers
        unique, counts = torch.unique(key, return_counts=True)
        pair_batch = unique // N_ROWS
        pair_z = unique % N_ROWS
        weights = counts.to(self.dtype) / n_atoms[pair_batch].to(self.dtype)
        return self._statistics(pair_batch, pair_z, weights, n_structures)

    # ------------------------------------------------------------------ compositions
    def transform(self, compositions: Sequence) -> np.ndarray:
        """Features of formulas, mappings or structures, as an (n, F) float64 array.

        Parameters
        ----------
        compositions
            A list of formula strings (``"Ag0.5Ge1Pb1.75S4"``), mappings element ->
            amount, or :class:`ase.Atoms`.

        Raises
        ------
        FormulaError, DataError
            For the first item that cannot be read; the message gives its index.
        """
        if isinstance(compositions, (str, Mapping, Atoms)):
            raise TypeError("transform takes a list of compositions; use featurize for one")
        parsed = [composition_of(item, index=k) for k, item in enumerate(compositions)]
        with torch.no_grad():
            return self.compute_compositions(parsed).cpu().numpy().astype(np.float64, copy=False)

    def featurize(self, composition) -> np.ndarray:
        """Features of one formula string, mapping or structure: (F,) float64 array."""
        return self.transform([composition])[0]

    def compute_compositions(
        self, compositions: Sequence[Mapping[int, float]], *, offset: int = 0
    ) -> torch.Tensor:
        """Features of parsed compositions (atomic number -> amount > 0), as a (n, F) tensor.

        ``offset`` is added to the indices reported in errors.
        """
        pair_batch, pair_z, amounts = [], [], []
        for k, comp in enumerate(compositions):
            total = sum(comp.values())
            for z, amount in comp.items():
                pair_batch.append(k)
                pair_z.append(z)
                amounts.append(amount / total)
        device = self.table.device
        return self._statistics(
            torch.tensor(pair_batch, dtype=torch.int64, device=device),
            torch.tensor(pair_z, dtype=torch.int64, device=device),
            torch.tensor(amounts, dtype=self.dtype, device=device),
            len(compositions),
            offset=offset,
        )

    def missing_values(self, compositions: Sequence[Mapping[int, float]]) -> dict[int, str]:
        """Which parsed compositions contain an element without a value (before imputation).

        Returns
        -------
        dict
            Row index -> message naming the element(s) and property(ies).
        """
        raw = element_table(self.property_names)
        out = {}
        for k, comp in enumerate(compositions):
            gaps = [f"{chemical_symbols[z]} ({self.property_names[j]})"
                    for z in comp for j in np.flatnonzero(np.isnan(raw[z]))]
            if gaps:
                out[k] = "no element data for " + ", ".join(gaps)
        return out

    # ------------------------------------------------------------------ the kernel
    def _statistics(
        self,
        pair_batch: torch.Tensor,
        pair_z: torch.Tensor,
        weights: torch.Tensor,
        n_structures: int,
        *,
        offset: int = 0,
    ) -> torch.Tensor:
        """Statistics from unique (structure, element) pairs with atomic fractions ``weights``.

        pair_batch, pair_z: (M,) int64; weights: (M,), summing to one per structure.
        Returns (n_structures, P * S).
        """
        n_props = len(self.property_names)
        values = self.table[pair_z]  # (M, P)
        valid = ~torch.isnan(values)
        if self.missing == "raise" and not bool(valid.all()):
            m, j = (int(i) for i in torch.nonzero(~valid)[0])
            raise DataError(
                f"element {chemical_symbols[int(pair_z[m])]} has no value for property "
                f"{self.property_names[j]!r} in the element data (mendeleev); choose "
                "missing='impute', 'ignore' or 'nan'",
                index=int(pair_batch[m]) + offset, field="composition",
            )
        shape = (n_structures, n_props)
        index = pair_batch[:, None].expand_as(values)
        v0 = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
        w = weights[:, None] * valid
        w_sum = values.new_zeros(shape).index_add_(0, pair_batch, w)
        w = w / torch.where(w_sum > 0, w_sum, torch.ones_like(w_sum))[pair_batch]
        mean = values.new_zeros(shape).index_add_(0, pair_batch, w * v0)
        inf = torch.tensor(float("inf"), dtype=values.dtype, device=values.device)
        results = {}
        for stat in self.stats:
            if stat == "mean":
                results[stat] = mean
            elif stat == "avg_dev":
                results[stat] = values.new_zeros(shape).index_add_(
                    0, pair_batch, w * (v0 - mean[pair_batch]).abs())
            elif stat in ("minimum", "maximum", "range"):
                if "minimum" not in results:
                    results["minimum"] = values.new_full(shape, float("inf")).scatter_reduce(
                        0, index, torch.where(valid, v0, inf), "amin")
                    results["maximum"] = values.new_full(shape, -float("inf")).scatter_reduce(
                        0, index, torch.where(valid, v0, -inf), "amax")
                if stat == "range":
                    results[stat] = results["maximum"] - results["minimum"]
            elif stat == "mode":
                # matminer: the elements whose fraction isclose to the largest; the smallest value
                w_masked = torch.where(valid, w, -torch.ones_like(w))
                w_max = values.new_full(shape, -1.0).scatter_reduce(0, index, w_masked, "amax")
                w_top = w_max[pair_batch]
                top = valid & ((w - w_top).abs() <= 1e-8 + 1e-5 * w_top.abs())
                results[stat] = values.new_full(shape, float("inf")).scatter_reduce(
                    0, index, torch.where(top, v0, inf), "amin")
        out = torch.stack([results[s] for s in self.stats], dim=-1)  # (B, P, S)
        if self.missing == "nan":
            n_missing = values.new_zeros(shape).index_add_(0, pair_batch, (~valid).to(values.dtype))
            undefined = n_missing > 0
        else:
            undefined = w_sum <= 0
        out = torch.where(undefined[..., None], torch.full_like(out, float("nan")), out)
        return out.reshape(n_structures, n_props * len(self.stats))


# ============================================================ the scikit-learn transformer
def _parse_chunk(items: list, offset: int, ignore_errors: bool):
    """Parse a chunk of inputs: (compositions or None, errors as (index, input, message))."""
    parsed, errors = [], []
    for k, item in enumerate(items):
        try:
            parsed.append(composition_of(item, index=offset + k))
        except (ValueError, TypeError) as exc:
            if not ignore_errors:
                raise
            parsed.append(None)
            errors.append((offset + k, _describe(item), str(exc)))
    return parsed, errors


class CompositionFeaturizer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: compositions -> Magpie-style feature matrix.

    Wraps :class:`CompositionFeatures` so that formula strings (or mappings, or
    :class:`ase.Atoms`) go straight into a :class:`sklearn.pipeline.Pipeline`::

        model = make_pipeline(CompositionFeaturizer(), RandomForestRegressor())
        model.fit(table.compositions, table.targets)

    Reference: Ward et al., npj Comput. Mater. 2, 16028 (2016).

    Parameters
    ----------
    properties
        ``"magpie"``, ``"all"`` or a list of property names (see
        :mod:`ml4ms.descriptors.elements`).
    stats
        Statistics per property (see :class:`CompositionFeatures`).
    missing
        Policy for elements without a value: ``"impute"`` (default), ``"ignore"``,
        ``"nan"`` or ``"raise"`` (see the module docstring).
    ignore_errors
        False (default): the first input that cannot be read (or, with
        ``missing="raise"``, that lacks element data) raises. True: its row is NaN, the
        error is recorded in ``errors_`` and a warning says how many rows failed, as
        matminer's ``ignore_errors``.
    n_jobs
        Worker processes (joblib) that parse the inputs, in chunks; the statistics are
        always computed in one vectorised pass. Parsing runs at roughly 10^5 formulas per
        second per core, so extra workers only pay off for very long lists. Negative
        values count back from the number of CPUs, as in joblib.
    progress
        Show a progress bar over chunks: True, False, or None (default) for inputs longer
        than 500 rows.
    chunk_size
        Inputs per chunk.

    Attributes
    ----------
    n_features_in_ : int
        1: one input column, the composition.
    feature_names_out_ : ndarray of str
        Output column names (``"MagpieData mean Electronegativity"``...).
    descriptor_ : CompositionFeatures
        The descriptor built by :meth:`fit`.
    errors_ : list of (int, str, str)
        From the latest :meth:`transform`: (row index, input, error message) for every
        row that failed (only with ``ignore_errors=True``).
    """

    def __init__(
        self,
        properties: str | Sequence[str] = "magpie",
        stats: Sequence[str] = ("mean", "avg_dev", "min", "max", "range", "mode"),
        *,
        missing: str = "impute",
        ignore_errors: bool = False,
        n_jobs: int | None = None,
        progress: bool | None = None,
        chunk_size: int = 2000,
    ) -> None:
        self.properties = properties
        self.stats = stats
        self.missing = missing
        self.ignore_errors = ignore_errors
        self.n_jobs = n_jobs
        self.progress = progress
        self.chunk_size = chunk_size

    def fit(self, X=None, y=None) -> CompositionFeaturizer:
        """Check the hyper-parameters and build the descriptor (no data are needed)."""
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {self.chunk_size!r}")
        properties = self.properties if isinstance(self.properties, str) else list(self.properties)
        self.descriptor_ = CompositionFeatures(properties, self.stats, missing=self.missing)
        self.n_features_in_ = 1
        self.feature_names_out_ = np.asarray(self.descriptor_.feature_labels(), dtype=object)
        self.errors_ = []
        return self

    def transform(self, X) -> np.ndarray:
        """Features, an (n_samples, n_features) float64 array.

        Parameters
        ----------
        X
            A list (or 1-D array, pandas Series, one-column DataFrame or (n, 1) array)
            of formula strings, mappings element -> amount, or :class:`ase.Atoms`.
        """
        check_is_fitted(self, "descriptor_")
        items = _as_list(X)
        n = len(items)
        chunks = [(items[i:i + self.chunk_size], i) for i in range(0, n, self.chunk_size)]
        show = self.progress if self.progress is not None else n > 500
        n_jobs = 1 if self.n_jobs is None else int(self.n_jobs)
        if n_jobs != 1 and len(chunks) > 1:
            from sklearn.utils.parallel import Parallel, delayed

            jobs = (delayed(_parse_chunk)(c, o, self.ignore_errors) for c, o in chunks)
            results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
        else:
            results = (_parse_chunk(c, o, self.ignore_errors) for c, o in chunks)
        parsed: list = []
        errors: list = []
        for part, errs in tqdm(results, total=len(chunks), disable=not show,
                               desc="composition features", unit="chunk"):
            parsed.extend(part)
            errors.extend(errs)

        descriptor = self.descriptor_
        out = np.full((n, descriptor.get_number_of_features()), np.nan)
        ok = [k for k, c in enumerate(parsed) if c is not None]
        if descriptor.missing == "raise" and self.ignore_errors:
            gaps = descriptor.missing_values([parsed[k] for k in ok])
            for j, message in gaps.items():
                k = ok[j]
                errors.append((k, _describe(items[k]),
                               str(DataError(message, index=k, field="composition"))))
                parsed[k] = None
            ok = [k for k in ok if parsed[k] is not None]
        if ok:
            if descriptor.missing == "raise" and not self.ignore_errors:
                gaps = descriptor.missing_values([parsed[k] for k in ok])
                if gaps:  # name the input row, not the position among the parsed rows
                    j = min(gaps)
                    raise DataError(gaps[j] + "; choose missing='impute', 'ignore' or 'nan'",
                                    index=ok[j], field="composition")
            with torch.no_grad():
                rows = descriptor.compute_compositions([parsed[k] for k in ok])
            out[ok] = rows.cpu().numpy()
        errors.sort(key=lambda e: e[0])
        self.errors_ = errors
        if errors:
            warnings.warn(
                f"{len(errors)} of {n} compositions could not be featurised and are NaN "
                f"(first: row {errors[0][0]}: {errors[0][2]}); see errors_",
                RuntimeWarning, stacklevel=2,
            )
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names, e.g. ``"MagpieData mean Electronegativity"``."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _as_list(X) -> list:
    """Inputs of transform as a list; rejects a lone composition."""
    if isinstance(X, (str, Mapping, Atoms)):
        raise TypeError(
            "CompositionFeaturizer.transform takes a list of compositions, "
            f"got a single {type(X).__name__}; wrap it in a list"
        )
    if hasattr(X, "iloc"):  # pandas
        if getattr(X, "ndim", 1) == 2:
            if X.shape[1] != 1:
                raise ValueError(f"expected one column of compositions, got {X.shape[1]}")
            X = X.iloc[:, 0]
        return list(X)
    if isinstance(X, np.ndarray):
        if X.ndim == 2:
            if X.shape[1] != 1:
                raise ValueError(f"expected one column of compositions, got shape {X.shape}")
            X = X[:, 0]
        elif X.ndim != 1:
            raise ValueError(f"expected a 1-D list of compositions, got shape {X.shape}")
        return list(X)
    return list(X)
