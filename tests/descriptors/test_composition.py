"""Composition features (Magpie-style statistics of elemental properties).

Reference values are written out literally below, with their source named, so that a
change in the element data or in the statistics makes a test fail.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import chemical_symbols
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ml4ms.data import datasets
from ml4ms.descriptors.composition import (
    CompositionFeatures,
    CompositionFeaturizer,
    FormulaError,
    UnknownElementInFormulaError,
    composition_of,
    parse_formula,
)
from ml4ms.descriptors.elements import (
    MAGPIE_PROPERTIES,
    MAGPIE_UNAVAILABLE,
    element_property,
    element_table,
    resolve_properties,
    valence_counts,
)
from ml4ms.errors import DataError, UnknownElementError

# Pauling electronegativity (CRC Handbook, as stored by mendeleev 1.3 ``en_pauling``) and
# standard atomic weight in Da (IUPAC, mendeleev ``atomic_weight``).
EN = {"Fe": 1.83, "O": 3.44, "Na": 0.93, "Cl": 3.16, "Ga": 1.81, "As": 2.18}
WEIGHT = {"Fe": 55.845, "O": 15.999}

# Magpie's valence tables (Ward et al. 2016; matminer/utils/data_files/magpie_elementdata,
# NsValence ... NfValence, NValence, NsUnfilled ... NfUnfilled, NUnfilled).
MAGPIE_VALENCE = {
    "H": (1, 0, 0, 0, 1, 1, 0, 0, 0, 1),
    "He": (2, 0, 0, 0, 2, 0, 0, 0, 0, 0),
    "O": (2, 4, 0, 0, 6, 0, 2, 0, 0, 2),
    "Fe": (2, 0, 6, 0, 8, 0, 0, 4, 0, 4),
    "Cu": (1, 0, 10, 0, 11, 1, 0, 0, 0, 1),
    "Ga": (2, 1, 10, 0, 13, 0, 5, 0, 0, 5),
    "Pd": (0, 0, 10, 0, 10, 0, 0, 0, 0, 0),
    "Ce": (2, 0, 1, 1, 4, 0, 0, 9, 13, 22),
    "Gd": (2, 0, 1, 7, 10, 0, 0, 9, 7, 16),
    "Au": (1, 0, 10, 14, 25, 1, 0, 0, 0, 1),
    "Pb": (2, 2, 10, 14, 28, 0, 4, 0, 0, 4),
    "U": (2, 0, 1, 3, 6, 0, 0, 9, 11, 20),
}
VALENCE_NAMES = ["NsValence", "NpValence", "NdValence", "NfValence", "NValence",
                 "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled"]


# ============================================================================ element table
def test_element_table_holds_the_literal_values():
    table = element_table(["Electronegativity", "AtomicWeight", "Number", "Column", "Row"])
    assert table.shape == (119, 5)
    assert np.isnan(table[0]).all()  # row 0 is no element
    for symbol in EN:
        assert table[chemical_symbols.index(symbol), 0] == pytest.approx(EN[symbol], abs=1e-12)
    for symbol in WEIGHT:
        assert table[chemical_symbols.index(symbol), 1] == pytest.approx(WEIGHT[symbol], abs=1e-3)
    assert table[26, 2:].tolist() == [26, 8, 4]  # Fe: Z, group, period
    assert table[58, 3] == 3  # Ce: Magpie puts the f block in column 3
    assert element_property("Electronegativity", "O") == 3.44
    assert np.isnan(element_property("Electronegativity", "He"))  # missing is NaN, not 0
    with pytest.raises(ValueError):
        table[1, 0] = 0.0  # read-only


@pytest.mark.parametrize("symbol", sorted(MAGPIE_VALENCE))
def test_valence_counts_follow_magpie(symbol):
    table = element_table(VALENCE_NAMES)
    assert table[chemical_symbols.index(symbol)].tolist() == list(MAGPIE_VALENCE[symbol])


def test_valence_parser():
    assert valence_counts("[Xe] 4f14 5d10 6s2 6p2") == {"s": 2, "p": 2, "d": 10, "f": 14}
    assert valence_counts("[Xe] 4f 5d 6s2") == {"s": 2, "p": 0, "d": 1, "f": 1}
    with pytest.raises(ValueError, match="4x2"):
        valence_counts("[Ar] 4x2")


def test_property_presets():
    assert resolve_properties("magpie") == list(MAGPIE_PROPERTIES)
    assert len(MAGPIE_PROPERTIES) == 18
    assert "FirstIonizationEnergy" in resolve_properties("all")
    with pytest.raises(ValueError, match="OQMD"):
        resolve_properties(["GSbandgap"])
    with pytest.raises(ValueError, match="unknown"):
        resolve_properties(["Electronegativity", "Colour"])
    with pytest.raises(ValueError, match="preset"):
        resolve_properties("deml")
    assert not set(MAGPIE_UNAVAILABLE) & set(MAGPIE_PROPERTIES)
    assert not np.isnan(element_table("all")[1:87]).all(axis=0).any()


# ================================================================================ parsing
@pytest.mark.parametrize(
    "formula, expected",
    [
        ("Fe2O3", {"Fe": 2, "O": 3}),
        ("Cu1.8S1", {"Cu": 1.8, "S": 1}),
        ("Ag(AuS)2", {"Ag": 1, "Au": 2, "S": 2}),
        ("Ca3(PO4)2", {"Ca": 3, "P": 2, "O": 8}),
        ("Ag0.5Ge1Pb1.75S4", {"Ag": 0.5, "Ge": 1, "Pb": 1.75, "S": 4}),
        ("CuSO4·5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("CuSO4*5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("K4[Fe(CN)6]", {"K": 4, "Fe": 1, "C": 6, "N": 6}),
        ("Mg((OH)2)0.5", {"Mg": 1, "O": 1, "H": 1}),
        ("Fe2 O3", {"Fe": 2, "O": 3}),
        ("CO", {"C": 1, "O": 1}),
        ("Co", {"Co": 1}),
        ("OHO", {"O": 2, "H": 1}),
        ("Fe0.5O.5", {"Fe": 0.5, "O": 0.5}),
        ("Fe0O1", {"O": 1}),
    ],
)
def test_parse_formula(formula, expected):
    result = parse_formula(formula)
    assert result.keys() == expected.keys()
    for symbol, amount in expected.items():
        assert result[symbol] == pytest.approx(amount, rel=1e-12)


@pytest.mark.parametrize(
    "formula, position, error",
    [
        ("", 0, FormulaError),
        ("Fe2O3)", 5, FormulaError),
        ("(Fe2O3", 6, FormulaError),
        ("Ca3(PO4", 7, FormulaError),
        ("Fe()", 3, FormulaError),
        ("Fe-O", 2, FormulaError),
        ("Fe2O3·", 6, FormulaError),
        ("5", 1, FormulaError),
        ("Fe0", 0, FormulaError),
        ("Xx2O", 0, UnknownElementInFormulaError),
        ("FeQ", 2, UnknownElementInFormulaError),
        ("fe2o3", 0, UnknownElementInFormulaError),
    ],
)
def test_parse_formula_errors(formula, position, error):
    with pytest.raises(error) as info:
        parse_formula(formula)
    assert info.value.position == position
    assert info.value.formula == formula
    assert f"{formula!r}" in str(info.value) and f"position {position}" in str(info.value)
    assert isinstance(info.value, ValueError)
    if error is UnknownElementInFormulaError:
        assert isinstance(info.value, UnknownElementError)


def test_composition_of_other_inputs():
    assert composition_of({"Fe": 2, "O": 3}) == {26: 2.0, 8: 3.0}
    assert composition_of({26: 2, 8: 3.0}) == {26: 2.0, 8: 3.0}
    assert composition_of(Atoms("OFe2O2")) == {8: 3.0, 26: 2.0}
    with pytest.raises(DataError, match="structure 4"):
        composition_of({"Fe": -1}, index=4)
    with pytest.raises(DataError):
        composition_of({"Fe": float("nan")})
    with pytest.raises(UnknownElementError):
        composition_of({"Xx": 1})
    with pytest.raises(DataError):
        composition_of(3.0)
    with pytest.raises(FormulaError, match="structure 7"):
        composition_of("Fe2O3)", index=7)


# ===================================================================== hand-computed values
def test_fe2o3_by_hand():
    """Fe2O3: x_Fe = 2/5, x_O = 3/5, literal element values from the table's sources."""
    x_fe, x_o = 2 / 5, 3 / 5
    cf = CompositionFeatures(["Electronegativity", "AtomicWeight"],
                             stats=("mean", "avg_dev", "min", "max", "range", "mode"))
    assert cf.feature_labels()[:2] == ["MagpieData mean Electronegativity",
                                       "MagpieData avg_dev Electronegativity"]
    assert cf.feature_labels()[8] == "MagpieData minimum AtomicWeight"
    assert cf.feature_units()[6:] == ["Da"] * 6
    got = cf.featurize("Fe2O3")
    for k, values in enumerate([EN, WEIGHT]):
        fe, o = values["Fe"], values["O"]
        mean = x_fe * fe + x_o * o
        avg_dev = x_fe * abs(fe - mean) + x_o * abs(o - mean)
        expected = [mean, avg_dev, min(fe, o), max(fe, o), abs(fe - o), o]  # mode: O (x = 0.6)
        np.testing.assert_allclose(got[6 * k:6 * k + 6], expected, rtol=1e-4 if k else 1e-12)
    # the same numbers written out: EN mean 2.796, avg_dev 0.7728
    np.testing.assert_allclose(got[:6], [2.796, 0.7728, 1.83, 3.44, 1.61, 3.44], rtol=1e-12)


