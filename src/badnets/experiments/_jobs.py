# SPDX-License-Identifier: Apache-2.0
"""Run many jobs (``run_attack`` and the like) on a backend, skipping the ones already finished.

The local backend runs them in worker processes on this machine. On CPU each worker uses one thread: for a model
as small as the paper CNN, two one-thread processes train ~1.5× more images per second than one two-thread
process. Workers die with the parent (Linux ``PR_SET_PDEATHSIG``), so a killed study leaves no orphan still
writing into its run directories. The Ray backend (``badnets.experiments.ray_backend``) runs them on a cluster.
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

from badnets.errors import one_line
from badnets.experiments.run_dir import finished_run, run_dir_name
from badnets.records import JobsTiming

__all__ = ["Backend", "Job", "JobCounts", "JobEvents", "JobSpec", "LocalBackend", "dedupe_jobs", "run_jobs"]


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


@dataclass(frozen=True)
class JobCounts:
    """Where a batch of jobs stands: finished (including those finished before), running, failed, in all."""

    done: int
    running: int
    failed: int
    total: int


class JobEvents(Protocol):
    """What a backend reports back; ``finished`` is called after the job's run directory is complete."""

    def finished(self, job: Job, timing: dict[str, float]) -> None: ...

    def failed(self, job: Job, error: BaseException) -> None: ...


class Backend(Protocol):
    """Runs jobs, each into ``runs_dir / job.dir_name``, and reports each one's end to ``events``."""

    @property
    def slots(self) -> int:
        """How many jobs run at once."""
        ...

    def run(self, todo: list[Job], runs_dir: Path, events: JobEvents) -> None: ...


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


@dataclass(frozen=True)
class LocalBackend:
    """``workers`` processes on this machine (inline when 1), each job writing its run directory in place."""

    workers: int = 1

    @property
    def slots(self) -> int:
        return self.workers

    def run(self, todo: list[Job], runs_dir: Path, events: JobEvents) -> None:
        if self.workers == 1:
            for job in todo:
                try:
                    timing = _run_one(job.spec, runs_dir / job.dir_name)
                except Exception as error:
                    events.failed(job, error)
                else:
                    events.finished(job, timing)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker) as pool:
            pending: dict[Future[dict[str, float]], Job] = {
                pool.submit(_run_one, job.spec, runs_dir / job.dir_name): job for job in todo
            }
            try:
                while pending:
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ready:
                        job = pending.pop(future)
                        problem = future.exception()
                        if problem is None:
                            events.finished(job, future.result())
                        else:
                            events.failed(job, problem)
            except BaseException:
                _abort(pool)
                raise


class _Tally:
    """The events of one ``run_jobs`` call: counts for the progress display, summed timings, failures."""

    def __init__(
        self,
        done: int,
        total: int,
        slots: Callable[[], int],
        *,
        keep_going: bool,
        progress: Callable[[int, int, str], None] | None,
        status: Callable[[JobCounts], None] | None,
    ) -> None:
        self.done, self.total, self.slots, self.keep_going = done, total, slots, keep_going
        self.failures: dict[str, str] = {}
        self.sums = {"train_seconds": 0.0, "evaluate_seconds": 0.0, "job_seconds": 0.0}
        self.progress, self.status = progress, status

    def counts(self) -> JobCounts:
        left = self.total - self.done - len(self.failures)
        # asked each time: a cluster's size is known only once the backend has connected, and it may change
        return JobCounts(self.done, min(self.slots(), left), len(self.failures), self.total)

    def report(self, name: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, name)
        if self.status is not None:
            self.status(self.counts())

    def finished(self, job: Job, timing: dict[str, float]) -> None:
        self.done += 1
        for key in self.sums:
            self.sums[key] += float(timing.get(key, 0.0))
        self.report(job.name)

    def failed(self, job: Job, error: BaseException) -> None:
        if not self.keep_going:
            raise error
        self.failures[job.name] = f"{type(error).__name__}: {one_line(error, 300)}"
        self.report(job.name)


def run_jobs(
    jobs: list[Job],
    runs_dir: Path,
    *,
    workers: int = 1,
    backend: Backend | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    status: Callable[[JobCounts], None] | None = None,
    keep_going: bool = False,
    failures: dict[str, str] | None = None,
) -> JobsTiming:
    """Run every unfinished job; returns timing: wall seconds and summed train / evaluate / total job seconds.

    Jobs run on ``backend`` (default: ``LocalBackend(workers)``). A job's failure stops the batch and re-raises
    here, unless ``keep_going``: then the other jobs run and ``failures`` (job name → one-line error) collects
    the failed ones. Finished jobs stay finished either way.
    """
    assert all(job.dir_name for job in jobs), "give jobs their run directories with dedupe_jobs first"
    backend = backend or LocalBackend(workers)
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.dir_name, job)  # a shared run goes by its first job's name
    todo = [j for j in unique.values() if not finished_run(runs_dir / j.dir_name, j.spec, j.name)]
    tally = _Tally(
        len(unique) - len(todo),
        len(unique),
        lambda: backend.slots,
        keep_going=keep_going,
        progress=progress,
        status=status,
    )
    start = time.perf_counter()
    tally.report("starting")
    if todo:
        backend.run(todo, runs_dir, tally)
    if failures is not None:
        failures.update(tally.failures)
    return JobsTiming(
        tally.total, len(todo) - len(tally.failures), backend.slots, time.perf_counter() - start, **tally.sums
    )
