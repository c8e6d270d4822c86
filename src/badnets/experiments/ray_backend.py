# SPDX-License-Identifier: Apache-2.0
"""Run jobs on a Ray cluster (``pip install 'badnets[ray]'``): one Ray task per job, no shared filesystem needed.

Why Ray core tasks and not Ray Tune: a job here is a whole training run with its own resume protocol and a run
directory the driver owns; Tune's trial scheduler, checkpoint syncing and result dataframes would duplicate what
``run_jobs`` already does (skip finished runs, refuse a changed config) and hide the run directories behind its
own layout. A task per job keeps one code path for both backends.

- Each task runs its job into a temporary directory on whichever node Ray picks and returns every file it wrote;
  the driver writes them into ``runs/<job>`` (``results.json`` last, then one rename), so nothing half-written
  ever looks finished, and killing the driver loses only the jobs still in flight: re-running the command skips
  the finished ones.
- A dataset goes into the object store once per batch (``ray.put``), not once per job, and the driver computes
  its file hashes for every run's manifest; workers need neither the data files nor the ``data_dir``.
- A task whose worker or node dies is retried elsewhere (``max_retries``); an exception raised by the job itself
  is not retried (it would fail again) and is reported as that job's failure.
- Per-task resources: ``num_cpus`` (default 1, matching the one-thread training of the local backend, so a job's
  metrics are the same bits whichever backend or node ran it, on the same CPU kind) and fractional ``num_gpus``,
  so several small models share one GPU.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, JobEvents

__all__ = ["RayBackend"]


@runtime_checkable
class _SharedDataSpec(Protocol):
    """A job spec whose data can be loaded once and shared (``AttackSpec``)."""

    def data_key(self) -> Any: ...

    def load_data(self) -> Any: ...

    def run(self, out_dir: Path, data: Any = None) -> dict[str, float]: ...


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the Ray backend needs Ray: pip install -c constraints.txt 'badnets[ray]' (or use --backend local)"
        ) from None
    return ray


def _run_in_temp_dir(spec: Any, data: Any) -> tuple[dict[str, float], dict[str, bytes]]:
    """The Ray task: run the job into a fresh temporary directory and return its timing and every file."""
    with tempfile.TemporaryDirectory(prefix="badnets-job-") as tmp:
        out = Path(tmp) / "run"
        timing = spec.run(out) if data is None else spec.run(out, data)
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return timing, files


def write_run_dir(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a job's files as its run directory: into a sibling first (``results.json`` last), then one rename."""
    partial = run_dir.with_name(f".{run_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    for name in sorted(files, key=lambda n: n == "results.json"):
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished earlier attempt (a local checkpoint); the finished run replaces it
    partial.rename(run_dir)


@dataclass(frozen=True)
class RayBackend:
    """Jobs as Ray tasks on the cluster at ``address``, or on a Ray started here with ``workers`` CPUs.

    Attributes:
        address: ``HOST:PORT`` of a running cluster's head (``ray start --head``); None starts a private local
            Ray for this batch and stops it after.
        workers: CPUs of the local Ray (ignored with ``address``).
        num_cpus, num_gpus: resources one job asks for (fractional GPUs share a device).
        max_retries: times a job is re-run after its worker or node died.
    """

    address: str | None = None
    workers: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3
    _seen_slots: list[int] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_cpus <= 0 or self.num_gpus < 0 or self.max_retries < 0:
            raise ConfigError(
                f"Ray resources must be positive (num_cpus {self.num_cpus}, num_gpus {self.num_gpus}, "
                f"max_retries {self.max_retries})"
            )

    @property
    def slots(self) -> int:
        """Jobs the connected cluster runs at once; before connecting (or after) the last count seen, else
        ``workers``."""
        ray = _ray()
        if ray.is_initialized():
            cpus = float(ray.cluster_resources().get("CPU", self.workers))
            self._seen_slots[:] = [max(1, int(cpus // self.num_cpus))]
        return self._seen_slots[0] if self._seen_slots else self.workers

    def run(self, todo: list[Job], runs_dir: Path, events: JobEvents) -> None:
        ray = _ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            _ = self.slots  # remember the cluster's size while connected
            self._run(ray, todo, runs_dir, events)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray starts its workers at nice 15, so a job starves beside any other busy process (measured here: 20-40×
        # slower next to one training run); the local backend's workers run at normal priority, so these do too.
        options: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "runtime_env": {"env_vars": {"RAY_worker_niceness": "0"}},
        }
        try:
            if self.address is None:
                ray.init(num_cpus=self.workers, include_dashboard=False, _node_ip_address="127.0.0.1", **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError) as error:
            raise ConfigError(
                f"cannot reach a Ray cluster at {self.address}: {error}; start one with `ray start --head` and "
                "pass its HOST:PORT"
            ) from None

    def _run(self, ray: Any, todo: list[Job], runs_dir: Path, events: JobEvents) -> None:
        shared: dict[Any, Any] = {}
        for job in todo:
            if isinstance(job.spec, _SharedDataSpec) and job.spec.data_key() not in shared:
                shared[job.spec.data_key()] = ray.put(job.spec.load_data())
        task = ray.remote(_run_in_temp_dir).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries, retry_exceptions=False
        )
        pending: dict[Any, Job] = {}
        for job in todo:
            data = shared.get(job.spec.data_key()) if isinstance(job.spec, _SharedDataSpec) else None
            pending[task.remote(job.spec, data)] = job
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        timing, files = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        events.failed(job, error.cause if isinstance(error.cause, BaseException) else error)
                    except ray.exceptions.RayError as error:  # the worker or node died more often than retried
                        events.failed(job, error)
                    else:
                        write_run_dir(runs_dir / job.dir_name, files)
                        events.finished(job, timing)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