def test_mode_ties_go_to_the_smallest_value():
    cf = CompositionFeatures(["Electronegativity"], stats=("mode",))
    assert cf.featurize("FeO")[0] == EN["Fe"]  # equal fractions
    assert cf.featurize("OFe")[0] == EN["Fe"]
    assert cf.featurize("FeO1.0000001")[0] == EN["Fe"]  # numpy.isclose tie, as matminer
    assert cf.featurize("FeO1.01")[0] == EN["O"]
    assert cf.featurize("NaCl2")[0] == EN["Cl"]
    assert cf.featurize("Na2Cl")[0] == EN["Na"]


def _reference(compositions, properties, stats):
    """matminer's PropertyStats formulas, one composition at a time, in NumPy."""
    table = element_table(properties)
    rows = []
    for comp in compositions:
        zs = np.array(list(comp))
        x = np.array(list(comp.values()), dtype=float)
        x = x / x.sum()
        row = []
        for j in range(len(properties)):
            p = table[zs, j]
            mean = np.average(p, weights=x)
            values = {
                "mean": mean,
                "avg_dev": np.average(np.abs(p - mean), weights=x),
                "minimum": p.min(), "maximum": p.max(), "range": p.max() - p.min(),
                "mode": p[np.isclose(x, x.max())].min(),
            }
            row += [values[s] for s in stats]
        rows.append(row)
    return np.array(rows)


