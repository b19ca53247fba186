"""Conformance checks for potentials and descriptors: physics oracles as assertions.

Every function here raises :class:`AssertionError` with a message that says what
failed, where (structure, atom, component), by how much and against which tolerance,
and returns None otherwise. They are public API: a new model family (or a third-party
ASE calculator) gets the same checks ml4ms's own models get, as one-liners in pytest::

    from ase.build import bulk
    from ml4ms.models import LennardJones
    from ml4ms import testing

    def test_my_model_is_a_proper_potential():
        model = LennardJones(sigma=3.4, epsilon=0.0104, smooth=True)
        atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * 2
        atoms.rattle(0.05, seed=1)
        testing.run_model_checks(model, [atoms, atoms[:5]])

The checks and their oracles:

- :func:`assert_forces_match_finite_difference`: F = -dE/dR, by central differences.
- :func:`assert_stress_matches_finite_difference`: sigma = (1/V) dE/d(eps), by central
  differences of the strain.
- :func:`assert_invariant`: a function of a structure is unchanged by rotation,
  translation, permutation and moving atoms to periodic images.
- :func:`assert_model_invariant`: energy invariant, forces equivariant, stress
  transforming as R sigma R^T.
- :func:`assert_batch_equals_singles`: one batched forward pass equals each structure alone.
- :func:`assert_no_cross_structure_gradient`: dE_k/dR of other structures is exactly 0.
- :func:`assert_smooth_at_cutoff`: no jump in E or F where an atom crosses the cutoff.
- :func:`assert_isolated_atom_energy`: a lone atom feels no force and, unless it is a network
  built with ``anchor_isolated_atom=False``, has energy E0.
- :func:`assert_no_input_mutation`: the input Atoms is left as it was.
- :func:`run_model_checks`: all of the above that apply.

``model`` arguments accept an :class:`~ml4ms.models.AtomisticModel` (evaluated through
:class:`ml4ms.simulate.Calculator`, in the model's own dtype and device) or any ASE
calculator, except where a check needs the model itself (batches, gradients, cutoff).
The default tolerances suit float64 evaluation; loosen them for float32 models.
Random choices (rotations, permutations, which components are checked) come from
``numpy.random.default_rng(seed)``, so a failure is reproducible.

Units are ASE's: Å, eV, eV/Å, eV/Å³ (Voigt order xx, yy, zz, yz, xz, xy; positive =
tensile).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.data import atomic_numbers, chemical_symbols

from .data.graph import AtomicGraph
from .models.base import AtomisticModel, eval_mode

__all__ = [
    "CHECKS",
    "assert_batch_equals_singles",
    "assert_forces_match_finite_difference",
    "assert_invariant",
    "assert_isolated_atom_energy",
    "assert_model_invariant",
    "assert_no_cross_structure_gradient",
    "assert_no_input_mutation",
    "assert_smooth_at_cutoff",
    "assert_stress_matches_finite_difference",
    "random_rotation",
    "run_model_checks",
]

ModelLike = Union[AtomisticModel, BaseCalculator]

_XYZ = "xyz"
_VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
_VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


# ---------------------------------------------------------------------------- helpers
@contextmanager
def _calculator_for(model: ModelLike) -> Iterator[BaseCalculator]:
    """An ASE calculator for ``model``: itself, or an ml4ms Calculator in the model's dtype."""
    if isinstance(model, BaseCalculator):
        yield model
        return
    if not isinstance(model, AtomisticModel):
        raise TypeError(
            f"expected an AtomisticModel or an ASE calculator, got {type(model).__name__}"
        )
    from .simulate.calculator import Calculator

    reference = model.reference_energies
    with eval_mode(model):
        yield Calculator(model, dtype=reference.dtype, device=reference.device)


def _working_copy(atoms: Atoms, calc: BaseCalculator) -> Atoms:
    """A private copy without constraints (they would zero forces and pin positions)."""
    work = atoms.copy()
    work.set_constraint()
    work.calc = calc
    return work


def _has_stress(calc: BaseCalculator, atoms: Atoms) -> bool:
    """Whether ``calc`` reports a stress for ``atoms`` (a 3-D cell and the property declared)."""
    declared = getattr(calc, "implemented_properties", ("stress",))
    return atoms.cell.rank == 3 and "stress" in declared


def _symbol(atoms: Atoms, index: int) -> str:
    return atoms.get_chemical_symbols()[index]


def _forward(
    model: AtomisticModel, images: Sequence[Atoms], *, compute_stress: bool
) -> dict[str, np.ndarray]:
    """One batched forward pass of ``model`` on ``images``, as NumPy arrays."""
    reference = model.reference_energies
    graph = AtomicGraph.from_atoms(
        list(images), model.cutoff, dtype=reference.dtype, device=reference.device, labels=False
    )
    with eval_mode(model):
        out = model(graph, compute_forces=True, compute_stress=compute_stress, create_graph=False)
    return {key: value.detach().cpu().numpy().astype(np.float64) for key, value in out.items()}


