"""Simulations with learned potentials, through ASE.

:class:`Calculator` puts any ml4ms model behind ASE's calculator interface; the
functions below run what a potential is used for: molecular dynamics with a thermo log and
an uncertainty watch (:func:`molecular_dynamics`), relaxations and the equation of state
(:func:`relax`, :func:`equation_of_state`), elastic constants of a model or implied by
labelled strained cells (:func:`elastic_constants`, :func:`elastic_constants_from_data`),
and nudged-elastic-band barriers with error bars (:func:`neb`, :func:`vacancy_migration`).
"""

from .calculator import Calculator
from .elastic import ElasticResult, elastic_constants, elastic_constants_from_data
from .md import MDResult, SimulationDiverged, molecular_dynamics
from .neb import BarrierResult, neb, vacancy_migration
from .relax import EOSResult, RelaxResult, equation_of_state, relax

__all__ = [
    "BarrierResult", "Calculator", "EOSResult", "ElasticResult", "MDResult", "RelaxResult", "SimulationDiverged",
    "elastic_constants", "elastic_constants_from_data", "equation_of_state", "molecular_dynamics", "neb", "relax",
    "vacancy_migration",
]
