"""Error metrics of predicted energies, forces and stresses against labels.

Units follow the community's reporting convention (mlearn, MACE, NequIP): energies
in meV/atom, forces in eV/Å, stresses in GPa.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

from .. import keys
from ..models.predict import Predictions


def _mae_rmse(errors: np.ndarray) -> dict[str, float] | None:
    if errors.size == 0:
        return None
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}


def _errors(images: Sequence[Atoms], predictions: Predictions, members: np.ndarray) -> dict[str, Any]:
    n_atoms = predictions.n_atoms
    energy = np.array([images[k].info.get(keys.ENERGY, np.nan) for k in members], dtype=float)
    e_err = (predictions.energy[members] - energy) / n_atoms[members] * 1000.0
    f_err = [predictions.forces[k] - images[k].arrays[keys.FORCES]
             for k in members if keys.FORCES in images[k].arrays]
    s_err = np.zeros((0, 6))
    if predictions.stress is not None:
        has = [k for k in members if keys.STRESS in images[k].info and np.isfinite(predictions.stress[k]).all()]
        if has:
            labels = np.array([np.asarray(images[k].info[keys.STRESS], float) for k in has])
            s_err = (predictions.stress[has] - labels) / GPa
    return {
        "n_structures": int(len(members)),
        "n_atoms": int(n_atoms[members].sum()),
        "energy": _mae_rmse(e_err[np.isfinite(e_err)]),
        "forces": _mae_rmse(np.concatenate(f_err).reshape(-1) if f_err else np.zeros(0)),
        "stress": _mae_rmse(s_err.reshape(-1)),
    }


def error_metrics(
    images: Sequence[Atoms], predictions: Predictions, *, group_key: str = keys.GROUP
) -> dict[str, Any]:
    """MAE and RMSE of energies (meV/atom), forces (eV/Å, per component) and stresses (GPa).

    Parameters
    ----------
    images
        Labelled structures.
    predictions
        The model's predictions for them (:func:`ml4ms.models.predict`).
    group_key
        ``info`` key whose values define the groups reported under ``"by_group"``.

    Returns
    -------
    dict
        ``{"n_structures", "n_atoms", "energy": {"mae", "rmse"}, "forces": {...},
        "stress": {...}, "by_group": {group: {...same...}}}``; a quantity without labels is None.
    """
    everything = np.arange(len(images))
    result = _errors(images, predictions, everything)
    groups: dict[str, list[int]] = {}
    for k, atoms in enumerate(images):
        if group_key in atoms.info:
            groups.setdefault(str(atoms.info[group_key]), []).append(k)
    result["by_group"] = {g: _errors(images, predictions, np.array(idx)) for g, idx in sorted(groups.items())}
    return result
