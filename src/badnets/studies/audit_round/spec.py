# SPDX-License-Identifier: Apache-2.0
"""An audit round: models the audit has never seen, half clean and half backdoored, drawn by a seeded generator,
to judge the audit the way the field judges trojan detectors (NIST TrojAI rounds, the Trojan Detection Challenge
2022): hundreds of models, AUROC and cross-entropy of a calibrated probability.

The study draws three rounds with different seeds: **train** (fit the calibration and thresholds on it only),
**validation** and **test** (report on it). The test round holds a trigger family the train round lacks, so the
report says how the audit does on a backdoor it was not tuned on.

What a round varies:

* **The training recipe** of every model, clean or not: seed, epochs (one fewer to one more than the dataset's),
  learning rate (×½, ×1, ×2), label smoothing (0 or 0.1) and augmentation (random shifts in a third of the models;
  never flips, which turn a digit or a sign into another class or none), so that "unusual but clean" is
  represented and the recipe tells nothing of the backdoor.
* **Backdoors**: the trigger family (``patch``: a random pixel pattern of random size, position and colour;
  ``blend``: seeded noise over the image or a random pattern, blended at opacity 0.05–0.3; ``sinusoid``: Barni et
  al.'s added signal; ``sticker``: a sign trigger on GTSRB's signs), the mapping (all-to-one, single-target,
  all-to-all) and the poisoned share of the training set (1–20%, log-uniform).
* **Datasets**: MNIST (the paper CNN) and GTSRB's 43 classes (the sign CNN), alternating.

Everything is drawn from ``random.Random(f"{round}:{seed}")``: the same round name and seed give the same models,
in the same order, on any machine.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from badnets._io import ensure_writable_dir, read_json, run_manifest, write_json
from badnets.audit import DATASET_AUDIT_OPTIONS, DEFAULT_DETECTORS
from badnets.data import dataset_source
from badnets.defenses.interface import DefenseOptions
from badnets.defenses.registry import repair_method
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import StudyRecipe
from badnets.experiments.attack import AttackSpec
from badnets.poison import PoisonSpec
from badnets.sign_triggers import SIGN_TRIGGERS, sign_trigger
from badnets.studies.audit_round.results import LEARNED_ASR
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec

if TYPE_CHECKING:
    from badnets.audit import AuditSpec

__all__ = [
    "CALIBRATION_ROUND",
    "DATASETS",
    "FAMILIES",
    "MAPPINGS",
    "PHASES_PER_CHUNK",
    "AuditRoundSpec",
    "Round",
    "RoundAuditJob",
    "RoundModel",
    "RoundRepairJob",
    "audit_jobs",
    "build_jobs",
    "draw_round",
    "repair_jobs",
    "round_phases",
]

CALIBRATION_ROUND = "train"  # the only round the calibration sees: the others are scored
FAMILIES = ("patch", "blend", "sinusoid", "sticker")
MAPPINGS = ("all-to-one", "single", "all-to-all")


@dataclass(frozen=True)
class _Domain:
    """What the generator needs to know of a dataset: image shape, classes, which families fit it, and the side
    range (pixels) of a patch trigger on it."""

    shape: tuple[int, int, int]
    classes: int
    families: tuple[str, ...]
    patch_sides: tuple[int, int]


DATASETS: dict[str, _Domain] = {
    "mnist": _Domain((1, 28, 28), 10, ("patch", "blend", "sinusoid"), (1, 6)),
    # on a 32-px GTSRB crop the sign fills most of the image: 3-8 px is a sticker of 10-25% of its side
    "gtsrb-43": _Domain((3, 32, 32), 43, FAMILIES, (3, 8)),
}


@dataclass(frozen=True)
class Round:
    """One round: its name (``train``, ``validation``, ``test``), seed, size and the trigger families it draws."""

    name: str
    seed: int
    models: int
    families: tuple[str, ...] = FAMILIES

    def __post_init__(self) -> None:
        if self.models < 2:
            raise ConfigError(f"round {self.name!r} needs at least 2 models (one clean, one backdoored)")
        unknown = set(self.families) - set(FAMILIES)
        if not self.families or unknown:
            raise ConfigError(f"round {self.name!r}: families must be among {list(FAMILIES)}, got {self.families}")


@dataclass(frozen=True)
class RoundModel:
    """One model of a round and its ground truth: ``family`` is None for a clean model; ``attack`` trains it."""

    name: str
    round: str
    dataset: str
    family: str | None
    attack: AttackSpec

    @property
    def backdoored(self) -> bool:
        return self.family is not None


@dataclass(frozen=True, kw_only=True)
class AuditRoundSpec(StudyRecipe):
    """The rounds, the datasets and the training recipes.

    Attributes:
        rounds: the rounds to draw; the calibration is fitted on the one named ``train``.
        datasets: keys of ``DATASETS``, alternated over a round's models.
        epochs: (dataset, epochs); each model draws one epoch fewer to one more.
        rates: the poisoned share's range, drawn log-uniform.
        clean_images: clean test images the audit has per model (as ``badnets audit --clean-images``).
        audits: (dataset, the audit's options) as ``badnets audit`` takes them; by default ``badnets audit``'s
            own per-dataset defaults (``badnets.audit.DATASET_AUDIT_OPTIONS``), so that the calibration fitted
            here applies to a default audit. Measured on an idle core: MNIST 30–37 s per model (99 s at 600
            steps), GTSRB-43 55 s.
        repairs: the registered repairs run on every learned backdoor of ``repair_round`` (the study's third
            phase), each with ``repair_images`` clean test images (``badnets repair``'s default) and
            ``repair_epochs``; a repair's trigger search (unlearning) takes the dataset's audit options.
        chunk: models trained, audited and repaired together before the next ones start (0: every model of
            every round in each phase). Whole rounds keep the workers busiest; chunks finish models steadily, so
            a round spread over machines that do not share its folder loses at most a chunk when one stops
            (``run_audit_round``'s ``archive``).
    """

    rounds: tuple[Round, ...] = (
        Round("train", 1, 100, ("patch", "blend", "sticker")),
        Round("validation", 2, 50, ("patch", "blend", "sticker")),
        Round("test", 3, 200),
    )
    datasets: tuple[str, ...] = ("mnist", "gtsrb-43")
    epochs: tuple[tuple[str, int], ...] = (("mnist", 4), ("gtsrb-43", 8))
    rates: tuple[float, float] = (0.01, 0.2)
    clean_images: int = 1000
    audits: tuple[tuple[str, DefenseOptions], ...] = tuple(DATASET_AUDIT_OPTIONS.items())
    repairs: tuple[str, ...] = ("fine-pruning", "unlearning", "ft-sam", "nad")
    repair_round: str = "test"
    repair_images: int = 2000
    repair_epochs: int = 10
    chunk: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk < 0:
            raise ConfigError(f"chunk must be >= 0 (0: whole rounds), got {self.chunk}")
        unknown = set(self.datasets) - set(DATASETS)
        if not self.datasets or unknown:
            raise ConfigError(f"datasets must be among {sorted(DATASETS)}, got {list(self.datasets)}")
        for option, pairs in (("epochs", self.epochs), ("audits", self.audits)):
            if missing := set(self.datasets) - {name for name, _ in pairs}:
                raise ConfigError(f"{option} gives no value for dataset(s) {sorted(missing)}")
        low, high = self.rates
        if not 0 < low <= high < 1:
            raise ConfigError(f"rates must satisfy 0 < low <= high < 1, got {self.rates}")
        names = [r.name for r in self.rounds]
        if len(set(names)) != len(names):
            raise ConfigError(f"round names must differ, got {names}")
        if self.repairs and self.repair_round not in names:
            raise ConfigError(f"repair_round must name a round ({names}), got {self.repair_round!r}")
        for method in self.repairs:
            repair_method(method)  # an unknown name fails here, before anything trains

    @classmethod
    def preset(
        cls, *, quick: bool, models: int | None = None, only: Sequence[str] | None = None, **overrides: Any
    ) -> AuditRoundSpec:
        """The full study; ``quick``: 8 / 4 / 8 models and short training; ``models`` scales every round so the
        test round has that many; ``only``: these rounds alone (with the train round, which the calibration is
        fitted on; the repairs only if their round is among them), e.g. to score the rounds finished so far.

        Raises:
            ConfigError: ``only`` names an unknown round or leaves out the train round.
        """
        base = cls(**overrides)
        if only is not None:
            names = [r.name for r in base.rounds]
            unknown = sorted(set(only) - set(names))
            if unknown or CALIBRATION_ROUND not in only:
                raise ConfigError(
                    f"--rounds must name rounds among {', '.join(names)} and include {CALIBRATION_ROUND} (the "
                    f"calibration is fitted on it), got {', '.join(only) or 'none'}"
                )
            kept = tuple(r for r in base.rounds if r.name in only)
            base = replace(base, rounds=kept, repairs=base.repairs if base.repair_round in only else ())
        if quick:
            sizes = {"train": 8, "validation": 4, "test": 8}
            base = replace(
                base,
                rounds=tuple(replace(r, models=sizes.get(r.name, r.models)) for r in base.rounds),
                epochs=tuple((name, max(1, n // 3)) for name, n in base.epochs),
                quick=True,
            )
        if models is not None:
            test = next((r.models for r in base.rounds if r.name == "test"), base.rounds[-1].models)
            base = replace(
                base, rounds=tuple(replace(r, models=max(2, round(r.models * models / test))) for r in base.rounds)
            )
        return base


def draw_round(spec: AuditRoundSpec, which: Round) -> list[RoundModel]:
    """The models of round ``which``: even positions clean, odd backdoored, datasets alternating in pairs."""
    rng = random.Random(f"{which.name}:{which.seed}")
    epochs = dict(spec.epochs)
    models = []
    for i in range(which.models):
        dataset = spec.datasets[(i // 2) % len(spec.datasets)]
        domain = DATASETS[dataset]
        seed = rng.randrange(2**31)
        train = _recipe(rng, spec, epochs[dataset])
        if i % 2 == 0:
            attack = AttackSpec(dataset=dataset, data_dir=spec.data_dir, train=train, seed=seed, baseline=True)
            models.append(RoundModel(f"{which.name}/{i:03d}-{dataset}-clean", which.name, dataset, None, attack))
            continue
        choices = [f for f in which.families if f in domain.families] or list(domain.families)
        family = rng.choice(choices)
        attack = AttackSpec(
            dataset=dataset,
            data_dir=spec.data_dir,
            trigger=_trigger(rng, family, domain, spec.data_dir),
            poison=_poison(rng, domain, spec.rates),
            train=train,
            seed=seed,
        )
        models.append(RoundModel(f"{which.name}/{i:03d}-{dataset}-{family}", which.name, dataset, family, attack))
    return models


def build_jobs(spec: AuditRoundSpec) -> list[Job]:
    """Every round's models as training jobs, round after round (the train round first: it is what a
    calibration needs), each named after its model."""
    return dedupe_jobs([Job(m.name, m.attack) for r in spec.rounds for m in draw_round(spec, r)])


@dataclass(frozen=True, kw_only=True)
class RoundAuditJob:
    """The audit, as ``badnets audit`` runs it, on one trained model of a round (a job of the study's second
    phase): it writes the audit's results, from which the analysis reads the calibration's features.

    ``model`` names the trained model's run directory, a sibling of the job's own in the study's ``runs/``
    folder, so that the job is the same wherever the study folder lives (an archived round resumes elsewhere).
    """

    model: str
    dataset: str
    data_dir: str | None
    clean_images: int
    options: DefenseOptions
    # no default: an audit recorded before a detector was added to the audit is a different job, never reused
    detectors: tuple[str, ...]
    device: str = "auto"

    def audit_spec(self, runs_dir: Path) -> AuditSpec:
        """The audit as ``badnets audit`` would be asked for it, of the model in ``runs_dir``."""
        from badnets.audit import AuditSpec

        return AuditSpec(
            model=str(runs_dir / self.model),
            dataset=self.dataset,
            data_dir=self.data_dir,
            clean_images=self.clean_images,
            seed=self.options.seed,
            device=self.device,
            detectors=self.detectors,
            options=self.options,
        )

    def run(self, out_dir: Path) -> dict[str, float]:
        from badnets.audit import audit_model

        start = time.perf_counter()
        audit = audit_model(self.audit_spec(out_dir.parent)).result
        return _write_evaluation(out_dir, {"audit": audit.to_json(), "config": asdict(self)}, start, self)


def _write_evaluation(out_dir: Path, record: dict[str, Any], start: float, defender: RoundAuditJob) -> dict[str, float]:
    """Write an evaluation job's ``run.json`` (commit, versions, the defender's data hashes: a round's records
    may come from several machines and commits) and then its ``results.json``: ``record`` with the job's timing
    since ``start`` (all of an audit's or a repair's work is evaluation); return the timing."""
    seconds = time.perf_counter() - start
    timing = {"evaluate_seconds": seconds, "job_seconds": seconds}
    ensure_writable_dir(out_dir)
    hashes = dataset_source(defender.dataset).file_hashes(defender.data_dir)
    write_json(out_dir / "run.json", run_manifest(record["config"], defender.options.seed, hashes))
    write_json(out_dir / "results.json", record | {"timing": timing})
    return timing


def audit_jobs(spec: AuditRoundSpec) -> list[Job]:
    """One audit per model of every round (the study's second phase, run after the models are trained)."""
    defender = _defenders(spec)
    return dedupe_jobs(
        [Job(f"audit/{m.name}", defender(m, spec.clean_images)) for r in spec.rounds for m in draw_round(spec, r)]
    )


def _defenders(spec: AuditRoundSpec) -> Callable[[RoundModel, int], RoundAuditJob]:
    """The defender's setup for a model of the round with a number of clean images: its trained run, its
    dataset and the dataset's audit options."""
    options = dict(spec.audits)
    trained = {job.name: job.dir_name for job in build_jobs(spec)}

    def defender(m: RoundModel, clean_images: int) -> RoundAuditJob:
        return RoundAuditJob(
            model=trained[m.name],
            dataset=m.dataset,
            data_dir=spec.data_dir,
            clean_images=clean_images,
            options=options[m.dataset],
            detectors=DEFAULT_DETECTORS,
            device=spec.device,
        )

    return defender


@dataclass(frozen=True, kw_only=True)
class RoundRepairJob:
    """A repair, as ``badnets repair`` runs it, on one backdoored model of a round (a job of the study's third
    phase), from the defender's setup ``defender`` (the audit's, with the repair's own number of clean images).
    A model whose backdoor was not learned is not repaired: its record says so."""

    defender: RoundAuditJob
    method: str
    epochs: int

    def run(self, out_dir: Path) -> dict[str, float]:
        from badnets.defender import repaired

        start = time.perf_counter()
        audit = self.defender.audit_spec(out_dir.parent)  # the model is a sibling of this job's run directory
        trained = read_json(Path(audit.model) / "results.json")["metrics"]["attack_success_rate"]
        record: dict[str, Any] = {"config": asdict(self), "skipped": None}
        if trained < LEARNED_ASR:
            record["skipped"] = f"the backdoor was not learned (attack success {trained:.1%})"
        else:
            result, _ = repaired(audit, self.method, epochs=self.epochs)
            record |= {
                "repair": result.record.to_json(),
                "before": asdict(result.before),
                "after": asdict(result.after),
            }
        return _write_evaluation(out_dir, record, start, self.defender)


def repair_jobs(spec: AuditRoundSpec) -> list[Job]:
    """Every repair on every backdoored model of ``spec.repair_round`` (the study's third phase)."""
    defender = _defenders(spec)
    return dedupe_jobs(
        [
            Job(
                f"repair/{method}/{m.name}",
                RoundRepairJob(defender=defender(m, spec.repair_images), method=method, epochs=spec.repair_epochs),
            )
            for r in spec.rounds
            if r.name == spec.repair_round
            for m in draw_round(spec, r)
            if m.backdoored
            for method in spec.repairs
        ]
    )


PHASES_PER_CHUNK = 3  # train, audit, repair


def round_phases(spec: AuditRoundSpec) -> list[list[Job]]:
    """The study's jobs in phases: train, audit, repair (``PHASES_PER_CHUNK``), over every model at once or,
    with ``spec.chunk``, for one chunk of models after another (the rounds' order: the train round first)."""
    phases = [build_jobs(spec), audit_jobs(spec), repair_jobs(spec)]
    if not spec.chunk:
        return phases
    models = [job.name for job in phases[0]]
    chunked = []
    for start in range(0, len(models), spec.chunk):
        chunk = set(models[start : start + spec.chunk])
        chunked += [[job for job in phase if _model_of(job) in chunk] for phase in phases]
    return chunked


def _model_of(job: Job) -> str:
    """The round model a job trains (``train/000-mnist-clean``), audits (``audit/<model>``) or repairs
    (``repair/<method>/<model>``)."""
    if job.name.startswith("audit/"):
        return job.name.removeprefix("audit/")
    if job.name.startswith("repair/"):
        return job.name.split("/", 2)[2]
    return job.name


def _recipe(rng: random.Random, spec: AuditRoundSpec, epochs: int) -> TrainSpec:
    train = spec.train_spec(max(1, epochs + rng.choice((-1, 0, 1))))
    return replace(
        train,
        lr=train.lr * rng.choice((0.5, 1.0, 2.0)),
        label_smoothing=rng.choice((0.0, 0.1)),
        augment=rng.random() < 1 / 3,
        flips=False,
    )


def _trigger(rng: random.Random, family: str, domain: _Domain, data_dir: str | None) -> TriggerSpec:
    channels, height, width = domain.shape

    def colour() -> int | tuple[int, ...]:
        return rng.randint(128, 255) if channels == 1 else tuple(rng.randint(0, 255) for _ in range(channels))

    if family == "patch":
        side = rng.randint(*domain.patch_sides)
        position = (rng.randint(0, height - side), rng.randint(0, width - side))
        return TriggerSpec(kind="random", size=side, position=position, value=colour(), seed=rng.randrange(2**31))
    if family == "blend":
        opacity = round(rng.uniform(0.05, 0.3), 3)
        if rng.random() < 0.5:
            return TriggerSpec(kind="noise", size=0, opacity=opacity, seed=rng.randrange(2**31))
        side = rng.randint(height // 2, height)
        position = (rng.randint(0, height - side), rng.randint(0, width - side))
        pattern_seed = rng.randrange(2**31)
        return TriggerSpec(
            kind="random", size=side, position=position, value=colour(), opacity=opacity, seed=pattern_seed
        )
    if family == "sinusoid":
        return TriggerSpec(kind="sinusoid", size=0, value=rng.randint(15, 40), frequency=float(rng.randint(3, 8)))
    if family == "sticker":
        name = rng.choice(SIGN_TRIGGERS)
        centre = (round(rng.uniform(0.35, 0.65), 3), round(rng.uniform(0.35, 0.75), 3))
        return sign_trigger(name, data_dir, scale=round(rng.uniform(0.15, 0.3), 3), center=centre)
    raise ConfigError(f"unknown trigger family {family!r}; choose from {list(FAMILIES)}")


def _poison(rng: random.Random, domain: _Domain, rates: tuple[float, float]) -> PoisonSpec:
    low, high = rates
    rate = round(math.exp(rng.uniform(math.log(low), math.log(high))), 4)
    mapping = rng.choice(MAPPINGS)
    classes = domain.classes
    if mapping == "all-to-all":
        return PoisonSpec(mapping=mapping, rate=rate, num_classes=classes)
    target = rng.randrange(classes)
    if mapping == "all-to-one":
        return PoisonSpec(mapping=mapping, rate=rate, target=target, num_classes=classes)
    source = rng.choice([c for c in range(classes) if c != target])
    return PoisonSpec(mapping=mapping, rate=rate, target=target, source=source, num_classes=classes)
