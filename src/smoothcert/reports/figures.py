"""Figures of the reports: certified accuracy against radius, Delta(rho) (Levine & Feizi 2020,
Figure 2) and ablated samples (Figure 1).

Plots use matplotlib's object-oriented API rendered by Agg (no pyplot state); matplotlib is
imported only when a plotting function is called.  Figures are drawn at [`DPI`][DPI] dots per inch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..certificates import delta
from .certified import RunLog, certified_accuracy

DPI = 100
"""Resolution of every saved figure; sizes below are in inches."""
CURVE_FIGSIZE = (6.0, 4.0)
"""Size of the certified-accuracy and Delta plots (600 x 400 pixels at [`DPI`][DPI])."""
PANEL_SIZE = (1.5, 1.75)
"""Width and height of one image panel in [`plot_ablated_samples`][plot_ablated_samples]."""
NULL_COLOUR = (0.0, 0.8, 0.0)
"""Display colour of ablated (NULL) pixels: green, as in the paper's Figure 1."""

def _figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


DATA_KEY = "smoothcert-data"
"""The PNG text chunk in which a figure drawn from logs keeps the SHA-256 of the data it plots."""


def _save(fig: Any, path: str | Path, digest: str | None = None) -> Path:
    """Save ``fig`` as a PNG; a ``digest`` of the data it shows goes into the file ([`DATA_KEY`][DATA_KEY]),
    so that [`figure_digest`][figure_digest] can tell whether the figure still shows its data."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None} if digest is None else {"Software": None, DATA_KEY: digest}
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=metadata)
        os.replace(tmp, path)  # a figure appears whole or not at all
    finally:
        tmp.unlink(missing_ok=True)
    return path


def data_digest(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON (floats rounded to 9 significant digits)."""
    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, (list, tuple)):
            return [rounded(v) for v in value]
        if isinstance(value, dict):
            return {str(k): rounded(v) for k, v in value.items()}
        return value
    return hashlib.sha256(json.dumps(rounded(data), sort_keys=True).encode()).hexdigest()


