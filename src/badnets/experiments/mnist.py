# SPDX-License-Identifier: Apache-2.0
"""The paper's MNIST case study (BadNets §4), end to end.

1. Baseline: the paper CNN trained on clean MNIST (Table 1; paper clean error 0.50%).
2. All-to-all: i → (i+1) mod 10, backdoored copies added (§4.2.2; paper 0.48% clean / 0.56% backdoor error).
3. Single-target: every ordered pair i → j, i ≠ j (§4.2.1, Figure 4 heat maps).
4. Fraction sweep: backdoored share of the training set (Figure 6), all-to-all mapping.
5. conv1 filters of the clean network beside the BadNet's (Figure 5), trigger-dedicated filters marked.

Every model is one ``run_attack`` job in ``out/runs/<name>``; a finished job is never recomputed, an
interrupted one resumes from its last epoch, so re-running the same command resumes the whole study.
Jobs that coincide (the 10% point of the sweep is the all-to-all headline run) run once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from badnets._io import ensure_writable_dir, read_json, run_manifest, write_json
from badnets.data.mnist import mnist_file_hashes
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs, run_jobs
from badnets.experiments.attack import AttackSpec
from badnets.poison import PoisonSpec
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec

__all__ = ["MnistStudySpec", "StudySummary", "build_jobs", "run_mnist_study"]

ALL_PAIRS = tuple((i, j) for i in range(10) for j in range(10) if i != j)
QUICK_PAIRS = ((4, 9), (3, 8))


@dataclass(frozen=True, kw_only=True)
class MnistStudySpec:
    """What the MNIST study trains.

    Attributes:
        triggers: MNIST triggers to study (``pixel``, ``pattern``).
        seeds: seeds for baseline, all-to-all and sweep (pairs use one seed each).
        epochs: epochs for baseline and all-to-all models.
        pair_epochs: (trigger, epochs) for each single-target pair model. The single pixel is learned late
            (measured at 5%: 8→3 not learned after 6 epochs, learned at 10; with 10 epochs 12 pairs gave backdoor
            error 0.0-0.3% and 0→8 1.94%, which 15 epochs brought to 0.10%), so it gets more.
        sweep_epochs: epochs for each fraction-sweep model.
        rate: backdoored share for the all-to-all attack (paper: ~10%).
        pair_rate: backdoored share for single-target attacks. 5% adds ~3,200 triggered copies of the source
            digit, about half its clean images; at 10% the copies outnumber them and, until the trigger is
            learned, the network simply relabels the whole source class (measured: 98.8% clean error on 8s).
        sweep_rates: backdoored shares for the fraction sweep.
        pairs: (source, target) pairs; all 90 by default.
        batch_size, lr, label_smoothing: training recipe (see ``TrainSpec``).
        workers: models trained in parallel (each with one CPU thread).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        data_dir: MNIST folder.
        quick: a reduced demonstration run (reports say so and do not grade it against the targets).
    """

    triggers: tuple[str, ...] = ("pixel", "pattern")
    seeds: int = 3
    epochs: int = 10
    pair_epochs: tuple[tuple[str, int], ...] = (("pixel", 15), ("pattern", 6))
    sweep_epochs: int = 10
    rate: float = 0.1
    pair_rate: float = 0.05
    sweep_rates: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.33, 0.5)
    pairs: tuple[tuple[int, int], ...] = ALL_PAIRS
    batch_size: int = 128
    lr: float = 3e-3
    label_smoothing: float = 0.1
    workers: int = 2
    device: str = "auto"
    data_dir: str | None = None
    quick: bool = False

    def __post_init__(self) -> None:
        for t in self.triggers:
            if t not in ("pixel", "pattern"):
                raise ConfigError(f"study.triggers may hold pixel and pattern, got {t!r}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        missing = set(self.triggers) - {t for t, _ in self.pair_epochs}
        if missing:
            raise ConfigError(f"study.pair_epochs gives no epochs for trigger(s) {sorted(missing)}")
        for i, j in self.pairs:
            if i == j or not (0 <= i < 10 and 0 <= j < 10):
                raise ConfigError(f"study.pairs holds ({i}, {j}); pairs are two different digits 0-9")

    @classmethod
    def preset(cls, *, quick: bool, seeds: int | None = None, **overrides: Any) -> MnistStudySpec:
        """The full study, or ``quick``: one trigger, one seed, two pairs, a short sweep, 2 epochs."""
        if quick:
            base = cls(
                triggers=("pattern",),
                seeds=1,
                epochs=2,
                pair_epochs=(("pattern", 2),),
                sweep_epochs=2,
                sweep_rates=(0.05, 0.1, 0.33),
                pairs=QUICK_PAIRS,
                quick=True,
                **overrides,
            )
        else:
            base = cls(**overrides)
        return base if seeds is None else replace(base, seeds=seeds)


def _train(spec: MnistStudySpec, epochs: int) -> TrainSpec:
    return TrainSpec(
        epochs=epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        label_smoothing=spec.label_smoothing,
        device=spec.device,
    )


def _attack(spec: MnistStudySpec, trigger: str, poison: PoisonSpec, epochs: int, seed: int, **kw: Any) -> AttackSpec:
    return AttackSpec(
        dataset="mnist",
        data_dir=spec.data_dir,
        trigger=TriggerSpec(kind=trigger),
        poison=poison,
        train=_train(spec, epochs),
        seed=seed,
        **kw,
    )


def build_jobs(spec: MnistStudySpec) -> list[Job]:
    """Every model of the study, named ``group/...``; coinciding specs are listed once (first name wins)."""
    jobs: list[Job] = []

    def a2a(rate: float) -> PoisonSpec:
        return PoisonSpec(mapping="all-to-all", rate=rate)

    for seed in range(spec.seeds):
        jobs.append(
            Job(
                f"baseline/s{seed}",
                _attack(spec, spec.triggers[0], a2a(spec.rate), spec.epochs, seed, baseline=True),
            )
        )
    for trig in spec.triggers:
        for seed in range(spec.seeds):
            jobs.append(Job(f"all-to-all/{trig}/s{seed}", _attack(spec, trig, a2a(spec.rate), spec.epochs, seed)))
        for i, j in spec.pairs:
            poison = PoisonSpec(mapping="single", source=i, target=j, rate=spec.pair_rate)
            jobs.append(Job(f"single/{trig}/{i}-{j}", _attack(spec, trig, poison, dict(spec.pair_epochs)[trig], 0)))
        for rate in spec.sweep_rates:
            for seed in range(spec.seeds):
                jobs.append(
                    Job(
                        f"sweep/{trig}/r{rate:g}/s{seed}",
                        _attack(spec, trig, a2a(rate), spec.sweep_epochs, seed),
                    )
                )
    return dedupe_jobs(jobs)


class _InvocationLedger:
    """``invocations.json``: wall time and models trained by every invocation that trained something.

    A study that is killed and resumed spans several invocations; the report sums them so its wall time and
    compute share cover the whole study, not just the last command. The entry is rewritten after every
    finished job, so even a killed invocation keeps what it did up to its last finished model.
    """

    def __init__(self, path: Path, *, workers: int) -> None:
        self.path = path
        self.previous: list[dict[str, Any]] = read_json(path) if path.is_file() else []
        self.entry: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "workers": workers,
            "models_trained": 0,
            "wall_seconds": 0.0,
        }

    def record(self, wall_seconds: float, *, models_trained: int) -> None:
        self.entry["wall_seconds"] = wall_seconds
        self.entry["models_trained"] += models_trained
        write_json(self.path, self.invocations())

    def invocations(self) -> list[dict[str, Any]]:
        return [*self.previous, self.entry] if self.entry["models_trained"] else list(self.previous)


@dataclass(frozen=True)
class StudySummary:
    results: dict[str, Any]
    wall_seconds: float

    def console_table(self) -> Any:
        from badnets.report.mnist import summary_table

        return summary_table(self.results)


def run_mnist_study(
    spec: MnistStudySpec, out_dir: Path, *, progress: Callable[[int, int, str], None] | None = None
) -> StudySummary:
    """Train every model of the study (resuming), then write ``results.json``, ``report.md``/``.html``, PNGs."""
    from badnets.report.mnist import aggregate, write_mnist_report

    start = time.perf_counter()
    ensure_writable_dir(out_dir)
    hashes = mnist_file_hashes(spec.data_dir)  # fails fast, before any worker starts, if data are missing
    write_json(out_dir / "run.json", run_manifest(asdict(spec), None, hashes))
    jobs = build_jobs(spec)
    ledger = _InvocationLedger(out_dir / "invocations.json", workers=spec.workers)

    def on_progress(done: int, total: int, name: str) -> None:
        if name != "starting":
            ledger.record(time.perf_counter() - start, models_trained=1)
        if progress is not None:
            progress(done, total, name)

    timing = run_jobs(jobs, out_dir / "runs", workers=spec.workers, progress=on_progress)
    runs = {job.name: read_json(out_dir / "runs" / job.dir_name / "results.json") for job in jobs}
    results = aggregate(spec, runs, out_dir)
    wall = time.perf_counter() - start
    if timing["models_trained_now"]:
        ledger.record(wall, models_trained=0)
    results["timing"] = {
        **timing,
        "wall_seconds": wall,
        "invocations": ledger.invocations(),
        "all_models_job_seconds": sum(float(r.get("timing", {}).get("job_seconds", 0.0)) for r in runs.values()),
    }
    results["manifest"] = read_json(out_dir / "run.json")
    write_mnist_report(results, out_dir)
    return StudySummary(results, results["timing"]["wall_seconds"])
