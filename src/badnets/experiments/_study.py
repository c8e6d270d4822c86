# SPDX-License-Identifier: Apache-2.0
"""What every case study shares: a manifest, resumable parallel jobs, and a ledger of the invocations they took.

A study is a list of ``run_attack`` jobs plus an aggregation. ``run_study`` writes ``out/run.json``, trains the
unfinished jobs into ``out/runs/<name>`` (resuming a killed run), records every invocation's wall time in
``out/invocations.json`` and returns the finished jobs (``FinishedJobs``: each job's ``results.json``, read by the
study's analysis as typed records) with the timing the report shows.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from badnets._io import ensure_writable_dir, git_commit, read_json, run_manifest, write_json
from badnets.errors import ConfigError
from badnets.experiments._jobs import Backend, Job, JobCounts, run_jobs
from badnets.experiments.run_dir import RUNS
from badnets.records import Invocation, JobsTiming, StudyTiming, from_json, to_json
from badnets.train import TrainSpec

__all__ = [
    "FinishedJobs",
    "Phase",
    "StudyRecipe",
    "StudyResults",
    "StudyRuns",
    "StudySummary",
    "check_clean_tree",
    "run_study",
]

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True, kw_only=True)
class StudyRecipe:
    """What every case study's spec shares: the training recipe, the parallelism and where the data are.

    Attributes:
        workers: models trained in parallel (on CPU, one thread each).
        quick: a reduced demonstration run (reports say so and do not grade it against the targets).
        allow_dirty: the study was started from a source tree with uncommitted changes, knowingly.
    """

    batch_size: int = 128
    lr: float = 3e-3
    label_smoothing: float = 0.1
    workers: int = 2
    device: str = "auto"
    data_dir: str | None = None
    quick: bool = False
    allow_dirty: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")

    def train_spec(self, epochs: int) -> TrainSpec:
        return TrainSpec(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            label_smoothing=self.label_smoothing,
            device=self.device,
        )


def check_clean_tree(*, allow_dirty: bool) -> None:
    """Refuse to start a study whose results would name a commit with uncommitted changes (``-dirty``).

    Raises:
        ConfigError: the badnets source tree is dirty and ``allow_dirty`` is False.
    """
    commit = git_commit()
    if commit is not None and commit.endswith("-dirty") and not allow_dirty:
        raise ConfigError(
            f"the badnets source tree has uncommitted changes ({commit}), so the results could not be repeated "
            "from a commit; commit them first, or set allow_dirty (--allow-dirty; recorded in the results)"
        )


class _InvocationLedger:
    """``invocations.json``: wall time and models trained by every invocation that trained something.

    A study that is killed and resumed spans several invocations; the report sums them so its wall time and
    compute share cover the whole study, not just the last command. The entry is rewritten after every
    finished job, so even a killed invocation keeps what it did up to its last finished model.
    """

    def __init__(self, path: Path, *, workers: int) -> None:
        self.path = path
        self.previous = from_json(list[Invocation], read_json(path)) if path.is_file() else []
        self.entry = Invocation(datetime.now(UTC).isoformat(timespec="seconds"), workers, 0, 0.0)

    def record(self, wall_seconds: float, *, models_trained: int) -> None:
        self.entry = replace(
            self.entry, wall_seconds=wall_seconds, models_trained=self.entry.models_trained + models_trained
        )
        write_json(self.path, to_json(self.invocations()))

    def invocations(self) -> list[Invocation]:
        return [*self.previous, self.entry] if self.entry.models_trained else list(self.previous)


class StudyResults(Protocol):
    """A study's typed results: a frozen dataclass whose last fields are the timing and the manifest."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def timing(self) -> StudyTiming | None: ...


R = TypeVar("R", bound=StudyResults)
Rec = TypeVar("Rec")


