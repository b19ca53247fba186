"""Simulators for ABC examples: Morse parameters of an fcc metal, and a conjugate toy problem.

:class:`MorseFCC` maps Morse parameters ``{"D": eV, "a": 1/Å, "r0": Å}`` -- ASE's
:class:`~ase.calculators.morse.MorsePotential` with ``epsilon = D``, ``rho0 = a r0`` and its
smooth cutoff between ``rcut1 r0`` and ``rcut2 r0`` -- to summary statistics of the fcc
crystal:

``lattice_constant`` (Å)
    minimum of the energy per atom over the lattice constant;
``cohesive_energy`` (eV/atom)
    energy of the free atoms (zero for Morse pairs) minus that of the crystal;
``bulk_modulus`` (GPa)
    ``V d²E/dV²`` from a five-point polynomial fit of E(V) within ±2 % of ``V0``;
``rdf_peak``, ``rdf_width`` (Å)
    mean and standard deviation of the first-neighbour distances of a thermalised
    supercell: every atom displaced by Gaussian noise of variance ``kT / k_E`` per
    component, with ``k_E`` the Einstein force constant of the potential (the curvature of
    the energy as one atom moves while the others stay) -- the classical Einstein crystal
    at ``temperature``. This statistic is random (drawn with the simulator's ``rng``) and
    measures the stiffness of the bonds.

A Gaussian ``noise`` (absolute standard deviations) may be added to each statistic, the
error model of the observations. :func:`emt_observed` measures the same statistics with
ASE's EMT by the same protocol, an independent reference whose Morse fit is not exact.

Lattice sums run over the neighbour shells of the fcc lattice, found once by ASE's
neighbour list, so one simulation takes about a millisecond; ``tests/bayes`` checks
energies and force constants against ASE's ``MorsePotential`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase.build import bulk
from ase.calculators.morse import fcut
from ase.units import GPa, kB

from ..errors import ConfigError

#: Summary statistics :class:`MorseFCC` and :func:`emt_observed` compute, with their units.
STATISTICS = {"lattice_constant": "Å", "cohesive_energy": "eV/atom", "bulk_modulus": "GPa",
              "rdf_peak": "Å", "rdf_width": "Å"}
#: Default observation errors (absolute standard deviations) of the deterministic statistics.
DEFAULT_NOISE = {"lattice_constant": 0.01, "cohesive_energy": 0.05, "bulk_modulus": 5.0}

_SHELL_RADIUS = 3.4  # lattice constants: covers rcut2 * r0 for nearest-neighbour distances >= 0.6 r0


def _check_statistics(statistics: Sequence[str]) -> tuple[str, ...]:
    statistics = tuple(statistics)
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown or not statistics:
        raise ConfigError(f"statistics must be a non-empty list of {', '.join(STATISTICS)}; got {list(statistics)}")
    return statistics


def _fcc_shells(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (in lattice constants) and multiplicities of fcc neighbour shells up to ``radius``."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", bulk("Cu", "fcc", a=1.0), radius)
    distances, counts = np.unique(np.round(d, 10), return_counts=True)
    return distances, counts.astype(float)


def _supercell(n: int) -> tuple[np.ndarray, int]:
    """Reduced positions (lattice constant 1) of an n x n x n conventional fcc supercell."""
    return bulk("Cu", "fcc", a=1.0, cubic=True).repeat(n).get_positions(), n


def _equilibrium(energy, lo: float, hi: float, what: str) -> tuple[float, float, float]:
    """Lattice constant (Å), energy per atom (eV) and bulk modulus (GPa) of ``energy(a) -> E/atom``.

    A coarse grid on ``[lo, hi]`` brackets the minimum, a bounded Brent search refines
    it, and a cubic fit of E(V) to five volumes within ±2 % gives the curvature.
    """
    from scipy.optimize import minimize_scalar

    grid = np.linspace(lo, hi, 61)
    e = energy(grid)
    k = int(np.argmin(e))
    if k == 0 or k == len(grid) - 1 or not np.isfinite(e[k]):
        raise ValueError(f"{what}: no fcc energy minimum between lattice constants {lo:.3f} and {hi:.3f} Å")
    fit = minimize_scalar(lambda x: float(energy(np.array([x]))[0]), bounds=(grid[k - 1], grid[k + 1]),
                          method="bounded", options={"xatol": 1e-7})
    a0 = float(fit.x)
    v0 = a0**3 / 4.0
    volumes = v0 * (1.0 + 0.01 * np.arange(-2, 3))
    poly = np.polyfit(volumes - v0, energy((4.0 * volumes) ** (1.0 / 3.0)), 3)
    bulk_modulus = v0 * 2.0 * poly[1] / GPa
    return a0, float(fit.fun), float(bulk_modulus)


def _first_shell_statistics(reduced: np.ndarray, n_cells: int, a0: float, sigma: float,
                            rng: np.random.Generator) -> tuple[float, float]:
    """Mean and standard deviation (Å) of first-neighbour distances of an Einstein-thermalised cell."""
    positions = a0 * reduced + rng.normal(0.0, sigma, reduced.shape)
    box = n_cells * a0
    i, j = np.triu_indices(len(positions), 1)
    diff = positions[i] - positions[j]
    diff -= box * np.round(diff / box)
    r = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    first = r[r < a0 * (1.0 / math.sqrt(2.0) + 1.0) / 2.0]
    return float(first.mean()), float(first.std())


def _add_noise(values: dict[str, float], noise: Mapping[str, float], rng: np.random.Generator) -> None:
    for name in values:
        sigma = noise.get(name, 0.0)
        if sigma:
            values[name] += float(rng.normal(0.0, sigma))


@dataclass
class MorseFCC:
    """ABC simulator: Morse parameters ``{"D", "a", "r0"}`` → fcc summary statistics ``(k,)``.

    Parameters
    ----------
    statistics
        Which statistics, in order (names of :data:`STATISTICS`).
    temperature
        K, of the Einstein-thermalised cell behind ``rdf_peak`` and ``rdf_width``.
    supercell
        Repetitions of the 4-atom cubic cell of that thermalised cell (3: 108 atoms).
    noise
        Absolute standard deviation of Gaussian noise added to each statistic (units of
        the statistic); ``None`` takes :data:`DEFAULT_NOISE`, ``{}`` adds none.
    rcut1, rcut2
        Smooth cutoff of ASE's ``MorsePotential``, in units of ``r0``.

    Notes
    -----
    Called as ``simulator({"D": 0.34, "a": 1.36, "r0": 2.87}, rng)``. Parameters without an
    fcc minimum, or with a mechanically unstable crystal, raise ``ValueError``; ABC counts
    them as failed simulations.
    """

    statistics: Sequence[str] = ("lattice_constant", "cohesive_energy", "bulk_modulus", "rdf_peak", "rdf_width")
    temperature: float = 300.0
    supercell: int = 3
    noise: Mapping[str, float] | None = None
    rcut1: float = 1.9
    rcut2: float = 2.7
    _shells: tuple = field(init=False, repr=False, compare=False)
    _cell: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.statistics = _check_statistics(self.statistics)
        if self.noise is None:
            self.noise = dict(DEFAULT_NOISE)
        unknown = sorted(set(self.noise) - set(STATISTICS))
        if unknown:
            raise ConfigError(f"noise: unknown statistics {unknown}; known: {', '.join(STATISTICS)}")
        if any(not (v >= 0) for v in self.noise.values()):
            raise ConfigError(f"noise: standard deviations must be non-negative, got {dict(self.noise)}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if not (0 < self.rcut1 < self.rcut2):
            raise ConfigError(f"need 0 < rcut1 < rcut2, got {self.rcut1}, {self.rcut2}")
        self._shells = _fcc_shells(_SHELL_RADIUS)
        self._cell = _supercell(int(self.supercell))

    # the pair potential -------------------------------------------------------------------
    def pair(self, r: np.ndarray, D: float, a: float, r0: float) -> np.ndarray:
        """Pair energy (eV) at distances ``r`` (Å), with ASE's smooth cutoff."""
        e = np.exp(a * (r0 - r))
        return D * e * (e - 2.0) * fcut(r, self.rcut1 * r0, self.rcut2 * r0)

    def energy_per_atom(self, lattice_constant: np.ndarray, D: float, a: float, r0: float) -> np.ndarray:
        """Energy per atom (eV) of the perfect fcc crystal at each lattice constant ``(m,)`` (Å)."""
        rho, counts = self._shells
        lattice = np.asarray(lattice_constant, dtype=float)
        if np.any(lattice * rho[-1] < self.rcut2 * r0):
            raise ValueError("lattice constant too small for the tabulated neighbour shells")
        return 0.5 * (self.pair(np.multiply.outer(lattice, rho), D, a, r0) * counts).sum(axis=-1)

    def einstein_constant(self, lattice_constant: float, D: float, a: float, r0: float) -> float:
        """Force constant (eV/Å²) of one atom displaced in the otherwise perfect crystal."""
        rho, counts = self._shells
        r = lattice_constant * rho
        h = 1e-4
        e_m, e_0, e_p = self.pair(r - h, D, a, r0), self.pair(r, D, a, r0), self.pair(r + h, D, a, r0)
        d1 = (e_p - e_m) / (2 * h)
        d2 = (e_p - 2 * e_0 + e_m) / h**2
        return float(np.sum(counts * (d2 + 2.0 * d1 / r)) / 3.0)

    def properties(self, D: float, a: float, r0: float) -> dict[str, float]:
        """Noise-free lattice constant, cohesive energy, bulk modulus and Einstein constant."""
        if not (D > 0 and a > 0 and r0 > 0):
            raise ValueError(f"Morse parameters must be positive, got D={D}, a={a}, r0={r0}")
        a0, e0, b = _equilibrium(lambda x: self.energy_per_atom(x, D, a, r0), 0.6 * math.sqrt(2) * r0,
                                 1.2 * math.sqrt(2) * r0, f"Morse D={D:.4g} a={a:.4g} r0={r0:.4g}")
        return {"lattice_constant": a0, "cohesive_energy": -e0, "bulk_modulus": b,
                "einstein_constant": self.einstein_constant(a0, D, a, r0)}

    def __call__(self, params: Mapping[str, float] | Sequence[float], rng: np.random.Generator) -> np.ndarray:
        if isinstance(params, Mapping):
            try:
                D, a, r0 = float(params["D"]), float(params["a"]), float(params["r0"])
            except KeyError as exc:
                raise ConfigError(f"MorseFCC needs the parameters D, a, r0; missing {exc}") from None
        else:
            D, a, r0 = map(float, params)
        props = self.properties(D, a, r0)
        return _measure(props, self.statistics, self.temperature, self._cell, self.noise, rng)

    def rdf(self, params: Mapping[str, float], rng: np.random.Generator, r_max: float = 6.0,
            bins: int = 120) -> tuple[np.ndarray, np.ndarray]:
        """Radial distribution function ``(r, g)`` of one thermalised cell (for plots)."""
        props = self.properties(params["D"], params["a"], params["r0"])
        return _rdf(props, self.temperature, self._cell, rng, r_max, bins)


