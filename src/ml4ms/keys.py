"""Names of the labels ml4ms reads from and writes to :class:`ase.Atoms`.

Readers map whatever a file calls them (``REF_energy``, ``virial_stress``...) onto
these names, in ASE units, so that nothing downstream needs to know the source.

=====================  ==================  ============================================
key                    where               shape, unit
=====================  ==================  ============================================
``ENERGY``             ``atoms.info``      float, eV (total energy of the structure)
``FORCES``             ``atoms.arrays``    (n_atoms, 3), eV/Å
``STRESS``             ``atoms.info``      (6,), eV/Å³, Voigt (xx, yy, zz, yz, xz, xy),
                                           positive = tensile (ASE's sign)
``GROUP``              ``atoms.info``      str, a structure group ("AIMD-NVT", ...)
=====================  ==================  ============================================
"""

from __future__ import annotations

from typing import Final

ENERGY: Final[str] = "energy"
FORCES: Final[str] = "forces"
STRESS: Final[str] = "stress"
GROUP: Final[str] = "config_type"

LABELS: Final[tuple[str, ...]] = (ENERGY, FORCES, STRESS)
