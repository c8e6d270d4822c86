# SPDX-License-Identifier: Apache-2.0
"""A sweep's report, rendered from its results alone: the table of cells and each metric against a swept option,
mean and 95% interval over the other options' values that differ only in seed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from badnets.metrics import mean_ci
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import pct
from badnets.sweep.results import SweepResults, SweepRow

__all__ = ["plot_axis", "plot_sweep_cells", "render", "write_sweep_report"]

FIGURE = "sweep.png"
_PLOTTED = (("attack_success_rate", "attack success rate (%)"), ("clean_error", "clean error (%)"))


def plot_axis(results: SweepResults) -> str | None:
    """The swept option the figure puts on its x axis: the first other than ``seed`` with two or more values."""
    for axis in results.sweep_axes:
        if axis != "seed" and len({repr(row.values.get(axis)) for row in results.rows}) > 1:
            return axis
    return None


def _series(rows: Sequence[SweepRow], axis: str) -> dict[str, dict[str, list[SweepRow]]]:
    """Rows by line (the values of the options other than ``axis`` and ``seed``), then by ``axis`` value."""
    lines: dict[str, dict[str, list[SweepRow]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        rest = ", ".join(f"{k}={v}" for k, v in row.values.items() if k not in (axis, "seed"))
        lines[rest or "all"][str(row.values.get(axis))].append(row)
    return lines


def plot_sweep_cells(results: SweepResults, axis: str, path: Path) -> None:
    from badnets.report.plots import plot_error_bars

    lines = {
        label: (
            list(by_value),
            [[mean_ci([100 * getattr(r, key) for r in by_value[x]]) for x in by_value] for key, _ in _PLOTTED],
        )
        for label, by_value in _series(results.rows, axis).items()
    }
    title = f"Sweep: metrics against {axis} (mean ± 95% interval over seeds)"
    plot_error_bars(lines, [name for _, name in _PLOTTED], path, xlabel=axis, title=title, legend_size=7)


def _doc(results: SweepResults) -> list[Block]:
    axes = results.sweep_axes
    blocks: list[Block] = [
        Heading("Sweep", 1),
        Para(
            f"{len(results.rows)} finished cell(s) of {len(results.rows) + len(results.failed)}, backend "
            f"`{results.backend}`. Every cell is a `badnets attack` run under `runs/<cell>`; the rows are in "
            "`summary.csv` and `summary.json`. Base options: "
            + (", ".join(f"`{k}={v}`" for k, v in results.spec["base"].items()) or "the defaults")
            + "."
        ),
        Table(
            ["cell", *axes, "clean error", "attack success rate", "backdoor error", "n backdoored", "seconds"],
            [
                [
                    row.cell,
                    *(row.values.get(axis, "") for axis in axes),
                    pct(row.clean_error),
                    pct(row.attack_success_rate),
                    pct(row.backdoor_error),
                    row.n_backdoor,
                    f"{row.seconds:.1f}",
                ]
                for row in results.rows
            ],
        ),
    ]
    if (axis := plot_axis(results)) is not None:
        blocks.append(Image(FIGURE, f"Attack success rate and clean error against {axis}."))
    if results.failed:
        blocks += [
            Heading("Failed cells"),
            Para("Re-run the same command to retry them; finished cells are not re-run."),
            Table(["cell", "error"], [[name, error] for name, error in results.failed.items()]),
        ]
    if results.timing is not None:
        t = results.timing
        blocks += [
            Heading("Run"),
            Para(
                f"Last invocation: {t.models_trained_now} cell(s) run now of {t.models}, {t.workers} at a time, "
                f"{t.jobs_wall_seconds:.0f} s wall; the cells' own time {t.job_seconds:.0f} s."
            ),
        ]
    return blocks


_DOCUMENT = StudyReport(SweepResults, "Sweep", _doc)


def write_sweep_report(results: SweepResults, out: Path) -> None:
    """``results.json``, the figure, ``report.md`` and ``report.html`` of a sweep directory."""
    if (axis := plot_axis(results)) is not None:
        plot_sweep_cells(results, axis, out / FIGURE)
    _DOCUMENT.write(results, out)


def render(data: Mapping[str, Any], out: Path) -> None:
    """Re-render a sweep directory's report from its ``results.json``."""
    from badnets.records import from_json

    write_sweep_report(from_json(SweepResults, data), out)