def _sigma(props: Mapping[str, float], temperature: float) -> float:
    k = props["einstein_constant"]
    if not k > 0:
        raise ValueError(f"mechanically unstable crystal (Einstein force constant {k:.3g} eV/Å²)")
    return math.sqrt(kB * temperature / k)


def _measure(props: Mapping[str, float], statistics: Sequence[str], temperature: float, cell: tuple,
             noise: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    values = {name: props[name] for name in ("lattice_constant", "cohesive_energy", "bulk_modulus")}
    if "rdf_peak" in statistics or "rdf_width" in statistics:
        values["rdf_peak"], values["rdf_width"] = _first_shell_statistics(
            cell[0], cell[1], props["lattice_constant"], _sigma(props, temperature), rng)
    _add_noise(values, noise, rng)
    return np.array([values[name] for name in statistics])


def _rdf(props, temperature, cell, rng, r_max, bins):
    reduced, n_cells = cell
    a0 = props["lattice_constant"]
    positions = a0 * reduced + rng.normal(0.0, _sigma(props, temperature), reduced.shape)
    box = n_cells * a0
    i, j = np.triu_indices(len(positions), 1)
    diff = positions[i] - positions[j]
    diff -= box * np.round(diff / box)
    r = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    r_max = min(r_max, box / 2)
    counts, edges = np.histogram(r, bins=bins, range=(0.0, r_max))
    centres = 0.5 * (edges[1:] + edges[:-1])
    density = len(positions) / box**3
    shell = 4.0 * math.pi * centres**2 * np.diff(edges)
    return centres, 2.0 * counts / (len(positions) * density * shell)


def emt_properties(element: str = "Cu", supercell: int = 3) -> dict[str, float]:
    """Lattice constant, cohesive energy, bulk modulus and Einstein constant of ASE's EMT.

    The same protocol as :meth:`MorseFCC.properties`: energy per atom of the fcc
    primitive cell (with EMT), the cohesive energy against the free atom, and the Einstein
    constant from central differences of the force on one atom of an ``supercell``³ cubic
    cell displaced by ±0.005 Å.
    """
    from ase import Atoms
    from ase.calculators.emt import EMT

    from ..data.emt import EMT_ELEMENTS

    if element not in EMT_ELEMENTS:
        raise ConfigError(f"observed.element must be one of {', '.join(EMT_ELEMENTS)} for EMT; got {element!r}")
    calc = EMT()

    def energy(lattice):
        out = []
        for x in np.atleast_1d(lattice):
            atoms = bulk(element, "fcc", a=float(x))
            atoms.calc = calc
            out.append(atoms.get_potential_energy())
        return np.array(out)

    guess = bulk(element, "fcc").cell.cellpar()[0] * math.sqrt(2)
    a0, e0, b = _equilibrium(energy, 0.9 * guess, 1.1 * guess, f"EMT {element}")
    free = Atoms(element, cell=[30.0] * 3)
    free.calc = calc
    cohesive = free.get_potential_energy() - e0
    h = 0.005
    forces = []
    for sign in (1.0, -1.0):
        atoms = bulk(element, "fcc", a=a0, cubic=True).repeat(supercell)
        atoms.positions[0, 0] += sign * h
        atoms.calc = calc
        forces.append(atoms.get_forces()[0, 0])
    k = -(forces[0] - forces[1]) / (2 * h)
    return {"lattice_constant": a0, "cohesive_energy": float(cohesive), "bulk_modulus": b,
            "einstein_constant": float(k)}


def emt_observed(element: str = "Cu", statistics: Sequence[str] = MorseFCC.statistics, temperature: float = 300.0,
                 supercell: int = 3, seed: int = 0, noise: Mapping[str, float] | None = None) -> np.ndarray:
    """Observed summary statistics of EMT's ``element``, measured like :class:`MorseFCC`.

    The thermalised cell behind ``rdf_peak``/``rdf_width`` is drawn with ``seed``;
    ``noise`` (default none) adds observation noise like the simulator's.
    """
    statistics = _check_statistics(statistics)
    props = emt_properties(element, supercell)
    rng = np.random.default_rng(seed)
    return _measure(props, statistics, temperature, _supercell(supercell), dict(noise or {}), rng)


@dataclass
class GaussianMean:
    """Toy simulator with a closed-form posterior: the mean of ``n`` draws from N(mu, sigma²).

    With a normal prior N(m, s²) on ``mu`` and observed mean ``y``, the posterior is
    normal with variance ``1 / (1/s² + n/sigma²)`` and mean ``var * (m/s² + n y/sigma²)``
    (:meth:`posterior`). ``cost_ms`` adds that much CPU work per simulation (for
    benchmarks of parallel runs).
    """

    n: int = 10
    sigma: float = 1.0
    cost_ms: float = 0.0

    def __call__(self, params: Mapping[str, float] | Sequence[float], rng: np.random.Generator) -> np.ndarray:
        mu = float(params["mu"]) if isinstance(params, Mapping) else float(np.asarray(params).ravel()[0])
        if self.cost_ms > 0:
            _busy(self.cost_ms)
        return np.array([rng.normal(mu, self.sigma, self.n).mean()])

    def posterior(self, observed_mean: float, prior_mu: float, prior_sigma: float) -> tuple[float, float]:
        """Analytic posterior mean and standard deviation of ``mu``."""
        var = 1.0 / (1.0 / prior_sigma**2 + self.n / self.sigma**2)
        return var * (prior_mu / prior_sigma**2 + self.n * observed_mean / self.sigma**2), math.sqrt(var)


def _busy(ms: float) -> None:
    """Spend about ``ms`` milliseconds of CPU (a stand-in for an expensive simulation)."""
    import time

    end = time.perf_counter() + ms / 1000.0
    x = np.random.default_rng(0).standard_normal((64, 64))
    while time.perf_counter() < end:
        x = np.tanh(x @ x.T / 64.0)


#: Simulators a configuration can name (``simulator: morse-fcc``).
SIMULATORS: dict[str, Any] = {"morse-fcc": MorseFCC, "gaussian-mean": GaussianMean}
#: References a configuration can compute its observed statistics from (``observed: {from: emt}``).
REFERENCES: dict[str, Any] = {"emt": emt_observed}
