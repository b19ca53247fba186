"""Error metrics of predicted energies, forces and stresses against labels.

Units follow the community's reporting convention (mlearn, MACE, NequIP): energies
in meV/atom, forces in eV/Å, stresses in GPa. For models that predict uncertainties,
:func:`uncertainty_metrics` measures how well the predicted standard deviations of the
energies match the size of the errors (calibration) and rank them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa
from scipy.stats import rankdata

from .. import keys
from ..models.predict import Predictions


def _mae_rmse(errors: np.ndarray) -> dict[str, float] | None:
    if errors.size == 0:
        return None
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}


#: Fraction of a Gaussian within one and two standard deviations of its mean.
EXPECTED_WITHIN_1SIGMA = 0.6827
EXPECTED_WITHIN_2SIGMA = 0.9545


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (ties get their average rank); None when undefined."""
    if x.size < 2:
        return None
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = np.sqrt((rx**2).sum() * (ry**2).sum())
    # A constant sigma (or error) ranks nothing: report "undefined", not NaN.
    return float((rx * ry).sum() / norm) if norm > 0 else None


def _uncertainty(images: Sequence[Atoms], predictions: Predictions, members: np.ndarray,
                 noise_sigma: float) -> dict[str, Any]:
    n_atoms = predictions.n_atoms[members]
    reference = np.array([images[k].info.get(keys.ENERGY, np.nan) for k in members], dtype=float)
    error = (predictions.energy[members] - reference) / n_atoms  # eV/atom
    sigma = np.hypot(predictions.energy_std[members] / n_atoms, noise_sigma)  # eV/atom
    result = calibration_summary(error, sigma)
    if result["mean_sigma"] is not None:
        result["mean_sigma"] *= 1000.0  # meV/atom
    return result


def calibration_summary(error: np.ndarray, sigma: np.ndarray) -> dict[str, Any]:
    """How well predicted standard deviations describe the errors.

    Parameters
    ----------
    error, sigma
        (n,) prediction errors and predicted standard deviations, same unit; rows with a
        non-finite value are left out.

    Returns
    -------
    dict
        ``n``; ``within_1sigma`` and ``within_2sigma`` (fractions of ``|error| <= k sigma``,
        with the Gaussian's ``expected_*`` beside them); ``nll`` (mean Gaussian negative
        log-likelihood; None if a sigma is zero); ``mean_sigma``; ``rmse_over_rms_sigma``
        (1 for a calibrated model); ``spearman`` (rank correlation of ``|error|`` and sigma).
    """
    error = np.asarray(error, float)
    sigma = np.asarray(sigma, float)
    ok = np.isfinite(error) & np.isfinite(sigma)
    error, sigma = error[ok], sigma[ok]
    result: dict[str, Any] = {
        "n": int(ok.sum()),
        "within_1sigma": None,
        "within_2sigma": None,
        "expected_within_1sigma": EXPECTED_WITHIN_1SIGMA,
        "expected_within_2sigma": EXPECTED_WITHIN_2SIGMA,
        "nll": None,
        "mean_sigma": None,
        "rmse_over_rms_sigma": None,
        "spearman": None,
    }
    if error.size == 0:
        return result
    size = np.abs(error)
    result["within_1sigma"] = float(np.mean(size <= sigma))
    result["within_2sigma"] = float(np.mean(size <= 2.0 * sigma))
    result["mean_sigma"] = float(sigma.mean())
    # A zero sigma makes the likelihood of any error but zero vanish: undefined, not infinite.
    if (sigma > 0).all():
        result["nll"] = float(np.mean(0.5 * np.log(2.0 * np.pi * sigma**2) + 0.5 * (error / sigma) ** 2))
    rms_sigma = np.sqrt(np.mean(sigma**2))
    if rms_sigma > 0:
        result["rmse_over_rms_sigma"] = float(np.sqrt(np.mean(error**2)) / rms_sigma)
    result["spearman"] = _spearman(size, sigma)
    return result


