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

#: Row and column of the 3x3 tensor that each Voigt component (xx, yy, zz, yz, xz, xy)
#: comes from: ``voigt = tensor[..., VOIGT_ROWS, VOIGT_COLUMNS]`` for NumPy arrays and
#: torch tensors alike (symmetric tensors only).
VOIGT_ROWS: Final[tuple[int, ...]] = (0, 1, 2, 1, 0, 0)
VOIGT_COLUMNS: Final[tuple[int, ...]] = (0, 1, 2, 2, 2, 1)