class FinishedJobs:
    """The finished jobs of a study, by job name, read as typed records.

    Each job's ``results.json`` holds the configuration it ran (a plain blob) and its scores under ``metrics``
    (or, for an evaluation job, is one record as a whole); the study's analysis names the record type it expects,
    so a renamed or missing key fails here, naming the job, and the analysis works with checked attributes.
    """

    def __init__(self, results: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._results: dict[str, Mapping[str, Any]] = dict(results or {})

    def __or__(self, other: FinishedJobs) -> FinishedJobs:
        return FinishedJobs({**self._results, **other._results})

    def names(self, prefix: str = "") -> list[str]:
        """The jobs whose name starts with ``prefix``, in the order the study lists them."""
        return [name for name in self._results if name.startswith(prefix)]

    def metrics(self, name: str, kind: type[Rec]) -> Rec:
        """Job ``name``'s scores as a ``kind`` record."""
        return from_json(kind, self._get(name).get("metrics"), f"job {name!r}: metrics")

    def group(self, prefix: str, kind: type[Rec]) -> list[Rec]:
        """The scores of every job under ``prefix`` (in the study's order) as ``kind`` records."""
        return [self.metrics(name, kind) for name in self.names(prefix)]

    def record(self, name: str, kind: type[Rec]) -> Rec:
        """Job ``name``'s whole ``results.json`` as a ``kind`` record."""
        return from_json(kind, self._get(name), f"job {name!r}")

    def config(self, name: str) -> Mapping[str, Any]:
        """The configuration job ``name`` ran (a plain blob, as recorded)."""
        return typing.cast(Mapping[str, Any], self._get(name).get("config", {}))

    def seconds(self, name: str) -> float:
        """Job ``name``'s own recorded training and scoring time."""
        return float(self._get(name).get("timing", {}).get("job_seconds", 0.0))

    def job_seconds(self) -> float:
        """The jobs' own recorded training and scoring time, summed."""
        return sum(self.seconds(name) for name in self._results)

    def _get(self, name: str) -> Mapping[str, Any]:
        if name not in self._results:
            raise ValueError(f"the study has no finished job {name!r}")
        return self._results[name]


@dataclass(frozen=True)
class StudyRuns:
    """The finished jobs, and the timing to report (including the ledger)."""

    runs: FinishedJobs
    jobs: JobsTiming
    invocations: list[Invocation]
    all_models_job_seconds: float
    start: float
    failures: dict[str, str] = field(default_factory=dict)  # job name → one-line error (``keep_going`` only)

    def finish(self, results: R, out_dir: Path) -> R:
        """The aggregated ``results`` with the timing (wall time up to now) and the study manifest."""
        timing = StudyTiming(
            **asdict(self.jobs),
            invocations=self.invocations,
            all_models_job_seconds=self.all_models_job_seconds,
            wall_seconds=time.perf_counter() - self.start,
        )
        return replace(results, timing=timing, manifest=read_json(out_dir / "run.json"))


@dataclass(frozen=True)
class StudySummary(Generic[R]):
    """A finished study: its results and the terminal table of its targets."""

    results: R
    table: Callable[[R], Any]

    def console_table(self) -> Any:
        return self.table(self.results)


Phase = list[Job] | Callable[[FinishedJobs], list[Job]]


def run_study(
    config: Mapping[str, Any],
    hashes: dict[str, str],
    phases: Sequence[Phase],
    out_dir: Path,
    *,
    workers: int,
    progress: ProgressFn | None = None,
    backend: Backend | None = None,
    status: Callable[[JobCounts], None] | None = None,
    keep_going: bool = False,
    phase_done: Callable[[int], None] | None = None,
) -> StudyRuns:
    """Write the manifest, run (or resume) every job, and collect their results.

    Args:
        config: the study spec as plain values (for ``run.json``).
        hashes: SHA-256 of the data files (checked before any worker starts, so missing data fail fast).
        phases: the jobs (run directories assigned by ``dedupe_jobs``), in phases run one after the other; a
            phase may be a function of the results so far (e.g. retraining jobs that need trained models).
        backend: where the jobs run (default: ``LocalBackend(workers)``). A later phase's jobs read earlier runs
            from ``out_dir``, so on a Ray cluster they need ``out_dir`` at the same path on every node.
        status: called with the finished / running / failed counts as jobs end.
        keep_going: a failed job does not stop the others; it is left out of ``runs`` and named in
            ``failures`` (else its error is raised).
        phase_done: called with a phase's index once its jobs have finished (e.g. to archive their records).
    """
    start = time.perf_counter()
    ensure_writable_dir(out_dir)
    write_json(out_dir / "run.json", run_manifest(dict(config), None, hashes))
    ledger = _InvocationLedger(out_dir / "invocations.json", workers=workers)

    def on_progress(done: int, total: int, name: str) -> None:
        if name != "starting":
            ledger.record(time.perf_counter() - start, models_trained=1)
        if progress is not None:
            progress(done, total, name)

    runs = FinishedJobs()
    timing = JobsTiming(0, 0, workers, 0.0, 0.0, 0.0, 0.0)
    failures: dict[str, str] = {}
    for index, phase in enumerate(phases):
        jobs = phase if isinstance(phase, list) else phase(runs)
        timing += run_jobs(
            jobs,
            out_dir / RUNS,
            workers=workers,
            backend=backend,
            progress=on_progress,
            status=status,
            keep_going=keep_going,
            failures=failures,
        )
        failed_dirs = {job.dir_name for job in jobs if job.name in failures}  # jobs sharing a run share its fate
        finished = [job for job in jobs if job.dir_name not in failed_dirs]
        runs |= FinishedJobs({job.name: read_json(out_dir / RUNS / job.dir_name / "results.json") for job in finished})
        if phase_done is not None:
            phase_done(index)
    if timing.models_trained_now:
        ledger.record(time.perf_counter() - start, models_trained=0)
    return StudyRuns(runs, timing, ledger.invocations(), runs.job_seconds(), start, failures)