def uncertainty_metrics(
    images: Sequence[Atoms], predictions: Predictions, *, noise_sigma: float = 0.0
) -> dict[str, Any]:
    """Calibration of the predicted uncertainties of the energy per atom.

    For each structure with an energy label, the error ``e = (E_pred - E_ref) / n_atoms``
    (eV/atom) is compared with ``sigma = sqrt((energy_std / n_atoms)² + noise_sigma²)``
    (eV/atom): the predicted standard deviation of the total energy shared over the atoms.
    Well-calibrated Gaussian errors have about 68.27 % of ``|e|`` within one sigma,
    95.45 % within two, and ``rmse_over_rms_sigma`` close to 1.

    Parameters
    ----------
    images
        Labelled structures; those without a (finite) energy label are skipped.
    predictions
        Predictions with :attr:`~ml4ms.models.Predictions.energy_std`
        (``predict(..., uncertainty=True)``).
    noise_sigma
        Standard deviation of the noise of the labels themselves, eV/atom, added in
        quadrature to the model's sigma: errors are measured against noisy labels, so a
        model's uncertainty of the *noise-free* energy alone looks overconfident.
        Default 0.

    Returns
    -------
    dict
        ``"n"``: structures used; ``"within_1sigma"``, ``"within_2sigma"``: fractions of
        structures with ``|e| <= sigma`` and ``<= 2 sigma``, next to the Gaussian values
        ``"expected_within_1sigma"`` (0.6827) and ``"expected_within_2sigma"`` (0.9545);
        ``"nll"``: mean Gaussian negative log-likelihood
        ``0.5 log(2 pi sigma²) + e² / (2 sigma²)`` per structure, with ``e`` and ``sigma``
        in eV/atom (lower is better; it shifts by ``log(unit)`` with the energy unit,
        so compare it only between models in the same units); ``"mean_sigma"``:
        meV/atom; ``"rmse_over_rms_sigma"``: ``sqrt(mean e²) / sqrt(mean sigma²)``, > 1 for
        an overconfident model; ``"spearman"``: rank correlation of ``|e|`` and sigma
        (does a larger sigma flag a larger error?). A value that is undefined is None:
        all of them with no labelled structure, ``"nll"`` when a sigma is zero,
        ``"spearman"`` with fewer than two structures or a constant ``|e|`` or sigma.

    Raises
    ------
    ValueError
        ``predictions`` hold no uncertainties, or ``noise_sigma`` is negative or not finite.
    """
    _check_uncertainty(predictions, noise_sigma)
    return _uncertainty(images, predictions, np.arange(len(images)), noise_sigma)


def _check_uncertainty(predictions: Predictions, noise_sigma: float) -> None:
    if predictions.energy_std is None:
        raise ValueError("the predictions hold no uncertainties: predict them with "
                         "predict(model, images, uncertainty=True)")
    if not (np.isfinite(noise_sigma) and noise_sigma >= 0):
        raise ValueError(f"noise_sigma must be a non-negative number (eV/atom), got {noise_sigma}")


def _errors(images: Sequence[Atoms], predictions: Predictions, members: np.ndarray,
            noise_sigma: float = 0.0) -> dict[str, Any]:
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
    result = {
        "n_structures": int(len(members)),
        "n_atoms": int(n_atoms[members].sum()),
        "energy": _mae_rmse(e_err[np.isfinite(e_err)]),
        "forces": _mae_rmse(np.concatenate(f_err).reshape(-1) if f_err else np.zeros(0)),
        "stress": _mae_rmse(s_err.reshape(-1)),
    }
    if predictions.energy_std is not None:
        result["uncertainty"] = _uncertainty(images, predictions, members, noise_sigma)
    return result


def error_metrics(
    images: Sequence[Atoms],
    predictions: Predictions,
    *,
    group_key: str = keys.GROUP,
    noise_sigma: float = 0.0,
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
    noise_sigma
        Label noise, eV/atom, for the uncertainty metrics (see :func:`uncertainty_metrics`).

    Returns
    -------
    dict
        ``{"n_structures", "n_atoms", "energy": {"mae", "rmse"}, "forces": {...},
        "stress": {...}, "by_group": {group: {...same...}}}``; a quantity without labels is None.
        When ``predictions`` hold uncertainties (``energy_std`` is not None), each level
        also has ``"uncertainty"``: :func:`uncertainty_metrics` of its structures.
    """
    if predictions.energy_std is not None:
        _check_uncertainty(predictions, noise_sigma)
    everything = np.arange(len(images))
    result = _errors(images, predictions, everything, noise_sigma)
    groups: dict[str, list[int]] = {}
    for k, atoms in enumerate(images):
        if group_key in atoms.info:
            groups.setdefault(str(atoms.info[group_key]), []).append(k)
    result["by_group"] = {g: _errors(images, predictions, np.array(idx), noise_sigma)
                          for g, idx in sorted(groups.items())}
    return result
