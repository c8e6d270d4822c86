# SPDX-License-Identifier: Apache-2.0
"""Run the traffic study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data.lisa import lisa_file_hashes
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.experiments.archive import RecordArchive
from badnets.experiments.object_detection import DetectorSpec
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
    archive: Path | None = None,
) -> StudySummary[TrafficResults]:
    """Train every model (resuming), then write ``results.json``, ``report.md``/``.html`` and the plots.

    ``archive``: a folder that keeps every finished detector's records (no weights: the study reports a detector
    from its record alone) and restores them into ``out_dir`` first, so that the detectors, hours of CPU, can be
    trained across machines that do not share ``out_dir`` (e.g. the folder committed to git). The sign
    classifiers (minutes) are retrained where their weights are missing.
    """
    hashes = lisa_file_hashes(spec.data_dir)  # fails fast, before any worker starts, if data are missing
    if spec.detector:
        hashes |= detector_spec(spec, None).file_hashes()
    jobs = build_jobs(spec)
    on_finished = progress
    if archive is not None:
        detectors = [job for job in jobs if isinstance(job.spec, DetectorSpec)]
        kept = RecordArchive(archive)
        kept.restore(detectors, out_dir)
        on_finished = kept.keep_as_finished(detectors, out_dir, progress)
    study = run_study(
        asdict(spec), hashes, [jobs], out_dir, workers=spec.workers, progress=on_finished, backend=backend
    )
    results = study.finish(aggregate(spec, study.runs, out_dir), out_dir)
    write_traffic_report(results, out_dir)
    return StudySummary(results, summary_table)
