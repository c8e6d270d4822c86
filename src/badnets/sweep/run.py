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

from badnets._io import ensure_writable_dir, read_json, run_manifest, write_json, write_text
from badnets.data import dataset_source
from badnets.experiments._jobs import Backend, Job, JobCounts, dedupe_jobs, run_jobs
from badnets.experiments._study import check_clean_tree
from badnets.experiments.run_dir import RUNS
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
    ensure_writable_dir(out_dir)
    write_json(out_dir / "run.json", run_manifest(config, None, hashes))
    jobs = dedupe_jobs([Job(cell.name, cell.attack) for cell in cells])
    failures: dict[str, str] = {}
    timing = run_jobs(jobs, out_dir / RUNS, backend=backend, status=status, keep_going=True, failures=failures)
    rows = []
    for cell, job in zip(cells, jobs, strict=True):
        if cell.name in failures:
            continue
        finished = read_json(out_dir / RUNS / job.dir_name / "results.json")
        metrics = BackdoorMetrics.from_json(finished["metrics"])
        rows.append(
            SweepRow(
                cell.name,
                cell.values,
                metrics.clean_accuracy,
                metrics.clean_error,
                metrics.attack_success_rate,
                metrics.backdoor_error,
                metrics.n_backdoor,
                float(finished.get("timing", {}).get("job_seconds", 0.0)),
            )
        )
    results = SweepResults(spec.axes, rows, failures, config, backend_name, timing, read_json(out_dir / "run.json"))
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
