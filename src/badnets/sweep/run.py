# SPDX-License-Identifier: Apache-2.0
"""Run a sweep: every cell an attack run under ``DIR/runs/<cell>`` (the layout of ``badnets attack``), on the
local or the Ray backend, then one row per finished cell in ``summary.csv`` / ``summary.json`` and a report.

Re-running the same command resumes: finished cells are read, not re-run; a cell whose spec changed since it ran
is an error naming the cell (``run_jobs``). A cell that fails does not stop the others; it is listed, and left out
of the summary until a re-run finishes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from badnets._io import read_json, write_json, write_text
from badnets.data import dataset_source
from badnets.experiments._jobs import Backend, Job, JobCounts, dedupe_jobs
from badnets.experiments._study import check_clean_tree, run_study
from badnets.metrics import BackdoorMetrics
from badnets.records import to_json
from badnets.sweep.report import write_sweep_report
from badnets.sweep.results import SUMMARY_METRICS, SweepResults, SweepRow
from badnets.sweep.spec import SweepSpec

__all__ = ["run_sweep", "write_summary"]


def run_sweep(
    spec: SweepSpec,
    out_dir: Path,
    *,
    backend: Backend,
    backend_name: str = "local",
    allow_dirty: bool = False,
    status: Callable[[JobCounts], None] | None = None,
) -> SweepResults:
    """Run (or resume) every cell of ``spec`` into ``out_dir`` and write its summary and report.

    Raises:
        ConfigError: a bad spec, a dirty source tree (unless ``allow_dirty``), an unwritable ``out_dir``, or a
            finished cell whose spec changed.
    """
    cells = spec.expand()
    check_clean_tree(allow_dirty=allow_dirty)
    hashes: dict[str, str] = {}
    for dataset, data_dir in dict.fromkeys(cell.attack.data_key() for cell in cells):
        hashes |= dataset_source(dataset).file_hashes(data_dir)
    config = {"base": spec.base, "grid": spec.grid, "cells": spec.cells, "allow_dirty": allow_dirty}
    jobs = dedupe_jobs([Job(cell.name, cell.attack) for cell in cells])
    study = run_study(
        config, hashes, [jobs], out_dir, workers=backend.slots, backend=backend, status=status, keep_going=True
    )
    rows = []
    finished = set(study.runs.names())
    for cell in cells:
        if cell.name not in finished:
            continue
        metrics = study.runs.metrics(cell.name, BackdoorMetrics)
        rows.append(
            SweepRow(
                cell.name,
                cell.values,
                metrics.clean_accuracy,
                metrics.clean_error,
                metrics.attack_success_rate,
                metrics.backdoor_error,
                metrics.n_backdoor,
                study.runs.seconds(cell.name),
            )
        )
    results = SweepResults(
        spec.axes, rows, study.failures, config, backend_name, study.jobs, read_json(out_dir / "run.json")
    )
    write_summary(results, out_dir)
    write_sweep_report(results, out_dir)
    return results


def write_summary(results: SweepResults, out_dir: Path) -> None:
    """``summary.csv`` and ``summary.json``: one row per finished cell (swept values, then the metrics)."""
    header = ["cell", *results.sweep_axes, *SUMMARY_METRICS]
    rows = [row.flat() for row in results.rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
    write_text(out_dir / "summary.csv", text.getvalue())
    write_json(out_dir / "summary.json", {"columns": header, "rows": to_json(rows), "failed": results.failed})


def _csv_value(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, list) else value
