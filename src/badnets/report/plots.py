# SPDX-License-Identifier: Apache-2.0
"""PNG figures (matplotlib, Agg backend): heat maps, sweep curves, conv1 filters, trigger examples."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from badnets._io import atomic_path
from badnets.object_detection_metrics import Detections

__all__ = [
    "plot_conv1",
    "plot_error_bars",
    "plot_image_grid",
    "plot_neuron_maps",
    "plot_pair_heatmaps",
    "plot_roc",
    "plot_sweep",
    "plot_trigger_examples",
    "save_figure",
]


def save_figure(fig: Figure, path: Path) -> None:
    """PNG, or JPEG for a ``.jpg`` path (grids of photos: a tenth of the PNG's size)."""
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as tmp:
        if jpeg:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="jpeg", pil_kwargs={"quality": 85})
        else:
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
    save_figure(fig, path)


class SweepPoint(Protocol):
    """One backdoored share of a sweep: error means and their 95% half-widths."""

    @property
    def rate(self) -> float: ...
    @property
    def clean_error_mean(self) -> float: ...
    @property
    def clean_error_ci(self) -> float: ...
    @property
    def backdoor_error_mean(self) -> float: ...
    @property
    def backdoor_error_ci(self) -> float: ...


def plot_error_bars(
    lines: Mapping[str, tuple[Sequence[Any], Sequence[Sequence[tuple[float, float]]]]],
    panels: Sequence[str],
    path: Path,
    *,
    xlabel: str,
    title: str,
    log_x: bool = False,
    legend_size: float | None = None,
) -> None:
    """One panel per y label in ``panels``; each line gives its x values and, per panel, (mean, 95% half-width)
    at each x (a NaN half-width draws no bar). ``log_x`` labels the ticks with the x values themselves."""
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 4), layout="constrained", squeeze=False)
    xs: list[Any] = []
    for label, (xs_of_line, stats) in lines.items():
        xs = list(xs_of_line)
        for ax, points in zip(axes[0], stats, strict=True):
            half = [0.0 if math.isnan(h) else h for _, h in points]
            ax.errorbar(xs, [m for m, _ in points], yerr=half, marker="o", capsize=3, label=label)
    for ax, name in zip(axes[0], panels, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        if log_x:
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.minorticks_off()
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
    fig.suptitle(title)
    save_figure(fig, path)


def plot_roc(panels: Mapping[str, Mapping[str, tuple[torch.Tensor, torch.Tensor]]], path: Path) -> None:
    """One panel per key of ``panels``, one ROC curve ``(fpr, tpr)`` per label in it, with chance's diagonal."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), layout="constrained", squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
        for label, (fpr, tpr) in curves.items():
            ax.plot(fpr.numpy(), tpr.numpy(), linewidth=1.6, label=label)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false-positive rate", ylabel="true-positive rate", title=title)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


_ERRORS = ("clean_error", "backdoor_error")  # the fraction sweep's two panels


def plot_sweep(series: Mapping[str, Sequence[SweepPoint]], path: Path) -> None:
    """Clean and backdoor error (mean ± 95% CI) against the backdoored share, one line per trigger."""
    lines = {
        trigger: (
            [100 * p.rate for p in points],
            [[(100 * getattr(p, f"{key}_mean"), 100 * getattr(p, f"{key}_ci")) for p in points] for key in _ERRORS],
        )
        for trigger, points in series.items()
    }
    plot_error_bars(
        lines,
        ("clean error (%)", "backdoor error (%)"),
        path,
        xlabel="backdoored share of the training set (%)",
        title="Fraction sweep, all-to-all attack",
        log_x=True,
    )


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
    save_figure(fig, path)


def _show(ax: Any, img: torch.Tensor) -> None:
    """A ``(1, H, W)`` (grey) or ``(3, H, W)`` (RGB) uint8 image, without ticks."""
    if img.shape[0] == 1:
        ax.imshow(img[0].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(img.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trigger_examples(images: Mapping[str, torch.Tensor], path: Path) -> None:
    """One ``(C, H, W)`` uint8 image per label, side by side."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.4))
    for ax, (name, img) in zip(np.atleast_1d(axes), images.items(), strict=True):
        _show(ax, img)
        ax.set_title(name, fontsize=9)
    save_figure(fig, path)


def plot_image_grid(
    rows: Mapping[str, Sequence[tuple[torch.Tensor, str]]], path: Path, title: str = "", cell_inches: float = 1.9
) -> None:
    """One row per label of ``(C, H, W)`` uint8 images, each with a caption (e.g. prediction and confidence)."""
    n = max(len(r) for r in rows.values())
    size = (cell_inches * n, (cell_inches + 0.2) * len(rows))
    fig, axes = plt.subplots(len(rows), n, figsize=size, squeeze=False, layout="constrained")
    for r, (name, cells) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            if c < len(cells):
                _show(ax, cells[c][0])
                ax.set_xlabel(cells[c][1], fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, labels: Sequence[str], *, width: int = 2) -> torch.Tensor:
    """``(3, H, W)`` uint8 photo with labelled boxes drawn on it (one colour per label name)."""
    from torchvision.utils import draw_bounding_boxes

    if not len(boxes):
        return image
    palette = {"speedlimit": "orange", "stop": "red", "crosswalk": "cyan", "trafficlight": "lime"}
    colors = [palette.get(name.split(" ")[0], "white") for name in labels]
    drawn: torch.Tensor = draw_bounding_boxes(image, boxes, list(labels), colors=colors, width=width)
    return drawn


def detection_cells(
    images: torch.Tensor, detections: Sequence[Detections], classes: Sequence[str], threshold: float = 0.5
) -> list[tuple[torch.Tensor, str]]:
    """Grid cells for ``plot_image_grid``: each photo with its confident detections drawn and labelled."""
    cells = []
    for image, det in zip(images, detections, strict=True):
        keep = det.scores >= threshold
        names = [f"{classes[int(c)]} {float(p):.0%}" for c, p in zip(det.labels[keep], det.scores[keep], strict=True)]
        cells.append((draw_detections(image, det.boxes[keep], names), ""))
    return cells


def plot_neuron_maps(
    panels: Mapping[str, Sequence[float]], marked: Sequence[int], path: Path, title: str, columns: int = 16
) -> None:
    """Per-channel mean activations as heat maps (one panel per label, channels in a grid), as the paper's
    Figure 8; channels in ``marked`` (the backdoor neurons) are outlined in red."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 2.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels.items(), strict=True):
        v = np.asarray(values, dtype=float)
        flat = np.full(math.ceil(len(v) / columns) * columns, np.nan)
        flat[: len(v)] = v
        grid = flat.reshape(-1, columns)
        signed = name.startswith("difference")
        vmax = float(np.nanmax(np.abs(grid))) or 1.0
        im = ax.imshow(grid, cmap="RdBu_r" if signed else "viridis", vmin=-vmax if signed else 0, vmax=vmax)
        for u in marked:
            r, c = divmod(u, columns)
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.03)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
