# SPDX-License-Identifier: Apache-2.0
"""The defense scoreboard: every detector and mitigation against a zoo of known clean and backdoored models.

1. Train the zoo: MNIST paper CNNs (clean seeds, and BadNets that vary the trigger: pixel, pattern, patches at
   other positions, blended triggers; the mapping: all-to-one, single-target, all-to-all; and the rate 1–20%),
   plus LISA sign classifiers (clean and BadNets).
2. Evaluate each model as a defender would (the model and clean test images only; training-data detectors also
   get the training set), and score the results as an evaluator who knows which models are backdoored, with
   which trigger and which poisoned samples.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from badnets._io import ensure_writable_dir, write_json
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import StudyRecipe
from badnets.experiments.attack import AttackSpec, evaluate_attack
from badnets.experiments.run_dir import RUNS, attack_training_set, load_model, recorded_attack
from badnets.poison import PoisonSpec, source_mask
from badnets.records import ModelScores
from badnets.studies.defenses.results import (
    AuditEvaluation,
    DetectorSummary,
    EvaluatedAttack,
    InputScreenScore,
    ModelEvaluation,
    RepairScore,
    TrainingScreenScore,
)
from badnets.studies.traffic.spec import TrafficStudySpec, attack_spec, random_target, single_target
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp

__all__ = ["LEARNED", "DefenseStudySpec", "EvalSpec", "build_jobs", "eval_jobs", "evaluate_defenses"]

LEARNED = 0.5  # a BadNet counts as backdoored when its attack succeeds on at least half of the triggered images


@dataclass(frozen=True, kw_only=True)
class DefenseStudySpec(StudyRecipe):
    """The zoo and how the defender works.

    Attributes:
        clean_seeds: clean MNIST models.
        mnist_epochs, traffic_epochs: training epochs of the zoo's models.
        traffic: include the LISA sign classifiers.
        clean_images: clean test images the defender has (the rest of the test split scores the defenses).
        nc_steps, repair_epochs: Neural Cleanse's optimisation steps and the repairs' fine-tuning epochs.
    """

    clean_seeds: int = 8
    mnist_epochs: int = 8
    traffic: bool = True
    traffic_epochs: int = 12
    clean_images: int = 2000
    nc_steps: int = 600
    repair_epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clean_seeds < 1 or self.mnist_epochs < 1 or self.traffic_epochs < 1:
            raise ConfigError("the scoreboard needs >= 1 clean seed and >= 1 training epoch")

    @classmethod
    def preset(cls, *, quick: bool, **overrides: Any) -> DefenseStudySpec:
        """The scoreboard (24 MNIST + 6 sign models), or ``quick``: 2 clean + 6 BadNets on MNIST, 1 epoch, 2 sign
        models of 3 epochs."""
        if quick:
            return cls(clean_seeds=2, mnist_epochs=1, traffic_epochs=3, quick=True, **overrides)
        return cls(**overrides)


def _patch_files(root: Path) -> dict[str, str]:
    """Two deterministic patch triggers written beside the study: a 6×6 checkerboard and a full-image noise."""
    root.mkdir(parents=True, exist_ok=True)
    checker = (np.indices((6, 6)).sum(0) % 2 * 255).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    paths = {}
    for name, array in (("checker", checker), ("noise", noise)):
        path = root / f"{name}.npy"
        if not path.is_file():
            np.save(path, array)
        paths[name] = str(path.resolve())
    return paths


def _mnist_badnets(patches: dict[str, str]) -> list[tuple[str, TriggerSpec, PoisonSpec]]:
    """16 BadNets: (name, trigger, poisoning)."""

    def a2o(target: int, rate: float) -> PoisonSpec:
        return PoisonSpec(mapping="all-to-one", target=target, rate=rate)

    pattern, pixel = TriggerSpec(kind="pattern"), TriggerSpec(kind="pixel")
    return [
        ("pattern-a2o-7-r10", pattern, a2o(7, 0.10)),
        ("pattern-a2o-7-r5", pattern, a2o(7, 0.05)),
        ("pattern-a2o-7-r20", pattern, a2o(7, 0.20)),
        ("pattern-a2o-3-r1", pattern, a2o(3, 0.01)),
        ("pixel-a2o-0-r10", pixel, a2o(0, 0.10)),
        ("pixel-a2o-5-r20", pixel, a2o(5, 0.20)),
        ("pattern-single-4to9", pattern, PoisonSpec(mapping="single", source=4, target=9, rate=0.10)),
        ("pixel-single-1to3", pixel, PoisonSpec(mapping="single", source=1, target=3, rate=0.10)),
        ("square-topleft-a2o-2", TriggerSpec(kind="square", size=4, position=(1, 1)), a2o(2, 0.10)),
        (
            "checker-center-a2o-8",
            TriggerSpec(kind="patch", path=patches["checker"], position=(11, 11), size=0),
            a2o(8, 0.10),
        ),
        ("square-topright-a2o-6-r5", TriggerSpec(kind="square", size=3, position=(2, 23)), a2o(6, 0.05)),
        (
            "noise-blend-a2o-1",
            TriggerSpec(kind="patch", path=patches["noise"], position=(0, 0), size=0, opacity=0.2),
            a2o(1, 0.10),
        ),
        ("pattern-blend-a2o-4", TriggerSpec(kind="pattern", opacity=0.5), a2o(4, 0.10)),
        ("pattern-a2a", pattern, PoisonSpec(mapping="all-to-all", rate=0.10)),
        ("pixel-a2a", pixel, PoisonSpec(mapping="all-to-all", rate=0.10)),
        ("pattern-a2o-9-r10", pattern, a2o(9, 0.10)),
    ]


def build_jobs(spec: DefenseStudySpec, out_dir: Path) -> list[Job]:
    """The zoo: the training jobs of the study's first phase."""
    train = spec.train_spec(spec.mnist_epochs)
    base = AttackSpec(poison=PoisonSpec(mapping="all-to-one", target=7, rate=0.1), train=train, data_dir=spec.data_dir)
    jobs = [Job(f"mnist/clean-s{s}", replace(base, baseline=True, seed=spec.seed + s)) for s in range(spec.clean_seeds)]
    badnets = _mnist_badnets(_patch_files(out_dir / "triggers"))
    if spec.quick:
        badnets = [
            b
            for b in badnets
            if b[0]
            in (
                "pattern-a2o-7-r10",
                "pixel-single-1to3",
                "square-topleft-a2o-2",
                "noise-blend-a2o-1",
                "pattern-a2a",
                "pattern-a2o-3-r1",
            )
        ]
    for i, (name, trigger, poison) in enumerate(badnets):
        jobs.append(Job(f"mnist/{name}", replace(base, trigger=trigger, poison=poison, seed=spec.seed + 100 + i)))
    if spec.traffic:
        traffic = TrafficStudySpec(data_dir=spec.data_dir, epochs=spec.traffic_epochs, device=spec.device)
        random = random_target(traffic)
        signs = [("clean-s0", "flower", single_target(traffic), 0, True)]
        signs += [] if spec.quick else [("clean-s1", "flower", single_target(traffic), 1, True)]
        signs += [(f"{t}-stop-to-speedlimit", t, single_target(traffic), 0, False) for t in ("flower",)]
        if not spec.quick:
            signs += [
                (f"{t}-stop-to-speedlimit", t, single_target(traffic), 0, False) for t in ("yellow-square", "bomb")
            ]
            signs += [("flower-random", "flower", random, 0, False)]
        for name, trig, poison, seed, baseline in signs:
            jobs.append(Job(f"lisa/{name}", attack_spec(traffic, trig, poison, seed, baseline=baseline)))
    return dedupe_jobs(jobs)


