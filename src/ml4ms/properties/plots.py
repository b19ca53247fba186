"""Plots of property predictions: parity, error against predicted sigma, feature importance."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..report import _pyplot, _save_figure


def parity_plot(y: np.ndarray, prediction: np.ndarray, path: str | os.PathLike, *, label: str = "value") -> Path:
    """Predicted against reference values, with the MAE in the title."""
    plt = _pyplot()
    y, prediction = np.asarray(y, float), np.asarray(prediction, float)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.scatter(y, prediction, s=5, alpha=0.5)
    lo, hi = float(min(y.min(), prediction.min())), float(max(y.max(), prediction.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlabel=f"reference {label}", ylabel=f"predicted {label}",
           title=f"MAE {np.mean(np.abs(prediction - y)):.3g}, n = {len(y)}")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def error_sigma_plot(y: np.ndarray, prediction: np.ndarray, sigma: np.ndarray, path: str | os.PathLike,
                     *, unit: str = "") -> Path:
    """|error| against predicted sigma, with the 1σ and 2σ lines, and a histogram of
    error/sigma beside the standard normal density."""
    plt = _pyplot()
    error = np.asarray(prediction, float) - np.asarray(y, float)
    sigma = np.asarray(sigma, float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.scatter(sigma, np.abs(error), s=5, alpha=0.5)
    grid = np.linspace(0, sigma.max(), 2)
    a.plot(grid, grid, "k--", lw=0.8, label="|error| = σ")
    a.plot(grid, 2 * grid, "k:", lw=0.8, label="|error| = 2σ")
    a.set(xlabel=f"predicted σ ({unit})", ylabel=f"|error| ({unit})",
          title=f"{np.mean(np.abs(error) <= sigma):.0%} within 1σ, {np.mean(np.abs(error) <= 2 * sigma):.0%} within 2σ")
    a.legend(fontsize="small")
    z = error / np.where(sigma > 0, sigma, np.nan)
    z = z[np.isfinite(z)]
    b.hist(np.clip(z, -6, 6), bins=60, density=True, alpha=0.7)
    t = np.linspace(-6, 6, 200)
    b.plot(t, np.exp(-t**2 / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="N(0, 1)")
    b.set(xlabel="error / σ", ylabel="density")
    b.legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def importance_plot(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *, unit: str = "") -> Path:
    """Horizontal bars of permutation importance (increase of the MAE), largest on top."""
    plt = _pyplot()
    rows = list(rows)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    ax.barh([r["feature"] for r in rows], [r["importance"] for r in rows],
            xerr=[r["std"] for r in rows], color="tab:blue", alpha=0.8)
    ax.set(xlabel=f"MAE increase when shuffled ({unit})")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)
