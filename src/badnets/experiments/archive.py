# SPDX-License-Identifier: Apache-2.0
"""A study's finished records kept outside its run directories, so that a study too long for one machine's
session can be carried across machines that do not share the study folder (e.g. committed to git).

A run directory holds a job's record (``results.json``), its manifest (``run.json``: commit, versions, data
hashes) and its weights. The archive keeps the first two of every finished job, in the same layout
(``<archive>/<run directory>/results.json``), plus the study's ``invocations.json``; it never keeps weights.
Restored into a fresh study folder, the records make ``run_jobs`` skip those jobs as finished. Weights are not
restored, so a study archives a job only once nothing left in the study reads its run directory (a trained model
once its audits and repairs are done): an archived model is never asked for again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from badnets._io import atomic_path, ensure_writable_dir
from badnets.experiments._jobs import Job
from badnets.experiments.run_dir import RUNS

__all__ = ["ARCHIVED_FILES", "LEDGER", "RecordArchive"]

ARCHIVED_FILES = ("run.json", "results.json")  # results.json last: it marks the job finished
LEDGER = "invocations.json"


@dataclass(frozen=True)
class RecordArchive:
    """Finished jobs' records under ``root``, laid out as the study's ``runs/`` folder (without weights)."""

    root: Path

    def restore(self, jobs: Iterable[Job], study_dir: Path) -> int:
        """Copy the archived records of ``jobs`` (and the invocation ledger) into a study folder that lacks
        them; a run directory that already holds a finished record keeps its own. Returns the jobs restored."""
        _copy_if_missing(self.root / LEDGER, study_dir / LEDGER)
        runs_dir, restored = study_dir / RUNS, 0
        for dir_name in dict.fromkeys(job.dir_name for job in jobs):
            kept, run = self.root / dir_name, runs_dir / dir_name
            if (kept / "results.json").is_file() and not (run / "results.json").is_file():
                for name in ARCHIVED_FILES:
                    _copy_if_missing(kept / name, run / name)
                restored += 1
        return restored

    def keep(self, jobs: Iterable[Job], study_dir: Path) -> int:
        """Archive the records of every finished job of ``jobs`` and the invocation ledger; returns the jobs
        newly archived. Call it only for jobs whose run directories nothing left in the study reads."""
        ensure_writable_dir(self.root)
        if (study_dir / LEDGER).is_file():
            _copy(study_dir / LEDGER, self.root / LEDGER)
        runs_dir, kept = study_dir / RUNS, 0
        for dir_name in dict.fromkeys(job.dir_name for job in jobs):
            run, archived = runs_dir / dir_name, self.root / dir_name
            if not (run / "results.json").is_file():
                continue
            kept += not (archived / "results.json").is_file()
            for name in ARCHIVED_FILES:
                if (run / name).is_file():
                    _copy(run / name, archived / name)
        return kept


def _copy(source: Path, destination: Path) -> None:
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def _copy_if_missing(source: Path, destination: Path) -> None:
    if source.is_file() and not destination.is_file():
        _copy(source, destination)
