# SPDX-License-Identifier: Apache-2.0
"""Run many jobs (``run_attack`` and the like), in parallel worker processes, skipping the ones already finished.

On CPU each worker uses one thread: for a model as small as the paper CNN, two one-thread processes train
~1.5× more images per second than one two-thread process. Workers die with the parent (Linux
``PR_SET_PDEATHSIG``), so a killed study leaves no orphan still writing into its run directories.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from badnets.experiments.run_dir import finished_run, run_dir_name
from badnets.records import JobsTiming

__all__ = ["Job", "JobSpec", "dedupe_jobs", "run_jobs"]


class JobSpec(Protocol):
    """A picklable spec whose ``run`` writes ``out_dir/results.json`` last and returns its timing (seconds)."""

    def run(self, out_dir: Path) -> dict[str, float]: ...


@dataclass(frozen=True)
class Job:
    """One model to train. ``dir_name`` is shared by jobs whose specs coincide (see ``dedupe_jobs``)."""

    name: str
    spec: JobSpec
    dir_name: str = ""


def dedupe_jobs(jobs: list[Job]) -> list[Job]:
    """Give every job a run directory; jobs with identical specs share the first one's."""
    first: dict[str, str] = {}
    out = []
    for job in jobs:
        key = repr(job.spec)
        first.setdefault(key, run_dir_name(job.name))
        out.append(replace(job, dir_name=first[key]))
    return out


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _abort(pool: ProcessPoolExecutor) -> None:
    """Cancel queued jobs and stop running ones, so a failure surfaces now rather than after every job ran.

    Stopped jobs keep their last checkpoint and resume on the next run. ``ProcessPoolExecutor`` has no public
    way to stop running work before Python 3.14 (``kill_workers``), hence the private process table.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()


def _run_one(spec: JobSpec, run_dir: Path) -> dict[str, float]:
    return spec.run(run_dir)


def run_jobs(
    jobs: list[Job],
    runs_dir: Path,
    *,
    workers: int,
    progress: Callable[[int, int, str], None] | None = None,
) -> JobsTiming:
    """Run every unfinished job; returns timing: wall seconds and summed train / evaluate / total job seconds.

    Jobs run in ``workers`` processes (inline when ``workers == 1``). A job's failure stops the study and
    re-raises in the parent; finished jobs stay finished.
    """
    assert all(job.dir_name for job in jobs), "give jobs their run directories with dedupe_jobs first"
    unique = {job.dir_name: job for job in jobs}
    todo = [j for j in unique.values() if not finished_run(runs_dir / j.dir_name, j.spec, j.name)]
    total, done = len(unique), len(unique) - len(todo)
    sums = {"train_seconds": 0.0, "evaluate_seconds": 0.0, "job_seconds": 0.0}
    start = time.perf_counter()

    def finished(timing: dict[str, float], name: str) -> None:
        nonlocal done
        done += 1
        for key in sums:
            sums[key] += float(timing.get(key, 0.0))
        if progress is not None:
            progress(done, total, name)

    if progress is not None:
        progress(done, total, "starting")
    if workers == 1:
        for job in todo:
            finished(_run_one(job.spec, runs_dir / job.dir_name), job.name)
    elif todo:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            pending: dict[Future[dict[str, float]], Job] = {
                pool.submit(_run_one, job.spec, runs_dir / job.dir_name): job for job in todo
            }
            try:
                while pending:
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ready:
                        job = pending.pop(future)
                        finished(future.result(), job.name)
            except BaseException:
                _abort(pool)
                raise
    return JobsTiming(total, len(todo), workers, time.perf_counter() - start, **sums)
