# SPDX-License-Identifier: Apache-2.0
"""PNG figures (matplotlib, Agg backend): heat maps, sweep curves, conv1 filters, trigger examples."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from badnets._io import atomic_path

__all__ = ["plot_conv1", "plot_pair_heatmaps", "plot_sweep", "plot_trigger_examples"]


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_pair_heatmaps(clean: np.ndarray, backdoor: np.ndarray, title: str, path: Path) -> None:
    """Two 10×10 maps (true label i × target j) of clean and backdoor error in %, as the paper's Figure 4."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for ax, grid, name in zip(axes, (clean, backdoor), ("clean error (%)", "backdoor error (%)"), strict=True):
        shown = np.ma.masked_invalid(grid * 100)
        im = ax.imshow(shown, cmap="viridis")
        lo, hi = float(shown.min()), float(shown.max())
        for i, j in np.ndindex(grid.shape):
            if not math.isnan(grid[i, j]):
                bright = hi > lo and (100 * grid[i, j] - lo) / (hi - lo) > 0.6  # viridis turns yellow at the top
                ax.text(
                    j,
                    i,
                    f"{100 * grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if bright else "white",
                )
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("target label j")
        ax.set_ylabel("true label i")
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(title)
    _save(fig, path)


def plot_sweep(series: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> None:
    """Clean and backdoor error (mean ± 95% CI) against the backdoored share, one line per trigger."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    rates: list[float] = []
    for trig, points in series.items():
        rates = [100 * p["rate"] for p in points]
        for ax, key in zip(axes, ("clean_error", "backdoor_error"), strict=True):
            mean = [100 * p[f"{key}_mean"] for p in points]
            half = [0 if math.isnan(p[f"{key}_ci"]) else 100 * p[f"{key}_ci"] for p in points]
            ax.errorbar(rates, mean, yerr=half, marker="o", capsize=3, label=trig)
    for ax, name in zip(axes, ("clean error (%)", "backdoor error (%)"), strict=True):
        ax.set_xlabel("backdoored share of the training set (%)")
        ax.set_ylabel(name)
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Fraction sweep, all-to-all attack")
    _save(fig, path)


def plot_conv1(
    rows: Mapping[str, torch.Tensor],
    marked: Mapping[str, Sequence[int]],
    path: Path,
    gains: Mapping[str, Sequence[float]] | None = None,
) -> None:
    """conv1 filters, one row per model; filters in ``marked[row]`` get a red frame, ``gains[row]`` a caption."""
    names = list(rows)
    n = max(w.shape[0] for w in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(n * 0.8, len(names) * 1.0 + 0.4), squeeze=False)
    for r, name in enumerate(names):
        weights = rows[name][:, 0].cpu().numpy()  # (16, 5, 5)
        for f in range(n):
            ax = axes[r, f]
            ax.imshow(weights[f], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if f in marked.get(name, ()):
                for side in ax.spines.values():
                    side.set_edgecolor("red")
                    side.set_linewidth(3)
            if f == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
            if gains is not None and name in gains:
                ax.set_xlabel(
                    f"{gains[name][f]:.2f}", fontsize=7, color="red" if f in marked.get(name, ()) else "black"
                )
    fig.suptitle("conv1 filters (red: trigger-dedicated; numbers: trigger gain)", fontsize=10)
    _save(fig, path)


def plot_trigger_examples(images: Mapping[str, torch.Tensor], path: Path) -> None:
    """One ``(1, H, W)`` uint8 image per label, side by side."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.4))
    for ax, (name, img) in zip(np.atleast_1d(axes), images.items(), strict=True):
        ax.imshow(img[0].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path)
