"""Plots and HTML reports: parity plots, error distributions, uncertainty calibration, time series."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

from . import keys
from ._files import atomic_path
from .models.predict import Predictions


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: reports must render on machines without a display
    import matplotlib.pyplot as plt

    return plt


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _save_figure(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically, indented."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def parity_plot(images: Sequence[Atoms], predictions: Predictions, path: str | os.PathLike) -> Path:
    """Predicted vs reference energies (eV/atom), force components (eV/Å), stresses (GPa).

    Quantities without labels get no panel; with no labels at all, a ValueError.
    """
    plt = _pyplot()
    n = predictions.n_atoms
    panels = []
    e_ref = np.array([a.info.get(keys.ENERGY, np.nan) for a in images]) / n
    panels.append(("energy (eV/atom)", e_ref, predictions.energy / n))
    has_f = [k for k, a in enumerate(images) if keys.FORCES in a.arrays]
    if has_f:
        panels.append(("force components (eV/Å)",
                       np.concatenate([images[k].arrays[keys.FORCES] for k in has_f]).ravel(),
                       np.concatenate([predictions.forces[k] for k in has_f]).ravel()))
    if predictions.stress is not None:
        has_s = [k for k, a in enumerate(images) if keys.STRESS in a.info and np.isfinite(predictions.stress[k]).all()]
        if has_s:
            panels.append(("stress components (GPa)",
                           np.array([images[k].info[keys.STRESS] for k in has_s]).ravel() / GPa,
                           predictions.stress[has_s].ravel() / GPa))
    panels = [(label, ref, pred) for label, ref, pred in panels if (np.isfinite(ref) & np.isfinite(pred)).any()]
    if not panels:
        raise ValueError("no labelled energies, forces or stresses to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (label, ref, pred) in zip(axes[0], panels):
        ok = np.isfinite(ref) & np.isfinite(pred)
        ax.scatter(ref[ok], pred[ok], s=4, alpha=0.5)
        lo, hi = np.min([ref[ok].min(), pred[ok].min()]), np.max([ref[ok].max(), pred[ok].max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = np.abs(ref[ok] - pred[ok]).mean()
        ax.set(xlabel=f"reference {label}", ylabel=f"predicted {label}", title=f"MAE {mae:.3g}")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def uncertainty_plot(
    images: Sequence[Atoms], predictions: Predictions, path: str | os.PathLike, *, noise_sigma: float = 0.0
) -> Path:
    """Absolute energy error against predicted sigma, both meV/atom, one point per structure.

    Lines mark ``|error| = sigma`` and ``2 sigma``: for a calibrated model about 68 % of
    the points lie below the first and 95 % below the second. Sigma is the predicted
    standard deviation of the energy per atom, with ``noise_sigma`` (eV/atom) added in
    quadrature as in :func:`ml4ms.training.metrics.uncertainty_metrics`. A ValueError for
    predictions without uncertainties or images without energy labels.
    """
    if predictions.energy_std is None:
        raise ValueError("the predictions hold no uncertainties (predict with uncertainty=True)")
    plt = _pyplot()
    n = predictions.n_atoms
    reference = np.array([a.info.get(keys.ENERGY, np.nan) for a in images], dtype=float)
    error = np.abs(predictions.energy - reference) / n * 1000.0
    sigma = np.hypot(predictions.energy_std / n, noise_sigma) * 1000.0
    ok = np.isfinite(error) & np.isfinite(sigma)
    if not ok.any():
        raise ValueError("no labelled energies to plot")
    error, sigma = error[ok], sigma[ok]
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(sigma, error, s=6, alpha=0.6)
    lo, hi = sigma.min(), sigma.max()
    grid = np.linspace(lo, hi, 2) if hi > lo else np.array([0.5 * lo, 2.0 * lo + 1e-12])
    ax.plot(grid, grid, "k--", lw=0.8, label="|error| = σ")
    ax.plot(grid, 2.0 * grid, "k:", lw=0.8, label="|error| = 2σ")
    # Errors and sigmas span decades; a log scale needs every value positive.
    if (sigma > 0).all() and (error > 0).all():
        ax.set(xscale="log", yscale="log")
    within = np.mean(error <= sigma)
    ax.set(xlabel="predicted σ (meV/atom)", ylabel="|energy error| (meV/atom)",
           title=f"{within:.0%} within 1σ (68% if calibrated)")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def time_series_plot(columns: dict[str, np.ndarray], x: str, path: str | os.PathLike) -> Path:
    """One panel per column against column ``x`` (e.g. temperature and energy vs time)."""
    plt = _pyplot()
    names = [c for c in columns if c != x]
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.2 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        ax.plot(columns[x], columns[name], lw=1)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel(x)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def html_report(path: str | os.PathLike, title: str, sections: Sequence[tuple[str, str | dict, str | None]]) -> Path:
    """A self-contained HTML page: for each section a heading, a table or text, and an image.

    ``sections`` holds ``(heading, body, image)`` with ``body`` a string or a flat dict
    shown as a table, and ``image`` a path relative to the report (or None).
    """
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}</style>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, body, image in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(body, dict):
            rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                           for k, v in body.items())
            parts.append(f"<table>{rows}</table>")
        elif body:
            parts.append(f"<pre>{html.escape(body)}</pre>")
        if image:
            parts.append(f"<img src='{html.escape(image)}' style='max-width:100%'>")
    return atomic_write_text(path, "\n".join(parts) + "\n")


def barrier_plot(path_A: np.ndarray, energies: np.ndarray, sigma: np.ndarray | None,
                 path: str | os.PathLike, title: str | None = None) -> Path:
    """Energy along a reaction path (eV against Å), with a ±2σ band when sigmas are given."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(path_A, energies, "o-", lw=1.5, label="energy")
    if sigma is not None:
        ax.fill_between(path_A, energies - 2 * sigma, energies + 2 * sigma, alpha=0.25, label="±2σ")
        ax.legend()
    ax.set_xlabel("reaction coordinate (Å)")
    ax.set_ylabel("energy relative to initial (eV)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def eos_plot(volumes: np.ndarray, energies: np.ndarray, path: str | os.PathLike, eos: str = "birchmurnaghan") -> Path:
    """Energy against volume with the fitted equation of state."""
    from ase.eos import EquationOfState

    plt = _pyplot()
    fit = EquationOfState(volumes, energies, eos=eos)
    v0, e0, _ = fit.fit()
    _, _, _, _, grid, curve, _, _ = fit.getplotdata()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(volumes, energies, "o", label="model")
    ax.plot(grid, curve, "-", label=eos)
    ax.axvline(v0, color="grey", lw=0.8)
    ax.set_xlabel("volume (Å³)")
    ax.set_ylabel("energy (eV)")
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return Path(path)
