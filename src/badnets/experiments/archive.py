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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from badnets._io import atomic_path, ensure_writable_dir
from badnets.experiments._jobs import Job
from badnets.experiments.run_dir import RUNS

__all__ = ["ARCHIVED_FILES", "LEDGER", "RecordArchive"]

ProgressFn = Callable[[int, int, str], None]
ARCHIVED_FILES = ("run.json", "results.json")  # results.json last: it marks the job finished
LEDGER = "invocations.json"


@dataclass(frozen=True)
class RecordArchive:
    """Finished jobs' records under ``root``, laid out as the study's ``runs/`` folder (without weights)."""

    root: Path

    def restore(self, jobs: Iterable[Job], study_dir: Path) -> int:
        """Copy the archived records of ``jobs`` (and the invocation ledger) into a study folder that lacks
        them; a run directory that already holds a finished record keeps its own. Returns the jobs restored."""
        if (self.root / LEDGER).is_file() and not (study_dir / LEDGER).is_file():
            _copy(self.root / LEDGER, study_dir / LEDGER)
        return _copy_records(jobs, self.root, study_dir / RUNS, replace=False)

    def keep(self, jobs: Iterable[Job], study_dir: Path) -> int:
        """Archive the records of every finished job of ``jobs`` and the invocation ledger; returns the jobs
        newly archived. Call it only for jobs whose run directories nothing left in the study reads."""
        ensure_writable_dir(self.root)
        if (study_dir / LEDGER).is_file():
            _copy(study_dir / LEDGER, self.root / LEDGER)
        return _copy_records(jobs, study_dir / RUNS, self.root, replace=True)

    def keep_as_finished(self, jobs: Iterable[Job], study_dir: Path, progress: ProgressFn | None = None) -> ProgressFn:
        """A study's progress callback that archives each of ``jobs`` as soon as it finishes (for jobs whose
        records are all the study needs of them), then passes the event on to ``progress``."""
        archived = {job.name: job for job in jobs}

        def on_progress(done: int, total: int, name: str) -> None:
            if name in archived:
                self.keep([archived[name]], study_dir)
            if progress is not None:
                progress(done, total, name)

        return on_progress


def _copy_records(jobs: Iterable[Job], source: Path, destination: Path, *, replace: bool) -> int:
    """Copy the records of ``jobs`` finished under ``source`` into ``destination`` (the same layout); a
    finished record there is overwritten only with ``replace``. Returns the jobs ``destination`` had not finished."""
    gained = 0
    for dir_name in dict.fromkeys(job.dir_name for job in jobs):
        have, want = source / dir_name, destination / dir_name
        if not (have / "results.json").is_file():
            continue
        finished = (want / "results.json").is_file()
        if finished and not replace:
            continue
        gained += not finished
        for name in ARCHIVED_FILES:  # results.json last: a copy cut short leaves the job unfinished
            if (have / name).is_file():
                _copy(have / name, want / name)
    return gained


def _copy(source: Path, destination: Path) -> None:
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)
