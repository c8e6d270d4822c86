# SPDX-License-Identifier: Apache-2.0
"""Scaling ratios for ``badnets sweep`` and the trainer, measured side by side in one run (never absolute times).

* ``ray_overhead``: the same 12-cell MNIST sweep on a Ray started here (2 CPUs) vs the local pool (2 workers):
  wall-time ratio − 1, Ray's start-up included (goal ≤ 10%).
* ``two_workers_speedup``: the local pool with 2 workers vs 1 on the same sweep, cells per hour (goal ≥ 1.6×).
* ``same_metrics``: every cell scored the same on all three runs (determinism across backends).
* ``compile_speedup``: the paper CNN trained eagerly vs through ``torch.compile`` on the CPU, one thread: the
  steady-state epoch time ratio and the whole-run ratio (compilation included).
* ``projection``: the full MNIST study's wall time on 1, 4, 16 and 64 nodes of this machine's kind (2 workers
  each), by simulating the FIFO scheduler over the study's 219 jobs, each job's time modelled from the measured
  cells (seconds per image-epoch, with the cells' spread resampled); the 1-node projection is set beside the
  study's measured wall time as a check. Known flaw, to fix before its output is committed: the cells' fixed
  start-up and scoring time is folded into the per-image-epoch cost, so 1-epoch cells overstate the study's
  10-epoch jobs (first run, 2026-12-02: 7.9 h projected for one node against 2.8 h measured); cells at two epoch
  counts would separate the fixed from the per-epoch cost.

    python benchmarks/scaling.py --json docs/results/bench/scaling.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from badnets._io import git_commit, read_json
from badnets.data import ImageDataset, load_mnist
from badnets.experiments._jobs import Backend, LocalBackend
from badnets.experiments.ray_backend import RayBackend
from badnets.models import BadNetCNN
from badnets.studies.mnist import MnistStudySpec
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


def projection(cells: SweepResults, epochs: int, draws: int = 200) -> dict[str, Any]:
    """The full MNIST study's wall time on 1, 4, 16, 64 nodes, from the measured cells' time model."""
    work = [MNIST_TRAIN / (1 - float(row.values["rate"])) * epochs for row in cells.rows]
    seconds = [row.seconds for row in cells.rows]
    # least squares of seconds on image-epochs would need two distinct rates far apart; the cells' rates differ
    # by 5 points, so one rate per image-epoch (the cells' mean) and the spread of their ratios are used instead
    per_image_epoch = [s / w for s, w in zip(seconds, work, strict=True)]
    jobs = build_jobs(MnistStudySpec.preset(quick=False))
    job_work = []
    for job in jobs:
        spec = job.spec
        rate = 0.0 if getattr(spec, "baseline", False) else spec.poison.rate  # type: ignore[attr-defined]
        job_work.append(MNIST_TRAIN / (1 - rate) * spec.train.epochs)  # type: ignore[attr-defined]
    rng = random.Random(0)
    projected: dict[str, Any] = {}
    for nodes in (1, 4, 16, 64):
        walls = [simulate([w * rng.choice(per_image_epoch) for w in job_work], nodes, 2) for _ in range(draws)]
        projected[str(nodes)] = {
            "hours_median": statistics.median(walls) / 3600,
            "hours_p5_p95": [sorted(walls)[int(0.05 * draws)] / 3600, sorted(walls)[int(0.95 * draws)] / 3600],
        }
    return {
        "jobs": len(jobs),
        "seconds_per_image_epoch": statistics.mean(per_image_epoch),
        "assumptions": (
            "nodes like this machine, 2 one-thread workers each; a job's time = its image-epochs × a seconds-per-"
            "image-epoch drawn from the measured cells (start-up and scoring folded in, so short jobs are "
            "slightly overestimated); FIFO scheduling in the study's job order; data shipping and node start-up "
            "not modelled (the measured Ray overhead applies on top)"
        ),
        "projected": projected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the ratios")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per sweep cell")
    parser.add_argument("--compile-images", type=int, default=10_000)
    parser.add_argument("--projection", action="store_true", help="also write the (known-flawed) projection")
    args = parser.parse_args()

    spec = sweep_spec(args.data_dir, args.epochs)
    one_wall, one = timed_sweep(spec, LocalBackend(1), "local")
    two_wall, two = timed_sweep(spec, LocalBackend(2), "local")
    ray_wall, on_ray = timed_sweep(spec, RayBackend(workers=2), "ray")
    eager = epoch_seconds(args.compile_images, args.data_dir, compile=False)
    compiled = epoch_seconds(args.compile_images, args.data_dir, compile=True)
    study = read_json(Path(__file__).parents[1] / "docs" / "results" / "mnist" / "results.json")["timing"]
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
        # the projection is written only on request until its time model separates fixed and per-epoch cost
        **(
            {"projection": projection(two, args.epochs) | {"measured_study_hours": study["wall_seconds"] / 3600}}
            if args.projection
            else {}
        ),
        "git_commit": git_commit(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
