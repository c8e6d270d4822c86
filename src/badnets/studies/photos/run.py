# SPDX-License-Identifier: Apache-2.0
"""Run the photos study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data import dataset_source
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.studies.photos.analysis import aggregate
from badnets.studies.photos.report import summary_table, write_photo_report
from badnets.studies.photos.results import PhotoResults
from badnets.studies.photos.spec import PhotoStudySpec, build_jobs, photo_folder

__all__ = ["run_photo_study"]


def run_photo_study(
    spec: PhotoStudySpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[PhotoResults]:
    """Train both photo classifiers (resuming), then write ``results.json``, ``report.md``/``.html`` and figures."""
    jobs = build_jobs(spec)
    hashes = dataset_source(photo_folder(spec)).file_hashes(spec.data_dir)
    study = run_study(asdict(spec), hashes, [jobs], out_dir, workers=spec.workers, progress=progress, backend=backend)
    results = study.finish(aggregate(spec, study.runs, out_dir), out_dir)
    write_photo_report(results, out_dir)
    return StudySummary(results, summary_table)
