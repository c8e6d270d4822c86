# SPDX-License-Identifier: Apache-2.0
"""The job runner reuses finished runs only when their recorded config is the job's; a study reads its finished jobs
as typed records."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, JobCounts, JobEvents, dedupe_jobs, run_jobs
from badnets.experiments._study import FinishedJobs, run_study


@dataclass(frozen=True, kw_only=True)
class CountingJob:
    """Writes its config to ``results.json`` and counts its runs in a file beside the run directories."""

    value: int
    counter: str

    def run(self, out_dir: Path) -> dict[str, float]:
        out_dir.mkdir(parents=True, exist_ok=True)
        counter = Path(self.counter)
        counter.write_text(str(int(counter.read_text() or "0") + 1) if counter.exists() else "1")
        (out_dir / "results.json").write_text(json.dumps({"config": asdict(self), "timing": {"job_seconds": 0.0}}))
        return {"job_seconds": 0.0}


def test_finished_runs_are_reused_only_for_the_same_config(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    jobs = dedupe_jobs([Job(name, CountingJob(value=v, counter=counter)) for name, v in (("a", 1), ("b", 2))])
    first = run_jobs(jobs, tmp_path / "runs", workers=1)
    again = run_jobs(jobs, tmp_path / "runs", workers=1)
    assert (first.models_trained_now, again.models_trained_now) == (2, 0)
    assert Path(counter).read_text() == "2"
    changed = dedupe_jobs([Job("a", CountingJob(value=3, counter=counter))])
    with pytest.raises(ConfigError, match=r"runs/a holds a finished run of another config than job 'a'"):
        run_jobs(changed, tmp_path / "runs", workers=1)
    assert Path(counter).read_text() == "2"


@dataclass(frozen=True)
class Scores:
    """A job's scores as a study's analysis reads them."""

    value: int
    share: float


@dataclass(frozen=True, kw_only=True)
class ScoringJob:
    """Writes its config and scores (``value`` and ``value / 10``) to ``results.json``; ``drop`` leaves a key out."""

    value: int
    drop: str | None = None

    def run(self, out_dir: Path) -> dict[str, float]:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics = {k: v for k, v in {"value": self.value, "share": self.value / 10}.items() if k != self.drop}
        timing = {"job_seconds": 0.5}
        results = {"config": asdict(self), "metrics": metrics, "timing": timing}
        (out_dir / "results.json").write_text(json.dumps(results))
        return timing


def test_a_study_reads_its_finished_jobs_as_typed_records_in_its_own_order(tmp_path: Path) -> None:
    names = ("b/s0", "a/s1", "a/s0")
    phases = [dedupe_jobs([Job(n, ScoringJob(value=i)) for i, n in enumerate(names)])]
    study = run_study({"kind": "test"}, {}, phases, tmp_path, workers=1)
    assert study.runs.names() == list(names) and study.runs.names("a/") == ["a/s1", "a/s0"]
    assert study.runs.group("a/", Scores) == [Scores(1, 0.1), Scores(2, 0.2)]
    assert study.runs.metrics("b/s0", Scores) == Scores(0, 0.0)
    assert study.runs.config("a/s0") == {"value": 2, "drop": None}
    assert study.all_models_job_seconds == 1.5


def test_a_later_phase_sees_the_jobs_before_it(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def second(runs: FinishedJobs) -> list[Job]:
        seen.append(runs.names())
        return dedupe_jobs([Job("second", ScoringJob(value=runs.metrics("first", Scores).value + 1))])

    study = run_study({}, {}, [dedupe_jobs([Job("first", ScoringJob(value=4))]), second], tmp_path, workers=1)
    assert seen == [["first"]] and study.runs.metrics("second", Scores) == Scores(5, 0.5)


def test_a_job_record_that_does_not_fit_its_type_names_the_job_and_the_key(tmp_path: Path) -> None:
    phases = [dedupe_jobs([Job("model/s0", ScoringJob(value=1, drop="share"))])]
    runs = run_study({}, {}, phases, tmp_path, workers=1).runs
    with pytest.raises(ValueError, match=r"job 'model/s0': metrics has no 'share'"):
        runs.metrics("model/s0", Scores)
    with pytest.raises(ValueError, match=r"the study has no finished job 'model/s1'"):
        runs.metrics("model/s1", Scores)


@dataclass(frozen=True, kw_only=True)
class FailingJob:
    """Fails when ``fail`` is set, else finishes like ``CountingJob``."""

    value: int
    fail: bool
    counter: str

    def run(self, out_dir: Path) -> dict[str, float]:
        if self.fail:
            raise ValueError("this job was told to fail")
        return CountingJob(value=self.value, counter=self.counter).run(out_dir)


@pytest.mark.parametrize("workers", [1, 2])
def test_keep_going_runs_the_other_jobs_and_names_the_failed_one(tmp_path: Path, workers: int) -> None:
    counter = str(tmp_path / "count")
    jobs = dedupe_jobs(
        [Job(name, FailingJob(value=v, fail=name == "b", counter=counter)) for v, name in enumerate("abc")]
    )
    with pytest.raises(ValueError, match="told to fail"):
        run_jobs(jobs, tmp_path / "stop", workers=workers)
    failures: dict[str, str] = {}
    counts: list[JobCounts] = []
    timing = run_jobs(jobs, tmp_path / "go", workers=workers, keep_going=True, failures=failures, status=counts.append)
    assert failures == {"b": "ValueError: this job was told to fail"}
    assert timing.models_trained_now == 2 and (tmp_path / "go" / "c" / "results.json").is_file()
    assert (counts[-1].done, counts[-1].failed, counts[-1].running, counts[-1].total) == (2, 1, 0, 3)


def test_a_study_that_keeps_going_leaves_failed_jobs_and_their_twins_out(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    spec = {name: FailingJob(value=v, fail=name == "b", counter=counter) for v, name in enumerate("abc")}
    jobs = dedupe_jobs([*(Job(n, s) for n, s in spec.items()), Job("b-again", spec["b"])])  # shares b's run
    study = run_study({}, {}, [jobs], tmp_path, workers=1, keep_going=True)
    assert study.failures == {"b": "ValueError: this job was told to fail"}
    assert study.runs.names() == ["a", "c"] and study.runs.seconds("a") == 0.0


class _GrowingBackend:
    """Runs jobs inline; reports one slot until it has 'connected' (its first job), then three."""

    def __init__(self) -> None:
        self.connected = False

    @property
    def slots(self) -> int:
        return 3 if self.connected else 1

    def run(self, todo: list[Job], runs_dir: Path, events: JobEvents) -> None:
        self.connected = True
        for job in todo:
            events.finished(job, job.spec.run(runs_dir / job.dir_name))


def test_progress_asks_the_backend_its_slots_after_it_connected(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    jobs = dedupe_jobs([Job(f"j{v}", CountingJob(value=v, counter=counter)) for v in range(5)])
    seen: list[JobCounts] = []
    timing = run_jobs(jobs, tmp_path / "runs", backend=_GrowingBackend(), status=seen.append)
    assert seen[0].running == 1 and seen[1].running == 3 and seen[-1].running == 0
    assert timing.workers == 3


def test_the_ray_backend_remembers_the_clusters_size_after_disconnecting(monkeypatch: pytest.MonkeyPatch) -> None:
    from badnets.experiments import ray_backend

    class FakeRay:
        initialized = True

        def is_initialized(self) -> bool:
            return self.initialized

        def cluster_resources(self) -> dict[str, float]:
            return {"CPU": 16.0}

    fake = FakeRay()
    monkeypatch.setattr(ray_backend, "_ray", lambda: fake)
    backend = ray_backend.RayBackend(address="10.0.0.1:6379", workers=2, num_cpus=2.0)
    assert backend.slots == 8
    fake.initialized = False
    assert backend.slots == 8 and ray_backend.RayBackend(workers=2).slots == 2