def _energies_and_forces(
    model: ModelLike, images: Sequence[Atoms]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energy (eV) and forces (eV/Å) of each image: batched for a model, singly for a calculator."""
    if isinstance(model, AtomisticModel):
        out = _forward(model, images, compute_stress=False)
        split = np.cumsum([len(a) for a in images])[:-1]
        return out["energy"], np.split(out["forces"], split)
    energies, forces = [], []
    with _calculator_for(model) as calc:
        for atoms in images:
            work = _working_copy(atoms, calc)
            energies.append(work.get_potential_energy())
            forces.append(np.array(work.get_forces()))
    return np.array(energies), forces


def _first_failure(
    actual: np.ndarray, expected: np.ndarray, *, atol: float, rtol: float
) -> tuple[int, tuple[int, ...], float, float] | None:
    """None when ``|actual - expected| <= atol + rtol |expected|`` everywhere (NaN fails).

    Otherwise (number failing, index of the worst, its error, its tolerance); the worst
    is the one exceeding its tolerance by the largest factor.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    error = np.nan_to_num(np.abs(actual - expected), nan=np.inf)
    tolerance = atol + rtol * np.abs(np.nan_to_num(expected))
    bad = ~(error <= tolerance)
    if not bad.any():
        return None
    ratio = np.where(bad, error / np.maximum(tolerance, np.finfo(float).tiny), -np.inf)
    index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return (
        int(bad.sum()),
        tuple(int(i) for i in index),
        float(error[index]),
        float(tolerance[index]),
    )


def random_rotation(rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A uniformly random proper rotation matrix (det = +1), shape (3, 3).

    Parameters
    ----------
    rng
        A NumPy generator or a seed.
    """
    rng = np.random.default_rng(rng)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))  # makes the distribution uniform (Haar)
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# ---------------------------------------------------------------------------- forces
def assert_forces_match_finite_difference(
    model: ModelLike,
    atoms: Atoms,
    *,
    delta: float = 1e-4,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    n_checks: int | None = 48,
    seed: int = 0,
) -> None:
    """Assert that the forces are minus the gradient of the energy, by central differences.

    Each checked component is ``F_ac = -(E(R + delta e_ac) - E(R - delta e_ac)) / (2 delta)``
    and must match the model's force within ``atol + rtol * |F_fd|``. The truncation
    error of the difference is ``delta^2 / 6 * d^3E/dR^3``; with the default step it is
    far below the tolerance for smooth potentials.

    Parameters
    ----------
    model
        An AtomisticModel (evaluated by :class:`ml4ms.simulate.Calculator`) or any ASE
        calculator.
    atoms
        The structure; it is not modified (a copy is displaced, without constraints).
    delta
        Displacement, Å.
    atol, rtol
        Absolute (eV/Å) and relative tolerance on each component.
    n_checks
        At most this many (atom, component) pairs are checked, chosen at random
        (seeded) when the structure has more; None checks all ``3 N``. Each check costs
        two energy evaluations.
    seed
        Seed of the choice of components.

    Raises
    ------
    AssertionError
        Naming the worst atom and component, the model and finite-difference values,
        the error and the tolerance.
    """
    n_components = 3 * len(atoms)
    if n_components == 0:
        return
    rng = np.random.default_rng(seed)
    if n_checks is None or n_checks >= n_components:
        flat = np.arange(n_components)
    else:
        flat = np.sort(rng.choice(n_components, size=n_checks, replace=False))

    with _calculator_for(model) as calc:
        work = _working_copy(atoms, calc)
        forces = np.array(work.get_forces(), dtype=np.float64)
        p0 = work.get_positions()
        numerical = np.empty(len(flat))
        for k, index in enumerate(flat):
            a, c = divmod(int(index), 3)
            energy = []
            for sign in (+1.0, -1.0):
                p = p0.copy()
                p[a, c] += sign * delta
                work.set_positions(p, apply_constraint=False)
                energy.append(work.get_potential_energy())
            numerical[k] = -(energy[0] - energy[1]) / (2.0 * delta)
    analytic = forces.reshape(-1)[flat]

    failure = _first_failure(analytic, numerical, atol=atol, rtol=rtol)
    if failure is not None:
        n_bad, (k,), error, tolerance = failure
        a, c = divmod(int(flat[k]), 3)
        raise AssertionError(
            f"forces do not match the central finite difference of the energy (delta={delta:g} Å) "
            f"on {n_bad} of {len(flat)} checked components; worst: atom {a} ({_symbol(atoms, a)}), "
            f"component {_XYZ[c]}: model {analytic[k]:.8g} eV/Å, finite difference "
            f"{numerical[k]:.8g} eV/Å, |error| {error:.3g} > tolerance {tolerance:.3g} "
            f"(atol={atol:g} + rtol={rtol:g} * |F_fd|)"
        )


# ---------------------------------------------------------------------------- stress
def _strain(index: int, amount: float) -> np.ndarray:
    """Symmetric strain for Voigt component ``index``; shear components carry half on each side."""
    a, b = _VOIGT_PAIRS[index]
    eps = np.zeros((3, 3))
    if a == b:
        eps[a, a] = amount
    else:
        eps[a, b] = eps[b, a] = 0.5 * amount  # engineering shear strain gamma = 2 eps_ab = amount
    return eps


def numerical_strain_derivative(
    fn: Callable[[Atoms], float], atoms: Atoms, *, delta: float = 1e-6
) -> np.ndarray:
    """Central differences of a scalar ``fn(atoms)`` with respect to a homogeneous strain.

    Element ``(a, b)`` is ``d fn / d eps_ab`` at ``eps = 0``, with cell and positions both
    deformed by ``(1 + eps)`` (row vectors times the deformation, as ASE's stress does)
    and ``eps`` a full, not symmetrised, 3x3 strain. The oracle for the strain
    derivatives of descriptors and of anything else built on cell and positions.

    Parameters
    ----------
    fn
        Scalar function of a structure, e.g. ``lambda a: float(d.create(a).ravel() @ w)``.
    atoms
        The structure (not modified).
    delta
        Strain step (dimensionless).

    Returns
    -------
    ndarray of shape (3, 3)
    """
    derivative = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1.0, -1.0):
                deformation = np.eye(3)
                deformation[a, b] += sign * delta
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell.array @ deformation, scale_atoms=False)
                deformed.positions = atoms.positions @ deformation
                values.append(float(fn(deformed)))
            derivative[a, b] = (values[0] - values[1]) / (2.0 * delta)
    return derivative


def assert_stress_matches_finite_difference(
    model: ModelLike,
    atoms: Atoms,
    *,
    delta: float = 1e-5,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> None:
    """Assert that the stress is ``(1/V) dE/d(eps)`` by central differences of the strain.

    For each Voigt component the cell and the positions are deformed by ``1 + eps``
    with ``eps`` the symmetric strain of that component (``eps_aa = ±delta``, or
    ``eps_ab = eps_ba = ±delta/2`` for shear), exactly as ASE's
    ``calculate_numerical_stress`` does, and ``sigma = (E+ - E-) / (2 delta V)`` is
    compared with the model's stress (ASE sign: positive = tensile).

    Parameters
    ----------
    model
        An AtomisticModel or any ASE calculator.
    atoms
        A structure with three lattice vectors (a cell of non-zero volume).
    delta
        Strain step (dimensionless).
    atol, rtol
        Absolute (eV/Å³) and relative tolerance on each Voigt component.

    Raises
    ------
    ValueError
        The cell does not have three lattice vectors.
    AssertionError
        Naming the worst Voigt component, model and finite-difference values, the
        error and the tolerance.
    """
    if atoms.cell.rank < 3:
        raise ValueError("the stress needs a cell with three lattice vectors")
    with _calculator_for(model) as calc:
        work = _working_copy(atoms, calc)
        stress = np.asarray(work.get_stress(voigt=True), dtype=np.float64)
        cell0, p0 = work.cell.array.copy(), work.get_positions()
        volume = abs(np.linalg.det(cell0))
        numerical = np.empty(6)
        for k in range(6):
            energy = []
            for sign in (+1.0, -1.0):
                deformation = np.eye(3) + _strain(k, sign * delta)
                work.set_cell(cell0 @ deformation, scale_atoms=False)
                work.set_positions(p0 @ deformation, apply_constraint=False)
                energy.append(work.get_potential_energy())
            numerical[k] = (energy[0] - energy[1]) / (2.0 * delta * volume)

    failure = _first_failure(stress, numerical, atol=atol, rtol=rtol)
    if failure is not None:
        n_bad, (k,), error, tolerance = failure
        raise AssertionError(
            f"stress does not match (1/V) dE/d(strain) by central differences (delta={delta:g}) "
            f"on {n_bad} of 6 Voigt components; worst: {_VOIGT[k]}: model {stress[k]:.8g} eV/Å³, "
            f"finite difference {numerical[k]:.8g} eV/Å³, |error| {error:.3g} > tolerance "
            f"{tolerance:.3g} (atol={atol:g} + rtol={rtol:g} * |sigma_fd|)"
        )


# ---------------------------------------------------------------------------- symmetry
@dataclass
class _Operation:
    """A symmetry operation applied to a structure.

    ``order[k]`` is the original index of new atom ``k``; ``rotation`` acts on column
    vectors (new positions are ``positions @ rotation.T``).
    """

    name: str
    atoms: Atoms
    order: np.ndarray
    rotation: np.ndarray


def _operations(
    atoms: Atoms,
    rng: np.random.Generator,
    *,
    rotation: bool,
    translation: bool,
    permutation: bool,
    periodic_image: bool,
) -> list[_Operation]:
    """The requested operations that apply to ``atoms`` (skipping e.g. images without pbc)."""
    n = len(atoms)
    identity = np.arange(n)
    operations = []
    if rotation:
        R = random_rotation(rng)
        rotated = atoms.copy()
        rotated.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
        rotated.positions = atoms.positions @ R.T
        operations.append(_Operation("a random rotation", rotated, identity, R))
    if translation:
        shift = rng.uniform(-5.0, 5.0, 3)
        moved = atoms.copy()
        moved.positions = atoms.positions + shift
        name = f"a translation by {np.array2string(shift, precision=3)} Å"
        if atoms.pbc.any():
            moved.wrap()
            name += " (then wrapped into the cell)"
        operations.append(_Operation(name, moved, identity, np.eye(3)))
    if permutation and n >= 2:
        order = rng.permutation(n)
        if np.array_equal(order, identity):
            order = np.roll(identity, 1)
        operations.append(_Operation("a permutation of the atoms", atoms[order], order, np.eye(3)))
    if periodic_image and atoms.pbc.any() and n >= 1:
        images = rng.integers(-2, 3, size=(n, 3))
        images[:, ~atoms.pbc] = 0
        images[0, int(np.flatnonzero(atoms.pbc)[0])] = 1  # at least one atom really moves
        shifted = atoms.copy()
        shifted.positions = atoms.positions + images @ atoms.cell.array
        operations.append(
            _Operation(
                "shifting atoms by lattice vectors (periodic images)", shifted, identity, np.eye(3)
            )
        )
    return operations


def assert_invariant(
    fn: Callable[[Atoms], Any],
    atoms: Atoms,
    *,
    rotation: bool = True,
    translation: bool = True,
    permutation: bool = True,
    periodic_image: bool = True,
    per_atom: bool = False,
    atol: float = 1e-8,
    rtol: float = 1e-8,
    seed: int = 0,
) -> None:
    """Assert that ``fn(atoms)`` does not change under the symmetries of physics.

    Parameters
    ----------
    fn
        A function of a structure returning an array: an energy, per-structure
        features, or (with ``per_atom=True``) one row per atom.
    atoms
        The structure; ``fn`` is called on transformed copies.
    rotation
        Rotate positions and cell by a random proper rotation.
    translation
        Translate by a random vector (then wrap the atoms into the cell along periodic
        directions).
    permutation
        Permute the atoms at random (skipped for a single atom).
    periodic_image
        Move atoms by random integer lattice vectors along periodic directions
        (skipped without pbc).
    per_atom
        ``fn`` returns one row per atom: under a permutation its rows are expected to
        be permuted with the atoms.
    atol, rtol
        Tolerance on each entry, in the units of ``fn``.
    seed
        Seed of the random operations.

    Raises
    ------
    AssertionError
        Naming the operation, the worst entry (atom for per-atom outputs), both values
        and the tolerance.
    """
    reference = np.asarray(fn(atoms.copy()), dtype=np.float64)
    rng = np.random.default_rng(seed)
    for operation in _operations(
        atoms,
        rng,
        rotation=rotation,
        translation=translation,
        permutation=permutation,
        periodic_image=periodic_image,
    ):
        expected = reference[operation.order] if per_atom else reference
        _assert_same(
            np.asarray(fn(operation.atoms), dtype=np.float64),
            expected,
            what="the output of fn is not invariant",
            operation=operation,
            per_atom=per_atom,
            atoms=operation.atoms,
            atol=atol,
            rtol=rtol,
            seed=seed,
        )


def _assert_same(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    what: str,
    operation: _Operation,
    per_atom: bool,
    atoms: Atoms,
    atol: float,
    rtol: float,
    seed: int,
    unit: str = "",
    components: Sequence[str] | None = None,
) -> None:
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what} under {operation.name}: the shape changed from {expected.shape} "
            f"to {actual.shape}"
        )
    failure = _first_failure(actual, expected, atol=atol, rtol=rtol)
    if failure is None:
        return
    n_bad, index, error, tolerance = failure
    if per_atom and index:
        where = f"atom {index[0]} ({_symbol(atoms, index[0])})"
        if len(index) > 1:
            where += f", component {components[index[1]] if components else index[1]}"
    elif index:
        where = f"entry {index if len(index) > 1 else index[0]}"
        if components is not None and len(index) == 2:
            where = f"component {components[index[0]]}{components[index[1]]}"
    else:
        where = "the value"
    raise AssertionError(
        f"{what} under {operation.name} (seed {seed}): "
        f"{n_bad} of {expected.size} entries differ; worst: {where}: "
        f"got {actual[index]:.10g}{unit}, expected "
        f"{expected[index]:.10g}{unit}, |difference| {error:.3g} > tolerance {tolerance:.3g} "
        f"(atol={atol:g}, rtol={rtol:g})"
    )


def assert_model_invariant(
    model: ModelLike,
    atoms: Atoms,
    *,
    atol: float = 1e-8,
    rtol: float = 1e-8,
    seed: int = 0,
) -> None:
    """Assert that energy is invariant, forces equivariant and stress rotates as ``R sigma R^T``.

    Under a random rotation ``R``, a translation, a permutation of the atoms and
    (periodic systems) shifts of atoms by lattice vectors: the energy is unchanged,
    forces rotate with the structure (``F -> F R^T`` for row vectors) and are permuted
    with the atoms, and the stress (3-D cells only) becomes ``R sigma R^T``.

    Parameters
    ----------
    model
        An AtomisticModel or any ASE calculator.
    atoms
        The structure.
    atol, rtol
        Tolerances on energy (eV), force (eV/Å) and stress (eV/Å³) entries.
    seed
        Seed of the random operations.

    Raises
    ------
    AssertionError
        Naming the quantity, the operation and the worst entry.
    """
    with _calculator_for(model) as calc:
        with_stress = _has_stress(calc, atoms)

        def evaluate(structure: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
            work = _working_copy(structure, calc)
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces(), dtype=np.float64)
            stress = (
                np.array(work.get_stress(voigt=False), dtype=np.float64) if with_stress else None
            )
            return energy, forces, stress

        energy0, forces0, stress0 = evaluate(atoms)
        rng = np.random.default_rng(seed)
        for op in _operations(
            atoms, rng, rotation=True, translation=True, permutation=True, periodic_image=True
        ):
            energy, forces, stress = evaluate(op.atoms)
            common = dict(operation=op, atoms=op.atoms, atol=atol, rtol=rtol, seed=seed)
            _assert_same(
                np.asarray(energy),
                np.asarray(energy0),
                what="the energy is not invariant",
                per_atom=False,
                unit=" eV",
                **common,
            )
            _assert_same(
                forces,
                forces0[op.order] @ op.rotation.T,
                what="the forces do not rotate and permute with the atoms",
                per_atom=True,
                unit=" eV/Å",
                components=_XYZ,
                **common,
            )
            if with_stress:
                R = op.rotation
                _assert_same(
                    stress,
                    R @ stress0 @ R.T,
                    what="the stress does not transform as R sigma R^T",
                    per_atom=False,
                    unit=" eV/Å³",
                    components=_XYZ,
                    **common,
                )


# ---------------------------------------------------------------------------- batches
def _require_model(model: Any, check: str) -> AtomisticModel:
    if not isinstance(model, AtomisticModel):
        raise TypeError(f"{check} needs an ml4ms AtomisticModel, got {type(model).__name__}")
    return model


def assert_batch_equals_singles(
    model: AtomisticModel,
    images: Sequence[Atoms],
    *,
    atol: float = 1e-8,
    rtol: float = 1e-8,
) -> None:
    """Assert that one batched forward pass gives what each structure gives alone.

    The batch is ``AtomicGraph.from_atoms(images)``; energies (eV), per-atom energies
    (eV), forces (eV/Å) and -- when every image has a 3-D cell -- stresses (eV/Å³) are
    compared with those of ``AtomicGraph.from_atoms(image)`` for each image.

    Parameters
    ----------
    model
        An AtomisticModel.
    images
        The structures (mixing sizes, elements and boundary conditions is the point).
    atol, rtol
        Tolerance on each entry.

    Raises
    ------
    AssertionError
        Naming the structure, the quantity and the worst atom or component.
    """
    model = _require_model(model, "assert_batch_equals_singles")
    images = list(images)
    with_stress = bool(images) and all(a.cell.rank == 3 for a in images)
    batch = _forward(model, images, compute_stress=with_stress)
    start = 0
    for k, atoms in enumerate(images):
        alone = _forward(model, [atoms], compute_stress=with_stress)
        stop = start + len(atoms)
        pairs = [
            ("energy", batch["energy"][k], alone["energy"][0], "eV"),
            ("per-atom energies", batch["energies"][start:stop], alone["energies"], "eV"),
            ("forces", batch["forces"][start:stop], alone["forces"], "eV/Å"),
        ]
        if with_stress:
            pairs.append(("stress", batch["stress"][k], alone["stress"][0], "eV/Å³"))
        for name, in_batch, single, unit in pairs:
            failure = _first_failure(in_batch, single, atol=atol, rtol=rtol)
            if failure is None:
                continue
            n_bad, index, error, tolerance = failure
            if name in ("forces", "per-atom energies"):
                where = f" at atom {index[0]} ({_symbol(atoms, index[0])})"
                where += f", component {_XYZ[index[1]]}" if len(index) > 1 else ""
            elif name == "stress":
                where = f" at component {_XYZ[index[0]]}{_XYZ[index[1]]}"
            else:
                where = ""
            raise AssertionError(
                f"structure {k} ({atoms.get_chemical_formula()}): {name} in a batch of "
                f"{len(images)} structures != {name} of the structure evaluated alone{where}: "
                f"batch {np.asarray(in_batch)[index]:.10g} {unit}, alone "
                f"{np.asarray(single)[index]:.10g} {unit}, |difference| {error:.3g} > tolerance "
                f"{tolerance:.3g} ({n_bad} of {np.size(single)} entries differ)"
            )
        start = stop


def assert_no_cross_structure_gradient(model: AtomisticModel, images: Sequence[Atoms]) -> None:
    """Assert that no structure's energy depends on another structure of the batch.

    In one batched forward pass, the gradient of structure ``k``'s energy with respect
    to the positions of every atom of the other structures, and to their cells, must
    be exactly zero (not merely small: any coupling is a bug).

    Parameters
    ----------
    model
        An AtomisticModel.
    images
        At least two structures.

    Raises
    ------
    AssertionError
        Naming the structure whose energy leaks and the atom (or cell) it depends on.
    """
    model = _require_model(model, "assert_no_cross_structure_gradient")
    images = list(images)
    if len(images) < 2:
        raise ValueError("the cross-structure gradient needs at least two structures")
    reference = model.reference_energies
    graph = AtomicGraph.from_atoms(
        images, model.cutoff, dtype=reference.dtype, device=reference.device, labels=False
    )
    positions = graph.positions.detach().requires_grad_(True)
    cell = graph.cell.detach().requires_grad_(True)
    with eval_mode(model):
        energy = model(
            graph.replace(positions=positions, cell=cell),
            compute_forces=False,
            compute_stress=False,
            create_graph=False,
        )["energy"]
    batch = graph.batch.cpu().numpy()
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in images])])
    for k in range(len(images)):
        if not energy.requires_grad:
            break  # the energy depends on no positions at all
        grad_positions, grad_cell = torch.autograd.grad(
            energy[k], (positions, cell), retain_graph=True, allow_unused=True
        )
        if grad_positions is not None:
            g = grad_positions.detach().cpu().numpy()
            leaking = np.flatnonzero((batch != k) & np.any(g != 0, axis=1))
            if len(leaking):
                atom = int(leaking[np.argmax(np.abs(g[leaking]).max(axis=1))])
                other = int(batch[atom])
                raise AssertionError(
                    f"the energy of structure {k} depends on the positions of "
                    f"{len(leaking)} atoms of other structures in the batch; largest: atom "
                    f"{atom - offsets[other]} of structure {other} "
                    f"({_symbol(images[other], atom - offsets[other])}), "
                    f"|dE_{k}/dR| = {np.abs(g[atom]).max():.3g} eV/Å (must be exactly 0)"
                )
        if grad_cell is not None:
            g = grad_cell.detach().cpu().numpy()
            for other in range(len(images)):
                if other != k and np.any(g[other] != 0):
                    raise AssertionError(
                        f"the energy of structure {k} depends on the cell of structure {other} "
                        f"in the batch: |dE_{k}/d cell| = {np.abs(g[other]).max():.3g} eV/Å "
                        f"(must be exactly 0)"
                    )


# ---------------------------------------------------------------------------- cutoff
def _probe_geometry(
    kind: str, element: int, bond_length: float
) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """The fixed part of a probe, the atom the probe approaches, the direction it leaves along."""
    if kind == "dimer":
        base = Atoms(numbers=[element], positions=[[0.0, 0.0, 0.0]])
        direction = np.array([1.0, 2.0, 3.0])
        return base, base.positions[0], direction / np.linalg.norm(direction)
    if kind == "cluster":
        # Equilateral triangle; the probe leaves atom 0 away from the centroid (tilted out
        # of plane), so atom 0 is always its nearest neighbour and crosses the cutoff first.
        radius = bond_length / math.sqrt(3.0)
        angles = np.array([0.0, 2.0 * math.pi / 3.0, 4.0 * math.pi / 3.0])
        positions = radius * np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)
        base = Atoms(numbers=[element] * 3, positions=positions)
        direction = np.array([1.0, 0.0, 0.4])
        return base, positions[0], direction / np.linalg.norm(direction)
    raise ValueError(f"unknown probe {kind!r}; use 'dimer' or 'cluster'")


def _jumps(changes: np.ndarray, *, factor: float, atol: float) -> np.ndarray:
    """Indices of changes above ``factor`` times the larger neighbouring change plus ``atol``."""
    neighbours = np.zeros_like(changes)
    neighbours[1:] = changes[:-1]
    neighbours[:-1] = np.maximum(neighbours[:-1], changes[1:])
    return np.flatnonzero(changes > factor * neighbours + atol)


def assert_smooth_at_cutoff(
    model: ModelLike,
    *,
    element: str | int,
    cutoff: float | None = None,
    width: float | None = None,
    n_points: int = 200,
    probes: Sequence[str] = ("dimer", "cluster"),
    bond_length: float | None = None,
    forces: bool = True,
    atol: float = 1e-8,
    jump_factor: float = 4.0,
) -> None:
    """Assert that energy and forces go continuously to their separated values at the cutoff.

    An atom is pulled away from a partner through the cutoff distance ``r_c``: from a
    single atom (``"dimer"``) and from the nearest atom of an equilateral triangle
    (``"cluster"``, which also exercises many-body terms switching on). The distance
    ``r`` to that partner takes ``n_points`` equally spaced values in
    ``[r_c - width, r_c + width]``, placed so that ``r_c`` lies midway between two
    samples (``r_c ± step/2``). Checked:

    * beyond the cutoff, the energy equals that of the separated parts (the fixed part
      plus an isolated atom) and the forces equal theirs, within ``atol``;
    * no jump: between consecutive samples the energy (and, with ``forces=True``, every
      force component) changes by at most ``jump_factor`` times the larger change
      between the neighbouring samples, plus ``atol``. For a continuous function all
      these changes shrink in proportion to the step; a discontinuity keeps its size.

    Parameters
    ----------
    model
        An AtomisticModel, or an ASE calculator (then ``cutoff`` is required).
    element
        Chemical symbol or atomic number of all atoms.
    cutoff
        The cutoff to probe, Å; default ``model.cutoff``.
    width
        Half-width of the scanned range, Å; default ``0.1 * cutoff``.
    n_points
        Number of distances sampled (rounded up to an even number).
    probes
        Which probes to pull: ``"dimer"``, ``"cluster"`` or both.
    bond_length
        Side of the triangle of the cluster probe, Å; default ``0.4 * cutoff``.
    forces
        Also require continuous forces. Potentials that only shift the energy to zero at
        the cutoff (ASE's ``LennardJones(smooth=False)``) have continuous energy but
        forces that jump there.
    atol
        Absolute tolerance, eV and eV/Å.
    jump_factor
        How much larger than its neighbours a change may be before it counts as a jump.

    Raises
    ------
    AssertionError
        Naming the probe, the distances between which the energy or force jumps, the
        size of the jump and the bound.
    ValueError
        Fewer than 6 points, or an unknown probe.
    """
    if cutoff is None:
        cutoff = _require_model(model, "assert_smooth_at_cutoff without cutoff=").cutoff
    z = atomic_numbers[element] if isinstance(element, str) else int(element)
    symbol = chemical_symbols[z]
    width = 0.1 * cutoff if width is None else float(width)
    bond_length = 0.4 * cutoff if bond_length is None else float(bond_length)
    if n_points < 6:
        raise ValueError(f"n_points must be at least 6, got {n_points}")
    half = (n_points + 1) // 2
    step = width / half
    distances = cutoff + (np.arange(-half, half) + 0.5) * step

    for kind in probes:
        base, anchor, direction = _probe_geometry(kind, z, bond_length)
        lone = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        scans = []
        for r in distances:
            structure = base.copy()
            structure += Atoms(numbers=[z], positions=[anchor + r * direction])
            scans.append(structure)
        energy, force_list = _energies_and_forces(model, [base, lone, *scans])
        separated_energy = energy[0] + energy[1]
        separated_forces = np.concatenate([force_list[0], force_list[1]])
        energy, force = energy[2:], np.stack(force_list[2:])
        label = f"{kind} probe of {symbol} (cutoff {cutoff:g} Å)"

        beyond = distances > cutoff
        energy_error = np.abs(energy[beyond] - separated_energy)
        if not np.all(energy_error <= atol):
            k = int(np.argmax(np.nan_to_num(energy_error, nan=np.inf)))
            raise AssertionError(
                f"{label}: beyond the cutoff, at r = {distances[beyond][k]:.6g} Å, the energy "
                f"{energy[beyond][k]:.10g} eV differs from that of the separated parts "
                f"{separated_energy:.10g} eV by {energy_error[k]:.3g} eV > atol {atol:g}"
            )
        force_error = np.abs(force[beyond] - separated_forces).max(axis=(1, 2))
        if not np.all(force_error <= atol):
            k = int(np.argmax(np.nan_to_num(force_error, nan=np.inf)))
            raise AssertionError(
                f"{label}: beyond the cutoff, at r = {distances[beyond][k]:.6g} Å, the forces "
                f"differ from those of the separated parts by up to {force_error[k]:.3g} eV/Å "
                f"> atol {atol:g}"
            )

        checks = [("energy", np.abs(np.diff(energy)), "eV")]
        if forces:
            checks.append(("force", np.abs(np.diff(force, axis=0)).max(axis=(1, 2)), "eV/Å"))
        for name, changes, unit in checks:
            jumps = _jumps(np.nan_to_num(changes, nan=np.inf), factor=jump_factor, atol=atol)
            if len(jumps):
                k = int(jumps[np.argmax(changes[jumps])])
                neighbours = [changes[i] for i in (k - 1, k + 1) if 0 <= i < len(changes)]
                raise AssertionError(
                    f"{label}: the {name} jumps by {changes[k]:.3g} {unit} between r = "
                    f"{distances[k]:.6g} and {distances[k + 1]:.6g} Å (step {step:.3g} Å), more "
                    f"than {jump_factor:g} x the neighbouring changes "
                    f"({max(neighbours):.3g} {unit})"
                    f" + atol {atol:g}: it is discontinuous there"
                )


# ---------------------------------------------------------------------------- E0
def assert_isolated_atom_energy(
    model: ModelLike,
    element: str | int,
    expected: float | None = None,
    *,
    atol: float = 1e-8,
) -> None:
    """Assert that a single atom in vacuum has the reference energy E0 and no force.

    Parameters
    ----------
    model
        An AtomisticModel or an ASE calculator.
    element
        Chemical symbol or atomic number.
    expected
        The expected energy, eV; default the model's reference energy E0 of ``element``
        (required for an ASE calculator). A network built with
        ``anchor_isolated_atom=False`` does not promise E0 for a lone atom: without
        ``expected`` only its force (zero) and a finite energy are checked.
    atol
        Absolute tolerance, eV (and eV/Å on the force).

    Raises
    ------
    AssertionError
        Giving the energy found, the one expected and the tolerance.
    """
    z = atomic_numbers[element] if isinstance(element, str) else int(element)
    if expected is None:
        model_ = _require_model(model, "assert_isolated_atom_energy without expected=")
        if getattr(model_, "anchor_isolated_atom", True):
            expected = float(model_.reference_energies[z])
    atom = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]], pbc=False)
    with _calculator_for(model) as calc:
        work = _working_copy(atom, calc)
        energy = float(work.get_potential_energy())
        force = np.array(work.get_forces())
    if not np.isfinite(energy):
        raise AssertionError(f"an isolated {chemical_symbols[z]} atom has energy {energy}")
    if expected is not None and not abs(energy - expected) <= atol:
        raise AssertionError(
            f"an isolated {chemical_symbols[z]} atom has energy {energy:.10g} eV, expected "
            f"{expected:.10g} eV (its reference energy E0): |difference| "
            f"{abs(energy - expected):.3g} > atol {atol:g}"
        )
    if not np.all(np.abs(force) <= atol):
        raise AssertionError(
            f"an isolated {chemical_symbols[z]} atom feels a force {force[0]} eV/Å; expected 0"
        )


# ---------------------------------------------------------------------------- mutation
def _differences(before: Any, after: Any, path: str) -> list[str]:
    """Human-readable differences between two nested values (dicts, sequences, arrays)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in before:
            if key not in after:
                out.append(f"{path}[{key!r}] was removed")
            else:
                out.extend(_differences(before[key], after[key], f"{path}[{key!r}]"))
        out.extend(f"{path}[{key!r}] was added" for key in after if key not in before)
        return out
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        a, b = np.asarray(before), np.asarray(after)
        if a.shape != b.shape:
            return [f"{path} changed shape from {a.shape} to {b.shape}"]
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            same = np.array_equal(a, b, equal_nan=True)
        else:
            same = np.array_equal(a, b)
        if same:
            return []
        if a.dtype.kind in "fciub" and b.dtype.kind in "fciub" and a.ndim:
            diff = np.abs(a.astype(float) - b.astype(float))
            changed = np.argwhere(~(diff == 0))
            first = tuple(int(i) for i in changed[0]) if len(changed) else ()
            return [
                f"{path} changed at {len(changed)} entries (max |change| {diff.max():.3g}), "
                f"first at index {first[0] if len(first) == 1 else first}: "
                f"{a[first]} -> {b[first]}"
            ]
        return [f"{path} changed: {a!r} -> {b!r}"]
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
        if len(before) != len(after) or type(before) is not type(after):
            return [f"{path} changed: {before!r} -> {after!r}"]
        out = []
        for k, (x, y) in enumerate(zip(before, after, strict=True)):
            out.extend(_differences(x, y, f"{path}[{k}]"))
        return out
    try:
        same = bool(before == after)
    except Exception:  # objects without a usable == : compare their representations
        same = repr(before) == repr(after)
    if not same and isinstance(before, float) and isinstance(after, float):
        same = math.isnan(before) and math.isnan(after)
    return [] if same else [f"{path} changed: {before!r} -> {after!r}"]


def _snapshot(atoms: Atoms) -> dict[str, Any]:
    return {
        "positions": atoms.positions.copy(),
        "numbers": atoms.numbers.copy(),
        "cell": atoms.cell.array.copy(),
        "pbc": atoms.pbc.copy(),
        "info": copy.deepcopy(atoms.info),
        # positions and numbers live in arrays too; they are compared above, by name
        "arrays": {
            key: value.copy()
            for key, value in atoms.arrays.items()
            if key not in ("positions", "numbers")
        },
        "constraints": [c.todict() for c in atoms.constraints],
    }


def assert_no_input_mutation(fn: Callable[[Atoms], Any], atoms: Atoms) -> Any:
    """Assert that ``fn(atoms)`` leaves ``atoms`` exactly as it was.

    Positions, atomic numbers, cell, pbc, ``info`` and ``arrays`` (deep-compared:
    nested dicts and arrays, added or removed keys) and constraints are compared with
    a copy taken before the call.

    Parameters
    ----------
    fn
        The function under test: a calculator call, a descriptor, ``predict``... It is
        called on ``atoms`` itself.
    atoms
        The input structure.

    Returns
    -------
    Any
        What ``fn`` returned.

    Raises
    ------
    AssertionError
        Listing what changed (field, first changed entry, old and new value).
    """
    before = _snapshot(atoms)
    result = fn(atoms)
    changes = _differences(before, _snapshot(atoms), "atoms")
    if changes:
        shown = "; ".join(changes[:5]) + ("; ..." if len(changes) > 5 else "")
        raise AssertionError(f"fn modified its input: {shown}")
    return result


# ---------------------------------------------------------------------------- all of them
CHECKS = (
    "forces",
    "stress",
    "invariance",
    "input_mutation",
    "batch",
    "cross_gradient",
    "isolated_atom",
    "smooth_at_cutoff",
    "smooth_forces",
)
"""Names of the checks :func:`run_model_checks` runs, for its ``skip`` argument."""


def run_model_checks(
    model: ModelLike,
    images: Sequence[Atoms],
    *,
    skip: Collection[str] = (),
    n_checks: int = 24,
    seed: int = 0,
) -> list[str]:
    """Run every conformance check that applies to ``model`` on ``images``.

    Per image: finite-difference forces (``"forces"``), finite-difference stress for
    3-D cells when the calculator declares a stress (``"stress"``), invariance of energy
    and equivariance of forces and stress (``"invariance"``) and that a calculator call
    leaves the input alone (``"input_mutation"``). For an AtomisticModel, also: batch equals singles
    (``"batch"``), zero cross-structure gradient (``"cross_gradient"``, two or more
    images), a lone atom of every element present (``"isolated_atom"``: no force, energy E0
    where the model promises it)
    and continuity at the cutoff for every element present (``"smooth_at_cutoff"``;
    skipping ``"smooth_forces"`` keeps the energy check and drops the force check).

    Parameters
    ----------
    model
        An AtomisticModel or an ASE calculator.
    images
        Structures to check on; small ones keep it fast.
    skip
        Names from :data:`CHECKS` not to run.
    n_checks
        Force components checked by finite differences per image.
    seed
        Seed of all random choices.

    Returns
    -------
    list of str
        The names of the checks run (each once, in order).

    Raises
    ------
    AssertionError
        From the first check that fails.
    ValueError
        A name in ``skip`` that is not a check.
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    images = list(images)
    ran: list[str] = []

    def run(name: str, check: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if name in skip:
            return
        check(*args, **kwargs)
        if name not in ran:
            ran.append(name)

    with _calculator_for(model) as calc:
        for atoms in images:
            run(
                "forces",
                assert_forces_match_finite_difference,
                calc,
                atoms,
                n_checks=n_checks,
                seed=seed,
            )
            if _has_stress(calc, atoms):
                run("stress", assert_stress_matches_finite_difference, calc, atoms)
            run("invariance", assert_model_invariant, calc, atoms, atol=1e-7, rtol=1e-7, seed=seed)
            run("input_mutation", assert_no_input_mutation, calc.get_potential_energy, atoms)
    if isinstance(model, AtomisticModel):
        run("batch", assert_batch_equals_singles, model, images)
        if len(images) >= 2:
            run("cross_gradient", assert_no_cross_structure_gradient, model, images)
        for z in sorted({int(z) for atoms in images for z in atoms.numbers}):
            run("isolated_atom", assert_isolated_atom_energy, model, z)
            run(
                "smooth_at_cutoff",
                assert_smooth_at_cutoff,
                model,
                element=z,
                forces="smooth_forces" not in skip,
            )
        if "smooth_at_cutoff" in ran and "smooth_forces" not in skip:
            ran.append("smooth_forces")
    return ran
