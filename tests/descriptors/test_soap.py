"""SOAP: DScribe's numbers, exact gradients, physical invariances, smoothness, bad input.

The DScribe comparisons need ``dscribe`` (a test-only oracle, never an ml4ms dependency);
without it they are skipped, and the embedded reference values below (DScribe 2.1.2)
still pin the numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from ml4ms import testing
from ml4ms.data.graph import AtomicGraph
from ml4ms.descriptors.soap import SOAP
from ml4ms.errors import DataError, UnknownElementError

SPECIES = ["H", "C", "O", "Cu"]
NUMBERS = [1, 6, 8, 29]


def _dscribe():
    # The oracle is part of the test extra: a missing install must fail, not skip, the comparison.
    import dscribe.descriptors

    return dscribe.descriptors


def _assert_dscribe_close(actual, expected, what=""):
    """rtol 1e-6 on every entry; entries that cancel to ~0 get an atol of 1e-10 x the largest."""
    expected = np.asarray(expected)
    assert np.shape(actual) == expected.shape, (what, np.shape(actual), expected.shape)
    atol = 1e-10 * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=atol, err_msg=what)


def _random_structure(seed: int) -> tuple[Atoms, bool, str]:
    """A random structure of one of five kinds; returns (atoms, periodic flag, kind)."""
    rng = np.random.default_rng(seed)
    kind = ("triclinic", "small cell", "molecule", "slab", "pbc ignored")[seed % 5]
    n_species = 1 + seed % 4
    species = rng.choice(NUMBERS, n_species, replace=False)
    if kind == "molecule":
        n = int(rng.integers(2, 9))
        positions = [rng.uniform(0, 5, 3)]
        while len(positions) < n:  # no two atoms closer than 0.8 Å
            p = rng.uniform(0, 5, 3)
            if min(np.linalg.norm(p - q) for q in positions) > 0.8:
                positions.append(p)
        return Atoms(numbers=rng.choice(species, n), positions=positions, pbc=False), False, kind
    size = 2.4 if kind == "small cell" else 5.5
    cell = np.eye(3) * size + rng.normal(scale=0.25 * size, size=(3, 3))
    while abs(np.linalg.det(cell)) < 0.3 * size**3:
        cell = np.eye(3) * size + rng.normal(scale=0.25 * size, size=(3, 3))
    n = int(rng.integers(1, 4 if kind == "small cell" else 8))
    pbc = [True, True, False] if kind == "slab" else True
    atoms = Atoms(
        numbers=rng.choice(species, n), scaled_positions=rng.random((n, 3)), cell=cell, pbc=pbc
    )
    return atoms, kind != "pbc ignored", kind


# ---------------------------------------------------------------------------- DScribe's numbers
@pytest.mark.parametrize("seed", range(60))
def test_equals_dscribe_on_random_structures(seed):
    ds = _dscribe()
    atoms, periodic, kind = _random_structure(seed)
    rng = np.random.default_rng(1000 + seed)
    kwargs = dict(
        species=SPECIES,
        r_cut=float(rng.choice([3.0, 4.0, 5.0])),
        n_max=int(rng.integers(1, 6)),
        l_max=int(rng.integers(0, 8)),
        sigma=float(rng.choice([0.3, 0.5, 0.8])),
        periodic=periodic,
    )
    centers = sorted(rng.choice(len(atoms), size=min(2, len(atoms)), replace=False).tolist())
    for average in ("off", "inner", "outer"):
        ours = SOAP(**kwargs, average=average)
        theirs = ds.SOAP(**kwargs, average=average)
        assert ours.get_number_of_features() == theirs.get_number_of_features()
        what = f"seed {seed} ({kind}, {kwargs}, average={average})"
        _assert_dscribe_close(ours.create(atoms), theirs.create(atoms), what)
        _assert_dscribe_close(
            ours.create(atoms, centers=centers),
            theirs.create(atoms, centers=centers),
            what + f", centers={centers}",
        )


def test_equals_dscribe_on_a_batch_with_options():
    ds = _dscribe()
    images = [_random_structure(s)[0] for s in (0, 5, 10, 15)]  # triclinic periodic
    cases = [
        dict(weighting={"function": "poly", "r0": 3.5, "c": 2.0, "m": 3}),
        dict(weighting={"function": "pow", "r0": 2.0, "c": 1.0, "d": 1.0, "m": 4, "w0": 0.0}),
        dict(weighting={"function": "exp", "r0": 1.0, "c": 1.0, "d": 0.5}),
        dict(weighting={"w0": 0.3}),
        dict(
            compression={
                "mode": "mu2",
                "species_weighting": {"H": 0.5, "C": 1.5, "O": 2.0, "Cu": 0.7},
            }
        ),
        dict(compression={"mode": "mu1nu1"}),
        dict(compression={"mode": "crossover"}),
    ]
    for extra in cases:
        kwargs = dict(
            species=SPECIES, r_cut=4.0, n_max=4, l_max=5, sigma=0.45, periodic=True, **extra
        )
        theirs = ds.SOAP(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()})
        ours = SOAP(**kwargs)
        assert ours.get_number_of_features() == theirs.get_number_of_features()
        expected = theirs.create(images)
        actual = ours.create(images, n_jobs=2)
        for a, e in zip(actual, expected, strict=True):
            _assert_dscribe_close(a, e, str(extra))
        for pair in [("H", "H"), ("Cu", "O"), ("O", "Cu")]:
            try:
                want = theirs.get_location(pair)
            except ValueError:
                with pytest.raises(ValueError):
                    ours.get_location(pair)
            else:
                assert ours.get_location(pair) == want


def test_cartesian_centers_equal_dscribe_and_are_wrapped_correctly():
    ds = _dscribe()
    atoms = _random_structure(0)[0]
    kwargs = dict(species=SPECIES, r_cut=4.0, n_max=4, l_max=4, sigma=0.5, periodic=True)
    inside = atoms.cell.cartesian_positions([[0.1, 0.2, 0.3], [0.5, 0.5, 0.9]])
    _assert_dscribe_close(
        SOAP(**kwargs).create(atoms, centers=inside),
        ds.SOAP(**kwargs).create(atoms, centers=inside),
    )
    # a point two cells away: ml4ms finds every image (DScribe's extension does not reach it)
    far = inside + atoms.cell.array[0] * 2 - atoms.cell.array[2]
    np.testing.assert_allclose(
        SOAP(**kwargs).create(atoms, centers=far),
        ds.SOAP(**kwargs).create(atoms, centers=inside),
        rtol=1e-9,
        atol=1e-12,
    )


def test_reference_values_of_dscribe_2_1_2():
    """Embedded DScribe 2.1.2 output, so the numbers are pinned even without dscribe."""
    atoms = Atoms(
        "CuO2Cu",
        scaled_positions=[[0, 0, 0], [0.3, 0.1, 0.2], [0.6, 0.5, 0.55], [0.1, 0.8, 0.4]],
        cell=[[3.2, 0.1, 0.3], [0.4, 3.5, -0.2], [0.2, 0.6, 3.9]],
        pbc=True,
    )
    soap = SOAP(species=["O", "Cu"], r_cut=4.5, n_max=3, l_max=4, sigma=0.4, periodic=True)
    columns = [0, 5, 17, 29, 44, 61, 77, 88, 101, 104]
    expected = [
        [
            0.01919262716386,
            1.75921611676732,
            0.11946970603774,
            0.20373200158559,
            0.04919052167318,
            -0.01986443931313,
            1.54931375286682,
            -0.00725329931945,
            0.01393693494665,
            0.28006280997365,
        ],
        [
            1.62809769989553,
            1.50214689447754,
            0.00775475259042,
            0.18588227379525,
            0.0274000541483,
            -0.03285324074243,
            -0.00750415698125,
            -0.06053510517031,
            0.00089999727389,
            0.19025683821346,
        ],
        [
            1.62809769989552,
            1.50214689447754,
            0.00775475259042,
            0.18588227379525,
            -0.00931207211278,
            -0.02876874921376,
            0.320443379586,
            -0.00329893213722,
            0.05934856524284,
            0.85607804587128,
        ],
        [
            0.00982987936043,
            2.31787329593405,
            0.45383534421277,
            0.65083456461468,
            0.07274355221814,
            -0.02316805943958,
            1.54931375286682,
            -0.00725329931945,
            0.01393693494665,
            0.28006280997365,
        ],
    ]
    features = soap.create(atoms)
    assert features.shape == (4, 105)
    np.testing.assert_allclose(features[:, columns], expected, rtol=1e-6, atol=1e-12)
    assert soap.feature_labels()[5] == "O-O n=2 n'=2 l=0"
    assert soap.get_location(("Cu", "O")) == slice(30, 75)


def test_labels_and_locations_follow_dscribe_order():
    soap = SOAP(species=["Cu", "O"], r_cut=4.0, n_max=2, l_max=1, sigma=0.5)
    labels = soap.feature_labels()
    assert labels[:4] == [
        "O-O n=0 n'=0 l=0",
        "O-O n=0 n'=1 l=0",
        "O-O n=1 n'=1 l=0",
        "O-O n=0 n'=0 l=1",
    ]
    assert labels[6:10] == [
        "O-Cu n=0 n'=0 l=0",
        "O-Cu n=0 n'=1 l=0",
        "O-Cu n=1 n'=0 l=0",
        "O-Cu n=1 n'=1 l=0",
    ]
    assert len(labels) == soap.get_number_of_features() == (2 * 2) * (2 * 2 + 1) // 2 * 2
    assert soap.get_location(("Cu", "O")) == soap.get_location((8, 29)) == slice(6, 14)
    assert soap.get_location(("Cu", "Cu")) == slice(14, 20)


# ---------------------------------------------------------------------------- exact gradients
def _energy_fn(soap: SOAP, atoms: Atoms, weights: torch.Tensor):
    """E(positions, strain) = sum(w * features): the quantity a linear potential backpropagates."""
    graph = soap.graph([atoms])

    def energy(positions, strain):
        deformation = torch.eye(3, dtype=torch.float64) + strain
        features = soap._power_spectrum(
            soap._graph_coefficients(
                graph, positions=positions @ deformation, cell=graph.cell @ deformation
            )
        )
        return (features * weights).sum()

    return graph, energy


@pytest.mark.parametrize("rbf", ["gto", "gto_smooth"])
def test_forces_and_stress_match_finite_differences(rbf):
    atoms = _random_structure(0)[0]
    soap = SOAP(species=SPECIES, r_cut=3.5, n_max=3, l_max=4, sigma=0.5, periodic=True, rbf=rbf)
    weights = torch.randn(
        len(atoms),
        soap.get_number_of_features(),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(3),
    )
    graph, energy = _energy_fn(soap, atoms, weights)
    positions = graph.positions.clone().requires_grad_(True)
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    grad_r, grad_e = torch.autograd.grad(energy(positions, strain), (positions, strain))
    h = 1e-5
    rng = np.random.default_rng(0)
    flat = rng.choice(3 * len(atoms), size=min(8, 3 * len(atoms)), replace=False)
    components = [divmod(int(k), 3) for k in flat]
    with torch.no_grad():
        for a, c in components:
            step = torch.zeros_like(positions)
            step[a, c] = h
            fd = (
                energy(graph.positions + step, strain) - energy(graph.positions - step, strain)
            ) / (2 * h)
            assert abs(fd - grad_r[a, c]) <= 1e-6 * max(1.0, abs(fd)), (a, c, fd, grad_r[a, c])
        for a in range(3):
            for b in range(3):
                step = torch.zeros(3, 3, dtype=torch.float64)
                step[a, b] = h
                fd = (energy(graph.positions, step) - energy(graph.positions, -step)) / (2 * h)
                assert abs(fd - grad_e[a, b]) <= 1e-6 * max(1.0, abs(fd)), (a, b, fd, grad_e[a, b])


def test_second_derivatives_are_exact():
    """Double backward (force training): d/dR of |F|² against finite differences of |F|²."""
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=1)
    soap = SOAP(species=["H", "O"], r_cut=3.0, n_max=3, l_max=3, sigma=0.5, rbf="gto_smooth")
    weights = torch.linspace(-1, 1, soap.get_number_of_features(), dtype=torch.float64)
    graph = soap.graph([atoms])

    def force_norm(positions, create_graph):
        features = soap._power_spectrum(soap._graph_coefficients(graph, positions=positions))
        (grad,) = torch.autograd.grad(
            (features * weights).sum(), positions, create_graph=create_graph
        )
        return (grad**2).sum()

    positions = graph.positions.clone().requires_grad_(True)
    (analytic,) = torch.autograd.grad(force_norm(positions, True), positions)
    h = 1e-5
    for a, c in [(0, 0), (1, 2), (2, 1)]:
        step = torch.zeros_like(positions)
        step[a, c] = h
        plus = force_norm((graph.positions + step).requires_grad_(True), False)
        minus = force_norm((graph.positions - step).requires_grad_(True), False)
        fd = (plus - minus) / (2 * h)
        assert abs(fd - analytic[a, c]) <= 1e-5 * max(1.0, abs(fd)), (a, c, fd, analytic[a, c])


def test_derivatives_equal_dscribe_analytical_for_molecules():
    ds = _dscribe()
    mol = molecule("CH3CH2OH")
    mol.rattle(0.1, seed=2)
    kwargs = dict(species=["H", "C", "O"], r_cut=4.0, n_max=4, l_max=4, sigma=0.5)
    ours, theirs = SOAP(**kwargs), ds.SOAP(**kwargs)
    for attach in (False, True):
        for centers in (None, [0, 2, 5]):
            d_ref, f_ref = theirs.derivatives(
                mol, centers=centers, attach=attach, method="analytical"
            )
            d, f = ours.derivatives(mol, centers=centers, attach=attach)
            _assert_dscribe_close(f, f_ref)
            np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-9 * np.abs(d_ref).max())
    d_ref = theirs.derivatives(mol, include=[1, 3], method="analytical", return_descriptor=False)
    d = ours.derivatives(mol, include=[1, 3], return_descriptor=False)
    np.testing.assert_allclose(d, d_ref, rtol=1e-6, atol=1e-9 * np.abs(d_ref).max())


def test_periodic_derivatives_match_finite_differences():
    atoms = _random_structure(1)[0]  # small cell: many images of each atom
    soap = SOAP(species=SPECIES, r_cut=3.0, n_max=2, l_max=3, sigma=0.5, periodic=True)
    for attach in (False, True):
        d, f = soap.derivatives(atoms, attach=attach)
        assert d.shape == (len(atoms), len(atoms), 3, soap.get_number_of_features())
        h = 1e-5
        centers = None if attach else atoms.positions.copy()
        for a in range(len(atoms)):
            for c in range(3):
                moved = [atoms.copy(), atoms.copy()]
                moved[0].positions[a, c] += h
                moved[1].positions[a, c] -= h
                fd = (
                    soap.create(moved[0], centers=centers) - soap.create(moved[1], centers=centers)
                ) / (2 * h)
                np.testing.assert_allclose(
                    d[:, a, c], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max() + 1e-10
                )
    averaged = SOAP(
        species=SPECIES, r_cut=3.0, n_max=2, l_max=3, sigma=0.5, periodic=True, average="inner"
    )
    d, f = averaged.derivatives(atoms, attach=True)
    assert d.shape == (1, len(atoms), 3, averaged.get_number_of_features()) and f.shape[0] == 1


# ---------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("rbf", ["gto", "gto_smooth"])
def test_invariant_to_rotation_translation_permutation_and_images(rbf):
    atoms = _random_structure(5)[0]
    soap = SOAP(species=SPECIES, r_cut=4.0, n_max=4, l_max=6, sigma=0.5, periodic=True, rbf=rbf)
    testing.assert_invariant(soap.create, atoms, per_atom=True, atol=1e-9, rtol=1e-8)
    averaged = SOAP(
        species=SPECIES, r_cut=4.0, n_max=4, l_max=6, sigma=0.5, periodic=True, average="outer"
    )
    testing.assert_invariant(averaged.create, atoms, per_atom=False, atol=1e-9, rtol=1e-8)
    mol = molecule("CH3CH2OH")
    isolated = SOAP(species=SPECIES, r_cut=4.0, n_max=4, l_max=6, sigma=0.5, rbf=rbf)
    testing.assert_invariant(isolated.create, mol, per_atom=True, atol=1e-9, rtol=1e-8)


def test_the_invariance_check_can_fail():
    """A deliberately broken descriptor (an unsymmetrised coefficient) must be caught."""
    atoms = _random_structure(5)[0]
    soap = SOAP(species=SPECIES, r_cut=4.0, n_max=2, l_max=2, sigma=0.5, periodic=True)

    def broken(a):
        graph = soap.graph([a])
        return soap._graph_coefficients(graph)[1].detach().numpy().reshape(len(a), -1)

    with pytest.raises(AssertionError):
        testing.assert_invariant(
            broken, atoms, per_atom=True, permutation=False, translation=False, periodic_image=False
        )


# ---------------------------------------------------------------------------- smoothness
def _dimer_scan(soap: SOAP, distances):
    values, grads = [], []
    for r in distances:
        positions = torch.tensor(
            [[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64, requires_grad=True
        )
        graph = soap.graph([Atoms("CuO", positions=positions.detach().numpy())])
        features = soap._power_spectrum(soap._graph_coefficients(graph, positions=positions))[0]
        if features.requires_grad:  # beyond the cutoff nothing depends on the positions
            (grad,) = torch.autograd.grad(features.sum(), positions)
            grads.append(grad[1, 0].item())
        else:
            grads.append(0.0)
        values.append(features.detach().numpy())
    return np.array(values), np.array(grads)


def _largest_jump(series: np.ndarray) -> float:
    """Largest step of a scanned series relative to its neighbouring steps (1 = smooth)."""
    steps = np.abs(np.diff(series, axis=0))
    steps = steps.max(axis=1) if steps.ndim > 1 else steps
    around = np.maximum(np.roll(steps, 1), np.roll(steps, -1))[1:-1]
    return float((steps[1:-1] / (around + 1e-12 * max(steps.max(), 1e-300))).max())


def test_smooth_basis_is_continuous_at_the_cutoff():
    soap = SOAP(
        species=["O", "Cu"],
        r_cut=3.0,
        n_max=4,
        l_max=4,
        sigma=0.5,
        rbf="gto_smooth",
        cutoff_width=0.8,
    )
    assert soap.cutoff == 3.0
    distances = np.linspace(2.9, 3.1, 41)
    values, grads = _dimer_scan(soap, distances)
    outside = distances >= 3.0
    isolated = soap.create(Atoms("Cu", positions=[[0, 0, 0]]))
    np.testing.assert_allclose(
        values[outside], np.repeat(isolated, outside.sum(), 0), rtol=0, atol=1e-14
    )
    # no jump in the features nor in their gradient (C² cutoff): every step is comparable
    # to its neighbours, and the gradient goes to zero at r_cut
    assert _largest_jump(values) < 2.5
    assert _largest_jump(grads[:, None]) < 2.5
    assert abs(grads[~outside][-1]) < 1e-2 * np.abs(grads).max()  # ~ (r_cut - r)² near r_cut
    # inside r_cut - width, the features equal rbf="gto"'s
    gto = SOAP(species=["O", "Cu"], r_cut=3.0, n_max=4, l_max=4, sigma=0.5)
    dimer = Atoms("CuO", positions=[[0, 0, 0], [2.1, 0, 0]])
    np.testing.assert_allclose(soap.create(dimer), gto.create(dimer), rtol=1e-12)


def test_dscribe_basis_drops_neighbours_with_a_small_jump():
    """rbf="gto" is DScribe's: a neighbour leaves at r_cut + σ√(-2 ln 1e-3), with a jump
    (this also shows that the jump detector of the smoothness tests can fail)."""
    soap = SOAP(species=["O", "Cu"], r_cut=3.0, n_max=4, l_max=4, sigma=0.5)
    assert soap.cutoff == pytest.approx(3.0 + 0.5 * np.sqrt(-2 * np.log(1e-3)))
    values, _ = _dimer_scan(soap, np.linspace(soap.cutoff - 0.01, soap.cutoff + 0.01, 20))
    assert _largest_jump(values) > 100


def test_poly_weighting_is_continuous_at_r0():
    soap = SOAP(
        species=["O", "Cu"],
        r_cut=3.0,
        n_max=3,
        l_max=3,
        sigma=0.4,
        weighting={"function": "poly", "r0": 3.0, "c": 1.0, "m": 2},
    )
    assert soap.cutoff == 3.0  # zero weight beyond r0: the neighbour sphere shrinks to r0
    values, grads = _dimer_scan(soap, np.linspace(2.95, 3.05, 41))
    assert _largest_jump(values) < 2.5 and _largest_jump(grads[:, None]) < 2.5


# ---------------------------------------------------------------------------- the module on graphs
def test_batch_equals_singles_and_average_modes():
    images = [_random_structure(s)[0] for s in (0, 1, 3)] + [molecule("CH3CH2OH")]
    for average in ("off", "inner", "outer"):
        soap = SOAP(
            species=SPECIES, r_cut=4.0, n_max=3, l_max=4, sigma=0.5, periodic=True, average=average
        )
        batched = soap(soap.graph(images)).detach().numpy()
        singles = np.concatenate([soap(soap.graph([a])).detach().numpy() for a in images])
        np.testing.assert_allclose(batched, singles, rtol=1e-12, atol=1e-14)
        assert soap.per_atom == (average == "off")
        assert batched.shape[0] == (
            sum(len(a) for a in images) if average == "off" else len(images)
        )


def test_graph_with_larger_cutoff_and_periodic_images_are_handled():
    atoms = _random_structure(0)[0]
    soap = SOAP(species=SPECIES, r_cut=3.5, n_max=3, l_max=3, sigma=0.5, periodic=True)
    wide = AtomicGraph.from_atoms([atoms], soap.cutoff + 2.0, labels=False)
    np.testing.assert_allclose(
        soap(wide).detach().numpy(), soap.create(atoms), rtol=1e-12, atol=1e-14
    )
    isolated = SOAP(species=SPECIES, r_cut=3.5, n_max=3, l_max=3, sigma=0.5, periodic=False)
    expected = isolated.create(atoms)  # atoms.pbc is True, but periodic=False ignores it
    cluster = atoms.copy()
    cluster.pbc = False
    np.testing.assert_allclose(expected, isolated.create(cluster), rtol=1e-12)
    np.testing.assert_allclose(isolated(wide).detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="cutoff"):
        soap(AtomicGraph.from_atoms([atoms], 2.0, labels=False))


def test_float32_sparse_and_repeated_centers():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.02, seed=0)
    kwargs = dict(species=["Cu"], r_cut=4.0, n_max=3, l_max=3, sigma=0.5, periodic=True)
    double = SOAP(**kwargs).create(atoms)
    single = SOAP(**kwargs, dtype="float32").create(atoms)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-5 * np.abs(double).max())
    assert (
        SOAP(**kwargs, dtype="float32")(SOAP(**kwargs, dtype="float32").graph([atoms])).dtype
        == torch.float32
    )
    import sparse  # installed with dscribe
    out = SOAP(**kwargs, sparse=True).create(atoms)
    assert isinstance(out, sparse.COO)
    np.testing.assert_allclose(out.todense(), double)
    np.testing.assert_allclose(
        SOAP(**kwargs).create(atoms, centers=[2, 2, 0]), double[[2, 2, 0]], rtol=1e-12
    )
    many = SOAP(**kwargs).create([atoms, atoms[:2]], centers=[[0, 1], None])
    np.testing.assert_allclose(many[0], double[:2], rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------- bad input
def test_bad_parameters_raise_clear_errors():
    ok = dict(species=["Cu"], r_cut=5.0, n_max=4, l_max=4)
    for change, message in [
        (dict(r_cut=0.0), "r_cut"),
        (dict(r_cut=-2.0), "r_cut"),
        (dict(r_cut=float("nan")), "r_cut"),
        (dict(r_cut=0.8), "larger than 1"),
        (dict(n_max=0), "n_max"),
        (dict(l_max=21), "l_max"),
        (dict(l_max=-1), "l_max"),
        (dict(sigma=0.0), "sigma"),
        (dict(rbf="polynomial"), "polynomial"),
        (dict(rbf="bessel"), "rbf"),
        (dict(average="mean"), "average"),
        (dict(dtype="float16"), "dtype"),
        (dict(species=["Xx"]), "Xx"),
        (dict(species=[]), "species"),
        (dict(weighting={"function": "gauss", "r0": 1, "c": 1}), "weighting"),
        (dict(weighting={"function": "poly", "c": 1, "m": 2}), "r0"),
        (dict(compression={"mode": "mu3"}), "compression"),
        (dict(cutoff_width=0.5), "cutoff_width"),
    ]:
        with pytest.raises(ValueError, match=message):
            SOAP(**{**ok, **change})
    with pytest.raises(TypeError, match="n_max"):
        SOAP(**{**ok, "n_max": 2.5})
    with pytest.raises(ValueError, match="cutoff_width"):
        SOAP(**ok, rbf="gto_smooth", cutoff_width=6.0)


def test_bad_structures_raise_clear_errors():
    soap = SOAP(species=["Cu", "O"], r_cut=3.0, n_max=2, l_max=2, periodic=True)
    with pytest.raises(UnknownElementError, match="Fe"):
        soap.create(Atoms("CuFe", positions=[[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(UnknownElementError, match="structure 1"):
        soap.create([Atoms("Cu"), Atoms("H")])
    with pytest.raises(DataError, match="no atoms"):
        soap.create(Atoms())
    with pytest.raises(DataError, match="NaN"):
        soap.create(Atoms("Cu2", positions=[[0, 0, 0], [np.nan, 0, 0]]))
    with pytest.raises(DataError, match="cell"):
        soap.create(Atoms("Cu2", positions=[[0, 0, 0], [1, 0, 0]], pbc=True))
    with pytest.raises(IndexError, match="out of range"):
        soap.create(Atoms("Cu2", positions=[[0, 0, 0], [1, 0, 0]]), centers=[5])
    with pytest.raises(ValueError, match="centers"):
        soap.create(Atoms("Cu2", positions=[[0, 0, 0], [1, 0, 0]]), centers=[[0, 0]])
    graph = AtomicGraph.from_atoms(
        [Atoms("CuFe", positions=[[0, 0, 0], [1, 1, 1]])], soap.cutoff, labels=False
    )
    with pytest.raises(UnknownElementError, match="Fe"):
        soap(graph)
    # a lone atom is fine: only its own Gaussian, and no NaN anywhere
    single = soap.create(Atoms("O", positions=[[0, 0, 0]]))
    assert np.isfinite(single).all() and np.abs(single).max() > 0
