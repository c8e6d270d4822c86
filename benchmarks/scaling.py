# SPDX-License-Identifier: Apache-2.0
"""Scaling ratios for ``badnets sweep`` and the trainer, measured side by side in one run (never absolute times).

* ``ray_overhead``: the same 12-cell MNIST sweep on a Ray started here (2 CPUs) vs the local pool (2 workers):
  wall-time ratio − 1, Ray's start-up included (goal ≤ 10%).
* ``two_workers_speedup``: the local pool with 2 workers vs 1 on the same sweep, cells per hour (goal ≥ 1.6×).
* ``same_metrics``: every cell scored the same on all three runs (determinism across backends).
* ``compile_speedup``: the paper CNN trained eagerly vs through ``torch.compile`` on the CPU, one thread: the
  steady-state epoch time ratio and the whole-run ratio (compilation included).
* ``projection``: the full MNIST study's wall time on 1, 4, 16 and 64 nodes of this machine's kind (2 workers
  each), by simulating the FIFO scheduler over the study's 219 jobs. Each job's time is ``fixed + per_image_epoch ×
  image-epochs``, the pair of one measured cell (drawn at random), fitted from that cell's time at ``--epochs`` and
  at ``--epochs + 2`` (2 workers busy, as in a study). The check, on this machine: the same model's prediction of
  the quick MNIST study (6 jobs, 2 workers) beside its measured wall time. (The full study's committed wall time was
  measured on another machine, so it is no check.)

    python benchmarks/scaling.py --json docs/results/bench/scaling.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from badnets._io import git_commit
from badnets.data import ImageDataset, load_mnist
from badnets.experiments._jobs import Backend, LocalBackend
from badnets.experiments.ray_backend import RayBackend
from badnets.models import BadNetCNN
from badnets.studies.mnist import MnistStudySpec, run_mnist_study
from badnets.studies.mnist.spec import build_jobs
from badnets.sweep import SweepResults, SweepSpec, run_sweep
from badnets.train import TrainSpec, one_cpu_thread, train_model

MNIST_TRAIN = 60_000


def sweep_spec(data_dir: str | None, epochs: int) -> SweepSpec:
    base: dict[str, Any] = {"dataset": "mnist", "mapping": "all-to-one", "target": 0, "epochs": epochs}
    if data_dir:
        base["data_dir"] = data_dir
    return SweepSpec(base, {"trigger": ["pixel", "pattern"], "rate": [0.05, 0.1], "seed": [0, 1, 2]})


def timed_sweep(spec: SweepSpec, backend: Backend, name: str) -> tuple[float, SweepResults]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_sweep(spec, Path(tmp) / "sweep", backend=backend, backend_name=name, allow_dirty=True)
        return time.perf_counter() - start, results


def scores(results: SweepResults) -> dict[str, tuple[float, float]]:
    return {row.cell: (row.clean_error, row.attack_success_rate) for row in results.rows}


def epoch_seconds(n: int, data_dir: str | None, *, compile: bool) -> dict[str, float]:
    """Seconds of a 1-epoch run, then of a 3-epoch run, on ``n`` MNIST images. Compiled, the first run pays the
    compilation and the second reuses Inductor's in-process cache, so the second run's epoch time is the steady
    one; eager, the steady epoch is their difference / 2."""
    train, _ = load_mnist(data_dir)
    subset = ImageDataset(train.images[:n], train.labels[:n], train.classes)
    out = {}
    for epochs in (1, 3):
        spec = TrainSpec(epochs=epochs, batch_size=128, device="cpu", compile=compile)
        start = time.perf_counter()
        with one_cpu_thread():
            train_model(BadNetCNN(), subset, spec, seed=0)
        out[f"{epochs}_epochs"] = time.perf_counter() - start
    out["steady_epoch"] = out["3_epochs"] / 3 if compile else (out["3_epochs"] - out["1_epochs"]) / 2
    return out


def simulate(job_seconds: list[float], nodes: int, slots_per_node: int) -> float:
    """Wall time of FIFO list scheduling (each job, in order, to the first free slot), as the pool and Ray do."""
    free = [0.0] * (nodes * slots_per_node)
    for seconds in job_seconds:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += seconds
    return max(free)


@dataclass(frozen=True)
class JobTime:
    """One measured cell's time model: ``seconds = fixed + per_image_epoch × image-epochs``."""

    fixed: float
    per_image_epoch: float

    def seconds(self, image_epochs: float) -> float:
        return self.fixed + self.per_image_epoch * image_epochs


def epoch_images(rate: float) -> float:
    """Training images per epoch of an MNIST run that adds backdoored copies making up ``rate`` of the set."""
    return MNIST_TRAIN / (1 - rate)