def test_matches_a_plain_numpy_implementation_on_random_compositions(rng):
    properties = [p for p in MAGPIE_PROPERTIES if p != "Electronegativity"]
    stats = ["mean", "avg_dev", "minimum", "maximum", "range", "mode"]
    table = element_table(properties)
    elements = [z for z in range(1, 104) if not np.isnan(table[z]).any()]
    assert len(elements) > 80
    comps = []
    for _ in range(200):
        zs = rng.choice(elements, size=rng.integers(1, 6), replace=False)
        amounts = np.round(rng.uniform(0.05, 5, size=len(zs)), 2)
        if rng.random() < 0.3:
            amounts[:] = amounts[0]  # ties for the mode
        comps.append({int(z): float(a) for z, a in zip(zs, amounts)})
    cf = CompositionFeatures(properties, stats, missing="raise")
    got = cf.transform(comps)
    np.testing.assert_allclose(got, _reference(comps, properties, stats), rtol=1e-12, atol=1e-10)


# ============================================================================ torch path
def _random_structures(rng, n):
    images = []
    for _ in range(n):
        pool = [1, 3, 8, 14, 26, 29, 31, 33, 79, 82]
        zs = rng.choice(pool, size=rng.integers(1, 5), replace=False)
        numbers = np.repeat(zs, rng.integers(1, 5, size=len(zs)))
        rng.shuffle(numbers)
        images.append(Atoms(numbers=numbers, positions=rng.uniform(0, 5, (len(numbers), 3))))
    return images


