"""Calibration metrics of predicted energy uncertainties, checked on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from ml4ms.models.predict import Predictions
from ml4ms.training.metrics import error_metrics, uncertainty_metrics


def _atoms(n: int, group: str, energy: float | None) -> Atoms:
    atoms = Atoms(f"Cu{n}", positions=np.eye(n, 3) * 2.5)
    atoms.info["config_type"] = group
    if energy is not None:
        atoms.info["energy"] = energy
    return atoms


def _case(energy_std=(0.08, 0.04, 0.01, 0.1, 0.3)):
    """Five structures; per atom (eV/atom):

    ====  =======  ========  =====  ==========
    k     n_atoms  error     sigma  |e|/sigma
    ====  =======  ========  =====  ==========
    0     4        +0.01     0.02   0.5
    1     2        -0.03     0.02   1.5
    2     1        -0.05     0.01   5
    3     2        -0.001    0.05   0.02
    4     3        no label
    ====  =======  ========  =====  ==========
    """
    images = [_atoms(4, "bulk", -10.0), _atoms(2, "bulk", -4.0), _atoms(1, "dimer", -1.0),
              _atoms(2, "dimer", -3.0), _atoms(3, "dimer", None)]
    n_atoms = np.array([4, 2, 1, 2, 3])
    predictions = Predictions(
        energy=np.array([-9.96, -4.06, -1.05, -3.002, -2.0]),
        forces=[np.zeros((n, 3)) for n in n_atoms], stress=None, n_atoms=n_atoms,
        energy_std=np.array(energy_std),
        energies_std=[np.full(n, s / n) for n, s in zip(n_atoms, energy_std)],
    )
    return images, predictions


def _nll(errors, sigmas):
    return np.mean([0.5 * math.log(2 * math.pi * s * s) + 0.5 * (e / s) ** 2 for e, s in zip(errors, sigmas)])


def test_calibration_numbers_equal_hand_computed_values():
    u = uncertainty_metrics(*_case())
    assert u["n"] == 4  # the unlabelled structure is skipped
    assert u["within_1sigma"] == pytest.approx(2 / 4)  # structures 0 and 3
    assert u["within_2sigma"] == pytest.approx(3 / 4)  # and 1
    assert u["expected_within_1sigma"] == 0.6827 and u["expected_within_2sigma"] == 0.9545
    assert u["mean_sigma"] == pytest.approx((20 + 20 + 10 + 50) / 4)  # meV/atom
    # sqrt(mean e^2) / sqrt(mean sigma^2) = sqrt((1 + 9 + 25 + 0.01) / (4 + 4 + 1 + 25))
    assert u["rmse_over_rms_sigma"] == pytest.approx(math.sqrt(35.01 / 34), rel=1e-9)
    # 0.5 log(2 pi sigma^2) + 0.5 (e / sigma)^2, averaged; e/sigma = 0.5, 1.5, 5, 0.02
    expected_nll = np.mean([0.5 * math.log(2 * math.pi * s**2) + 0.5 * r**2
                            for s, r in ((0.02, 0.5), (0.02, 1.5), (0.01, 5.0), (0.05, 0.02))])
    assert u["nll"] == pytest.approx(expected_nll, rel=1e-9)
    # ranks of |e| (0.01, 0.03, 0.05, 0.001): 2, 3, 4, 1; of sigma (0.02, 0.02, 0.01, 0.05):
    # 2.5, 2.5, 1, 4; their Pearson correlation is -4.5 / sqrt(5 * 4.5) = -3 / sqrt(10)
    assert u["spearman"] == pytest.approx(-3 / math.sqrt(10), rel=1e-12)


def test_label_noise_is_added_in_quadrature():
    u = uncertainty_metrics(*_case(), noise_sigma=0.04)
    # sigma^2 = 0.0004 + 0.0016 (0 and 1), 0.0001 + 0.0016 (2), 0.0025 + 0.0016 (3)
    sigmas = [math.sqrt(0.0020), math.sqrt(0.0020), math.sqrt(0.0017), math.sqrt(0.0041)]
    errors = [0.01, -0.03, -0.05, -0.001]
    # |e|/sigma = 0.22, 0.67, 1.21, 0.016
    assert u["within_1sigma"] == pytest.approx(3 / 4)
    assert u["within_2sigma"] == pytest.approx(1.0)
    assert u["mean_sigma"] == pytest.approx(1000 * sum(sigmas) / 4)
    assert u["nll"] == pytest.approx(_nll(errors, sigmas), rel=1e-9)
    assert u["rmse_over_rms_sigma"] == pytest.approx(math.sqrt(35.01e-4 / (0.0020 + 0.0020 + 0.0017 + 0.0041)))


def test_error_metrics_report_uncertainty_overall_and_per_group():
    images, predictions = _case()
    metrics = error_metrics(images, predictions)
    assert metrics["uncertainty"] == uncertainty_metrics(images, predictions)
    bulk, dimer = metrics["by_group"]["bulk"]["uncertainty"], metrics["by_group"]["dimer"]["uncertainty"]
    assert bulk["n"] == 2 and bulk["within_1sigma"] == pytest.approx(0.5) and bulk["within_2sigma"] == 1.0
    assert bulk["spearman"] is None  # both sigmas are 0.02: nothing to rank
    assert dimer["n"] == 2 and dimer["within_1sigma"] == pytest.approx(0.5) and dimer["within_2sigma"] == 0.5
    assert dimer["mean_sigma"] == pytest.approx(30.0)
    assert dimer["spearman"] == pytest.approx(-1.0)  # the larger error has the smaller sigma
    noisy = error_metrics(images, predictions, noise_sigma=0.04)
    assert noisy["uncertainty"]["within_1sigma"] == pytest.approx(3 / 4)


def test_without_uncertainties_there_is_no_uncertainty_key():
    images, predictions = _case()
    predictions.energy_std = predictions.energies_std = None
    metrics = error_metrics(images, predictions)
    assert "uncertainty" not in metrics
    assert all("uncertainty" not in m for m in metrics["by_group"].values())
    with pytest.raises(ValueError, match="uncertainty=True"):
        uncertainty_metrics(images, predictions)


def test_undefined_values_are_none_not_nan():
    images, predictions = _case(energy_std=(0.0, 0.0, 0.0, 0.0, 0.0))
    u = uncertainty_metrics(images, predictions)
    assert u["n"] == 4 and u["within_1sigma"] == 0.0 and u["mean_sigma"] == 0.0
    assert u["nll"] is None and u["rmse_over_rms_sigma"] is None and u["spearman"] is None
    unlabelled = uncertainty_metrics(images[4:], Predictions(
        energy=np.zeros(1), forces=[np.zeros((3, 3))], stress=None, n_atoms=np.array([3]),
        energy_std=np.ones(1), energies_std=[np.ones(3)]))
    assert unlabelled["n"] == 0
    assert all(unlabelled[k] is None for k in ("within_1sigma", "within_2sigma", "nll", "mean_sigma",
                                                "rmse_over_rms_sigma", "spearman"))


@pytest.mark.parametrize("noise", [-0.01, float("nan"), float("inf")])
def test_a_bad_noise_sigma_is_a_value_error(noise):
    with pytest.raises(ValueError, match="noise_sigma"):
        uncertainty_metrics(*_case(), noise_sigma=noise)