def fit_job_times(short: SweepResults, long: SweepResults, short_epochs: int, long_epochs: int) -> list[JobTime]:
    """Each cell's fixed and per-image-epoch cost from its seconds at two epoch counts (same cells, same seeds)."""
    long_seconds = {row.cell: row.seconds for row in long.rows}
    times = []
    for row in short.rows:
        images = epoch_images(float(row.values["rate"]))
        per_image_epoch = (long_seconds[row.cell] - row.seconds) / (images * (long_epochs - short_epochs))
        times.append(JobTime(max(0.0, row.seconds - per_image_epoch * images * short_epochs), per_image_epoch))
    return times


def study_image_epochs(spec: MnistStudySpec) -> list[float]:
    """Image-epochs of every job of a MNIST study, in the order the study submits them."""
    work = []
    for job in build_jobs(spec):
        attack = job.spec
        rate = 0.0 if getattr(attack, "baseline", False) else attack.poison.rate  # type: ignore[attr-defined]
        work.append(epoch_images(rate) * attack.train.epochs)  # type: ignore[attr-defined]
    return work


def projected_hours(times: list[JobTime], work: list[float], nodes: int, draws: int = 200) -> dict[str, Any]:
    """Median and 5–95% range of the simulated wall time, each job's model drawn from the measured cells."""
    rng = random.Random(0)
    walls = sorted(simulate([rng.choice(times).seconds(w) for w in work], nodes, 2) for _ in range(draws))
    return {
        "hours_median": statistics.median(walls) / 3600,
        "hours_p5_p95": [walls[int(0.05 * draws)] / 3600, walls[int(0.95 * draws)] / 3600],
    }


def projection(times: list[JobTime], quick_wall_seconds: float) -> dict[str, Any]:
    """The full MNIST study's wall time on 1, 4, 16, 64 nodes, and the model's check on the quick study."""
    full = study_image_epochs(MnistStudySpec.preset(quick=False))
    quick = projected_hours(times, study_image_epochs(MnistStudySpec.preset(quick=True)), 1)
    return {
        "jobs": len(full),
        "fixed_seconds_mean": statistics.mean(t.fixed for t in times),
        "seconds_per_image_epoch_mean": statistics.mean(t.per_image_epoch for t in times),
        "check_quick_study": {
            "measured_seconds": quick_wall_seconds,
            "projected_seconds": quick["hours_median"] * 3600,
            "ratio": quick["hours_median"] * 3600 / quick_wall_seconds,
        },
        "assumptions": (
            "nodes like this machine, 2 one-thread workers each; a job's time = fixed + per-image-epoch cost × its "
            "image-epochs, the pair of a measured cell drawn at random; FIFO scheduling in the study's job order; "
            "data shipping and node start-up not modelled (the measured Ray overhead applies on top)"
        ),
        "projected": {str(nodes): projected_hours(times, full, nodes) for nodes in (1, 4, 16, 64)},
    }


def timed_quick_study(data_dir: str | None) -> float:
    """Wall seconds of the quick MNIST study (2 workers), reports included."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_mnist_study(MnistStudySpec.preset(quick=True, data_dir=data_dir, workers=2), Path(tmp) / "quick")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the ratios")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per sweep cell")
    parser.add_argument("--compile-images", type=int, default=10_000)
    parser.add_argument("--no-projection", action="store_true", help="skip the projection (its runs take longest)")
    args = parser.parse_args()

    spec = sweep_spec(args.data_dir, args.epochs)
    one_wall, one = timed_sweep(spec, LocalBackend(1), "local")
    two_wall, two = timed_sweep(spec, LocalBackend(2), "local")
    ray_wall, on_ray = timed_sweep(spec, RayBackend(workers=2), "ray")
    eager = epoch_seconds(args.compile_images, args.data_dir, compile=False)
    compiled = epoch_seconds(args.compile_images, args.data_dir, compile=True)
    if not args.no_projection:
        longer = args.epochs + 2
        _, long = timed_sweep(sweep_spec(args.data_dir, longer), LocalBackend(2), "local")
        out_projection = projection(fit_job_times(two, long, args.epochs, longer), timed_quick_study(args.data_dir))
    out = {
        "cells": len(two.rows),
        "wall_seconds": {"local_1_worker": one_wall, "local_2_workers": two_wall, "ray_2_cpus": ray_wall},
        "ray_overhead": ray_wall / two_wall - 1,
        "two_workers_speedup": one_wall / two_wall,
        "same_metrics": scores(one) == scores(two) == scores(on_ray),
        "compile": {
            "eager_seconds": eager,
            "compiled_seconds": compiled,
            "steady_epoch_speedup": eager["steady_epoch"] / compiled["steady_epoch"],
            "three_epoch_run_speedup": eager["3_epochs"] / compiled["3_epochs"],
        },
        **({} if args.no_projection else {"projection": out_projection}),
        "git_commit": git_commit(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