def figure_digest(path: str | Path) -> str | None:
    """The data digest a PNG written by this module records (None for a figure without one)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.text.get(DATA_KEY)


def certified_accuracy_curves(logs: list[RunLog], max_radius: float | None = None
                              ) -> tuple[float, list[tuple[str, list[float], list[float]]]]:
    """(max_radius, [(run name, radii, certified accuracy)]): the exact step curves of the certify
    ``logs``, certified accuracy being constant on (r_i, r_i+1]; ``max_radius`` defaults to 1.1 x
    the largest certified radius (1 if there is none)."""
    if not logs:
        raise ValueError("no logs to plot")
    for log in logs:
        if log.radius is None:
            raise ValueError(f"{log.name!r} is a predict log: it has no radii to plot")
    if max_radius is None:
        largest = max(float(log.radius[log.correct].max(initial=0.0)) for log in logs)
        max_radius = 1.1 * largest if largest > 0 else 1.0
    if not max_radius > 0:
        raise ValueError(f"max_radius must be > 0, got {max_radius}")
    curves = []
    for log in logs:
        present = np.unique(log.radius[log.correct & (log.radius < max_radius)])
        x = np.concatenate([[0.0], present[present > 0], [max_radius]])
        curves.append((log.name, x.tolist(), np.asarray(certified_accuracy(log.radius, log.correct, x)).tolist()))
    return float(max_radius), curves


def curves_digest(logs: list[RunLog], max_radius: float | None = None, xlabel: str = "radius (pixels, L0)") -> str:
    """The digest [`plot_certified_accuracy`][plot_certified_accuracy] records in its PNG for these arguments."""
    return _curves_digest(*certified_accuracy_curves(logs, max_radius), xlabel)


def _curves_digest(max_radius: float, curves: list[tuple[str, list[float], list[float]]], xlabel: str) -> str:
    return data_digest([max_radius, curves, xlabel])


def plot_certified_accuracy(logs: list[RunLog], path: str | Path, max_radius: float | None = None,
                            xlabel: str = "radius (pixels, L0)") -> Path:
    """Certified accuracy against radius, one exact step curve per run (see
    [`certified_accuracy_curves`][certified_accuracy_curves]); saves a PNG that records the [`curves_digest`][curves_digest] of its data."""
    max_radius, curves = certified_accuracy_curves(logs, max_radius)
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    for name, x, y in curves:
        ax.step(x, y, where="pre", label=name)
    ax.set(xlim=(0, max_radius), ylim=(0, 1), xlabel=xlabel, ylabel="certified accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path, _curves_digest(max_radius, curves, xlabel))


def plot_delta(d: int, ks: Sequence[int], path: str | Path, max_rho: int = 30) -> Path:
    """Figure 2: Theorem 1's Delta(rho) = 1 - C(d-rho, k)/C(d, k) for rho = 0..max_rho, one curve
    per k.  The paper uses d = 784 (MNIST) and k = 5, 10, ..., 100.
    """
    from matplotlib import colormaps


    if not ks:
        raise ValueError("ks must name at least one k")
    if max_rho < 1:
        raise ValueError(f"max_rho must be >= 1, got {max_rho}")
    rho = np.arange(max_rho + 1)
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(ks)))
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    for k, colour in zip(ks, colours):
        ax.plot(rho, delta(rho, d, k), color=colour, label=f"k={k}")
    ax.set(xlim=(0, max_rho), ylim=(0, 1), xlabel=r"$\rho$ ($L_0$ distance)", ylabel=r"$\Delta(\rho)$",
           title=f"Theorem 1, d = {d}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right center", fontsize="x-small", ncol=1 + (len(ks) - 1) // 12)
    return _save(fig, path)


def _display(image: np.ndarray) -> np.ndarray:
    """RGB array of a display image in [0, 1] with NaN (NULL) pixels painted NULL_COLOUR."""
    rgb = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image.astype(float)
    null = np.isnan(rgb).any(axis=-1)
    if ((rgb[~null] < 0) | (rgb[~null] > 1)).any():
        raise ValueError("display images must have values in [0, 1] (NaN marks an ablated pixel)")
    rgb = rgb.copy()
    rgb[null] = NULL_COLOUR
    return rgb


def plot_ablated_samples(image: np.ndarray,
                         samples: np.ndarray | Mapping[int, tuple[np.ndarray, np.ndarray]],
                         labels: np.ndarray | None, path: str | Path, title: str = "") -> Path:
    """Figure-1-style picture: the original image on top, then rows of ablated samples, each
    titled with its base-classifier label; ablated (NaN) pixels are drawn green.

    ``image`` is (H, W) or (H, W, 3) in [0, 1].  Pass one row as ``samples`` (S, *image.shape)
    with ``labels`` (S,), or several rows as ``{k: (samples, labels)}`` with ``labels=None``
    (each row is then marked "k = ..."). The figure is PANEL_SIZE x (columns, 1 + rows) inches.
    """
    image = np.asarray(image, dtype=float)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {image.shape}")
    if isinstance(samples, Mapping):
        if labels is not None:
            raise ValueError("labels must be None when samples is a {k: (samples, labels)} mapping")
        rows = dict(samples)
    elif labels is None:
        raise ValueError("labels are required when samples is an array")
    else:
        rows = {None: (samples, labels)}
    if not rows:
        raise ValueError("no sample rows to plot")
    checked = {}
    for k, (row_samples, row_labels) in rows.items():
        row_samples, row_labels = np.asarray(row_samples, dtype=float), np.asarray(row_labels)
        if row_samples.ndim != image.ndim + 1 or row_samples.shape[1:] != image.shape or not len(row_samples):
            raise ValueError(f"samples must have shape (S, {', '.join(map(str, image.shape))}) with S >= 1, "
                             f"got {row_samples.shape}")
        if row_labels.shape != row_samples.shape[:1]:
            raise ValueError(f"labels must have shape ({len(row_samples)},), got {row_labels.shape}")
        checked[k] = (row_samples, row_labels)
    ncols = max(len(s) for s, _ in checked.values())
    fig = _figure((PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * (1 + len(checked))))
    grid = fig.add_gridspec(1 + len(checked), ncols)
    top = fig.add_subplot(grid[0, :])
    top.imshow(_display(image), interpolation="nearest")
    top.set_title("original", fontsize="small")
    top.axis("off")
    for row, (k, (row_samples, row_labels)) in enumerate(checked.items(), start=1):
        for col, (sample, label) in enumerate(zip(row_samples, row_labels)):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(_display(sample), interpolation="nearest")
            ax.set_title(str(label), fontsize="small")
            ax.set(xticks=[], yticks=[])
            if col == 0 and k is not None:
                ax.set_ylabel(f"k = {k}", fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