def test_torch_path_equals_string_path(rng):
    images = _random_structures(rng, 12)
    cf = CompositionFeatures()
    graph = cf.graph(images)
    from_graph = cf(graph)
    assert from_graph.shape == (12, 108) and from_graph.dtype == torch.float64
    formulas = [a.get_chemical_formula() for a in images]
    from_strings = cf.transform(formulas)
    np.testing.assert_allclose(from_graph.numpy(), from_strings, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(cf.transform(images), from_strings, rtol=1e-13, atol=1e-12)
    # DScribe-style create() goes through forward(graph)
    np.testing.assert_allclose(cf.create(images), from_strings, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(cf.create(images[3]), from_strings[3], rtol=1e-13, atol=1e-12)


def test_permutation_invariance(rng):
    cf = CompositionFeatures()
    atoms = Atoms("Fe2O3Ga", positions=rng.uniform(0, 4, (6, 3)))
    reference = cf.create(atoms)
    for _ in range(5):
        order = rng.permutation(len(atoms))
        np.testing.assert_array_equal(cf.create(atoms[order]), reference)
    # the order of structures in a batch does not matter either
    images = _random_structures(rng, 6)
    batched = cf.create(images)
    np.testing.assert_array_equal(cf.create(images[::-1]), batched[::-1])


def test_graph_errors():
    cf = CompositionFeatures()
    graph = cf.graph([Atoms("H2O"), Atoms("X")])
    with pytest.raises(UnknownElementError, match="structure 1"):
        cf(graph)


def test_float32_and_module_contract():
    cf = CompositionFeatures(dtype=torch.float32)
    assert cf.cutoff is None and cf.per_atom is False
    assert cf.get_number_of_features() == len(cf.feature_labels()) == 18 * 6
    out = cf(cf.graph([Atoms("NaCl")]))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), CompositionFeatures().featurize("NaCl"), rtol=1e-6)
    with pytest.raises(ValueError, match="statistic"):
        CompositionFeatures(stats=("mean", "median"))
    with pytest.raises(ValueError, match="repeated"):
        CompositionFeatures(stats=("min", "minimum"))
    with pytest.raises(ValueError, match="missing"):
        CompositionFeatures(missing="zero")


# ========================================================================= missing data
def test_missing_value_policies():
    """Eu has no Pauling electronegativity in the table (NaN)."""
    props = ["Electronegativity"]
    en_s = 2.58  # S, CRC via mendeleev
    assert np.isnan(element_table(props)[63, 0])
    impute = CompositionFeatures(props, missing="impute").featurize("EuS")
    fill = np.nanmean(element_table(props)[1:, 0])
    np.testing.assert_allclose(impute[0], (fill + en_s) / 2, rtol=1e-12)
    ignore = CompositionFeatures(props, missing="ignore").featurize("EuS")
    np.testing.assert_allclose(ignore, [en_s, 0, en_s, en_s, 0, en_s], rtol=1e-12)
    nan = CompositionFeatures(props, missing="nan").transform(["EuS", "Fe2O3"])
    assert np.isnan(nan[0]).all() and not np.isnan(nan[1]).any()
    with pytest.raises(DataError, match=r"structure 1.*\bEu\b.*Electronegativity"):
        CompositionFeatures(props, missing="raise").transform(["Fe2O3", "EuS"])
    # other properties of Eu are unaffected by any policy
    weight = CompositionFeatures(["AtomicWeight"], missing="raise").featurize("EuS")
    assert not np.isnan(weight).any()


# ============================================================================ scikit-learn
@pytest.fixture(scope="module")
def expt_gap_200():
    table = datasets.load("matbench_expt_gap")  # fails (not skips) when the data are missing
    assert len(table) == 4604
    rows = np.random.default_rng(0).permutation(len(table))[:200]
    return [table.compositions[k] for k in rows], table.targets[rows]