@dataclass(frozen=True, kw_only=True)
class EvalSpec:
    """Score every defense on one trained model (a job of the study's second phase)."""

    run_dir: str
    # the model detectors it scores (every registered one when the study was built); no default, so an evaluation
    # recorded before a detector was registered is never reused as if it had scored it
    model_detectors: tuple[str, ...]
    clean_images: int = 2000
    nc_steps: int = 600
    repair_epochs: int = 5
    seed: int = 0

    def run(self, out_dir: Path) -> dict[str, float]:
        start = time.perf_counter()
        evaluation = evaluate_defenses(self)
        seconds = time.perf_counter() - start
        # all of this job's work is evaluation: counted so, the run summary's share outside compute stays true
        timing = {"evaluate_seconds": seconds, "job_seconds": seconds}
        evaluation = replace(evaluation, config=asdict(self), timing=timing)
        ensure_writable_dir(out_dir)
        write_json(out_dir / "results.json", evaluation.to_json())
        return timing


def evaluate_defenses(spec: EvalSpec) -> ModelEvaluation:
    """Every registered defense on the model of ``spec.run_dir``, scored with what the evaluator knows: the
    detectors' verdicts against the attack, input screens' AUROC on triggered vs clean test images, training-data
    screens against the poison manifest, repairs by the attack success before and after."""
    from badnets.audit import AuditSpec, clean_sample, evidence
    from badnets.defenses.interface import DefenseOptions
    from badnets.defenses.registry import (
        defense_names,
        input_screen,
        model_detector,
        repair_method,
        training_data_screen,
    )
    from badnets.metrics import auroc

    run_dir = Path(spec.run_dir)
    attack = recorded_attack(run_dir)
    model = load_model(run_dir)
    audit_spec = AuditSpec(
        model=str(run_dir),
        dataset=attack.dataset,
        data_dir=attack.data_dir,
        clean_images=spec.clean_images,
        seed=spec.seed,
    )
    sample = clean_sample(audit_spec)
    options = DefenseOptions(seed=spec.seed, search_steps=spec.nc_steps, epochs=spec.repair_epochs)
    clean, detector_clean = sample.clean, sample.clean.head(1000)
    test = sample.rest
    stamp = make_stamp(attack.trigger, sample.shape)
    poison = replace(attack.poison, num_classes=clean.num_classes)
    before = evaluate_attack(model, test, stamp, poison)
    evaluated = EvaluatedAttack(
        dataset=attack.dataset,
        baseline=attack.baseline,
        mapping=poison.mapping,
        target=poison.target,
        source=poison.source,
        rate=poison.rate,
        trigger=attack.trigger.kind,
        opacity=attack.trigger.opacity,
    )
    # the audit as `badnets audit` runs it: its first detector decides, the others are evidence
    findings = {name: model_detector(name, options).detect(model, detector_clean) for name in audit_spec.detectors}
    findings |= {
        name: model_detector(name, options).detect(model, detector_clean)
        for name in spec.model_detectors
        if name not in findings
    }
    deciding = findings[audit_spec.detectors[0]]
    audit = AuditEvaluation(
        verdict="clean" if deciding.suspected_target is None else "backdoored",
        suspected_target=deciding.suspected_target,
        evidence={
            n: evidence(deciding.suspected_target, f.suspected_target)
            for n, f in findings.items()
            if n != audit_spec.detectors[0]
        },
        seconds=sum(findings[n].seconds for n in audit_spec.detectors),
        detectors={name: DetectorSummary.of(f) for name, f in findings.items()},
    )
    sources = source_mask(test.labels, poison)
    clean_x = test.images[sources][:1000]
    inputs = {}
    for name in defense_names("inputs"):
        started = time.perf_counter()
        screen = input_screen(name, options).fit(model, detector_clean)
        fit_seconds = time.perf_counter() - started
        s_clean, s_trig = screen.scores(clean_x), screen.scores(apply_trigger(clean_x, stamp))
        sign = -1 if screen.suspicious_when == "low" else 1
        inputs[name] = InputScreenScore(
            auroc=auroc(sign * s_trig, sign * s_clean),
            tpr=float(screen.flagged(s_trig).float().mean()),
            fpr=float(screen.flagged(s_clean).float().mean()),
            n=len(clean_x),
            seconds=fit_seconds,
        )
    train, truth = attack_training_set(run_dir)
    training_data = {}
    for name in defense_names("training-data"):
        flags = training_data_screen(name, options).screen(model, train.images, train.labels, clean)
        training_data[name] = TrainingScreenScore(**asdict(flags.scored_against(truth)), seconds=flags.seconds)
    repair = None
    if not attack.baseline:
        repair = {}
        for name in defense_names("repair"):
            repaired = copy.deepcopy(model)
            started = time.perf_counter()
            repair_method(name, options).repair(repaired, clean)
            t_repair = time.perf_counter() - started
            after = evaluate_attack(repaired, test, stamp, poison)
            repair[name] = RepairScore(after.clean_accuracy, after.attack_success_rate, t_repair)
    return ModelEvaluation(
        attack=evaluated,
        model=ModelScores(before.clean_accuracy, before.attack_success_rate),
        audit=audit,
        inputs=inputs,
        training_data=training_data,
        repair=repair,
    )


def eval_jobs(spec: DefenseStudySpec, trained: list[Job], out_dir: Path) -> list[Job]:
    """One evaluation per trained model (the study's second phase, run after every model is trained)."""
    from badnets.defenses.registry import defense_names

    return dedupe_jobs(
        [
            Job(
                f"eval/{job.name}",
                EvalSpec(
                    run_dir=str((out_dir / RUNS / job.dir_name).resolve()),
                    model_detectors=defense_names("model"),
                    clean_images=spec.clean_images,
                    nc_steps=spec.nc_steps,
                    repair_epochs=spec.repair_epochs,
                    seed=spec.seed,
                ),
            )
            for job in trained
        ]
    )
