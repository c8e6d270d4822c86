# SPDX-License-Identifier: Apache-2.0
"""Run the mnist study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data.mnist import mnist_file_hashes
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.studies.mnist.analysis import aggregate
from badnets.studies.mnist.report import summary_table, write_mnist_report
from badnets.studies.mnist.results import MnistResults
from badnets.studies.mnist.spec import MnistStudySpec, build_jobs

__all__ = ["run_mnist_study"]


def run_mnist_study(
    spec: MnistStudySpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[MnistResults]:
    """Train every model of the study (resuming), then write ``results.json``, ``report.md``/``.html``, PNGs."""
    hashes = mnist_file_hashes(spec.data_dir)  # fails fast, before any worker starts, if data are missing
    jobs = build_jobs(spec)
    study = run_study(asdict(spec), hashes, [jobs], out_dir, workers=spec.workers, progress=progress, backend=backend)
    results = study.finish(aggregate(spec, study.runs, out_dir), out_dir)
    write_mnist_report(results, out_dir)
    return StudySummary(results, summary_table)