def test_featurizer_basics():
    f = CompositionFeaturizer(properties=["Electronegativity"], stats=("mean", "max"))
    assert f.get_params()["stats"] == ("mean", "max")
    X = f.fit_transform(["Fe2O3", "NaCl"])
    assert X.shape == (2, 2) and X.dtype == np.float64
    np.testing.assert_allclose(X[0], [2.796, 3.44], rtol=1e-12)
    assert f.n_features_in_ == 1
    assert list(f.get_feature_names_out()) == ["MagpieData mean Electronegativity",
                                               "MagpieData maximum Electronegativity"]
    # other input forms
    np.testing.assert_array_equal(f.transform(np.array([["Fe2O3"], ["NaCl"]], dtype=object)), X)
    np.testing.assert_array_equal(f.transform([{"Fe": 2, "O": 3}, Atoms("NaCl")]), X)
    with pytest.raises(TypeError, match="list"):
        f.transform("Fe2O3")
    with pytest.raises(FormulaError, match="structure 1"):
        f.transform(["Fe2O3", "Fe2O3)"])
    unfitted = CompositionFeaturizer()
    with pytest.raises(Exception, match="not fitted"):
        unfitted.transform(["Fe2O3"])


def test_ignore_errors_records_and_warns():
    f = CompositionFeaturizer(properties=["Electronegativity"], missing="raise",
                              ignore_errors=True).fit()
    with pytest.warns(RuntimeWarning, match="2 of 4"):
        X = f.transform(["Fe2O3", "Xx2", "EuS", "NaCl"])
    assert np.isnan(X[[1, 2]]).all() and not np.isnan(X[[0, 3]]).any()
    assert [e[0] for e in f.errors_] == [1, 2]
    assert "Xx" in f.errors_[0][2] and "Eu" in f.errors_[1][2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.transform(["Fe2O3"])
    assert f.errors_ == []


def test_clone():
    f = CompositionFeaturizer(properties=["Row", "Column"], stats=("mean",), missing="nan",
                              ignore_errors=True, n_jobs=2, progress=False, chunk_size=7)
    g = clone(f)
    assert g.get_params() == f.get_params() and g is not f
    fitted = clone(f).fit(["Fe2O3"])
    assert not hasattr(clone(fitted), "descriptor_")


def test_pipeline_random_forest(expt_gap_200):
    X, y = expt_gap_200
    model = make_pipeline(CompositionFeaturizer(),
                          RandomForestRegressor(n_estimators=50, random_state=0, n_jobs=1))
    model.fit(X[:150], y[:150])
    prediction = model.predict(X[150:])
    assert prediction.shape == (50,) and np.isfinite(prediction).all()
    mae = np.mean(np.abs(prediction - y[150:]))
    baseline = np.mean(np.abs(np.mean(y[:150]) - y[150:]))
    assert mae < 0.8 * baseline, (mae, baseline)
    names = model[:-1].get_feature_names_out()
    assert len(names) == model[-1].n_features_in_ == 108


def test_grid_search(expt_gap_200):
    X, y = expt_gap_200
    pipe = Pipeline([("features", CompositionFeaturizer()), ("scale", StandardScaler()),
                     ("ridge", Ridge())])
    grid = {"features__stats": [("mean",), ("mean", "avg_dev", "range")],
            "ridge__alpha": [1.0, 100.0]}
    search = GridSearchCV(pipe, grid, cv=3, scoring="neg_mean_absolute_error").fit(X, y)
    assert search.best_params_["features__stats"] in grid["features__stats"]
    n_stats = len(search.best_params_["features__stats"])
    assert search.best_estimator_["ridge"].n_features_in_ == 18 * n_stats
    assert np.isfinite(search.predict(X[:5])).all()


@pytest.mark.slow
def test_n_jobs_gives_the_same_features():
    formulas = ["Fe2O3", "NaCl", "Ag(AuS)2", "Cu1.8S1", "Ca3(PO4)2", "GaAs"] * 3
    serial = CompositionFeaturizer(chunk_size=4).fit().transform(formulas)
    parallel = CompositionFeaturizer(chunk_size=4, n_jobs=2).fit().transform(formulas)
    np.testing.assert_array_equal(serial, parallel)
