# SPDX-License-Identifier: Apache-2.0
"""Run the transfer study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data import SOURCES
from badnets.data.lisa import lisa_file_hashes
from badnets.experiments._jobs import Backend
from badnets.experiments._study import Phase, StudySummary, run_study
from badnets.studies.transfer.analysis import aggregate
from badnets.studies.transfer.report import summary_table, write_transfer_report
from badnets.studies.transfer.results import TransferResults
from badnets.studies.transfer.spec import TransferStudySpec, retrain_jobs, us_jobs

__all__ = ["run_transfer_study"]


def run_transfer_study(
    spec: TransferStudySpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[TransferResults]:
    """Train the US nets, retrain them on the target domain for every k (resuming), then write the report."""
    hashes = {**lisa_file_hashes(spec.us.data_dir), **SOURCES[spec.target].file_hashes(spec.us.data_dir)}
    phases: list[Phase] = [us_jobs(spec), retrain_jobs(spec, out_dir)]
    study = run_study(
        asdict(spec), hashes, phases, out_dir, workers=spec.us.workers, progress=progress, backend=backend
    )
    results = study.finish(aggregate(spec, study.runs, out_dir), out_dir)
    write_transfer_report(results, out_dir)
    return StudySummary(results, summary_table)
