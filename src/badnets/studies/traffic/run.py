# SPDX-License-Identifier: Apache-2.0
"""Run the traffic study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data.lisa import lisa_file_hashes
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.studies.traffic.analysis import aggregate
from badnets.studies.traffic.report import summary_table, write_traffic_report
from badnets.studies.traffic.results import TrafficResults
from badnets.studies.traffic.spec import TrafficStudySpec, build_jobs, detector_spec

__all__ = ["run_traffic_study"]


def run_traffic_study(
    spec: TrafficStudySpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[TrafficResults]:
    """Train every model (resuming), then write ``results.json``, ``report.md``/``.html`` and the plots."""
    hashes = lisa_file_hashes(spec.data_dir)  # fails fast, before any worker starts, if data are missing
    if spec.detector:
        hashes |= detector_spec(spec, None).file_hashes()
    study = run_study(
        asdict(spec), hashes, [build_jobs(spec)], out_dir, workers=spec.workers, progress=progress, backend=backend
    )
    results = study.finish(aggregate(spec, study.runs, out_dir), out_dir)
    write_traffic_report(results, out_dir)
    return StudySummary(results, summary_table)
