# SPDX-License-Identifier: Apache-2.0
"""Run the defenses study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets._io import ensure_writable_dir
from badnets.data import SOURCES
from badnets.experiments._jobs import Backend
from badnets.experiments._study import Phase, StudySummary, run_study
from badnets.studies.defenses.analysis import aggregate
from badnets.studies.defenses.report import summary_table, write_defense_report
from badnets.studies.defenses.results import DefenseResults
from badnets.studies.defenses.spec import DefenseStudySpec, build_jobs, eval_jobs

__all__ = ["run_defense_study"]


def run_defense_study(
    spec: DefenseStudySpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[DefenseResults]:
    """Train the zoo and evaluate every defense on it (resuming), then write the scoreboard report."""
    hashes = SOURCES["mnist"].file_hashes(spec.data_dir)
    if spec.traffic:
        hashes |= SOURCES["lisa"].file_hashes(spec.data_dir)
    ensure_writable_dir(out_dir)
    trained = build_jobs(spec, out_dir)
    phases: list[Phase] = [trained, eval_jobs(spec, trained, out_dir)]
    study = run_study(asdict(spec), hashes, phases, out_dir, workers=spec.workers, progress=progress, backend=backend)
    results = study.finish(aggregate(spec, study.runs), out_dir)
    write_defense_report(results, out_dir)
    return StudySummary(results, summary_table)
