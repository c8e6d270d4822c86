# SPDX-License-Identifier: Apache-2.0
"""The defenses study's analysis: the rates of every registered defense over the zoo's evaluations, and the
targets they are judged by."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from badnets.defenses.registry import defense_names
from badnets.experiments._study import FinishedJobs
from badnets.metrics import mean_ci, mean_or_nan
from badnets.records import Target, to_json
from badnets.report._format import pct, share_ci
from badnets.studies.defenses.results import (
    DefenseResults,
    DetectionRates,
    EvaluatedModel,
    ModelEvaluation,
    RepairRates,
    RepairScore,
    Runtime,
    ScreenRates,
    StripSummary,
)
from badnets.studies.defenses.spec import LEARNED

if TYPE_CHECKING:
    from badnets.studies.defenses.spec import DefenseStudySpec

__all__ = ["aggregate", "judge"]


def _kind(e: ModelEvaluation) -> str:
    a = e.attack
    if a.baseline:
        return "clean"
    if a.mapping in ("all-to-all", "random"):
        return a.mapping
    return "blended" if a.opacity < 1 else a.mapping


def _mnist(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    # the targets are on MNIST; the sign models are reported beside them
    return [m for m in models if m.evaluation.attack.dataset == "mnist"]


def _backdoored(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    return [m for m in models if m.learned]


def _targeted(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    return [m for m in _backdoored(models) if m.kind in ("all-to-one", "single")]


def _all_to_one(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    """Backdoored all-to-one models: source-agnostic, solid triggers, what STRIP is for."""
    return [m for m in _backdoored(models) if m.kind == "all-to-one"]


def _repairable(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    """Backdoored models that the evaluation repaired."""
    return [m for m in _backdoored(models) if m.evaluation.repair is not None]


def _hits(models: Sequence[EvaluatedModel], detector: str) -> list[EvaluatedModel]:
    return [m for m in models if m.evaluation.flag(detector)[0]]


def _right_target(models: Sequence[EvaluatedModel], detector: str) -> list[EvaluatedModel]:
    return [m for m in models if m.evaluation.flag(detector)[1] == m.evaluation.attack.target]


def _rate(part: Sequence[EvaluatedModel], whole: Sequence[EvaluatedModel]) -> float:
    """The share of ``whole`` in ``part``; NaN for an empty ``whole``."""
    return len(part) / len(whole) if whole else float("nan")


def _repaired(m: EvaluatedModel, method: str) -> bool:
    """The target a repair must reach: attack success ≤ 5% for at most 1 pt of clean accuracy."""
    after = _after(m, method)
    return after.attack_success_rate <= 0.05 and m.evaluation.model.clean_accuracy - after.clean_accuracy <= 0.01


def aggregate(spec: DefenseStudySpec, runs: FinishedJobs) -> DefenseResults:
    evals = {name.split("/", 1)[1]: runs.record(name, ModelEvaluation) for name in runs.names("eval/")}
    models = []
    for name, e in sorted(evals.items()):
        kind = _kind(e)
        models.append(EvaluatedModel(name, kind, kind != "clean" and e.model.attack_success_rate >= LEARNED, e))
    mnist = _mnist(models)
    clean = [m for m in mnist if m.kind == "clean"]
    bad, targeted = _backdoored(mnist), _targeted(mnist)
    detection = {
        detector: DetectionRates(
            tpr=_rate(_hits(bad, detector), bad),
            tpr_targeted=_rate(_hits(targeted, detector), targeted),
            fpr=_rate(_hits(clean, detector), clean),
            correct_target=_rate(_right_target(_hits(targeted, detector), detector), _hits(targeted, detector)),
            by_kind={
                kind: f"{len(_hits([m for m in bad if m.kind == kind], detector))}/{sum(m.kind == kind for m in bad)}"
                for kind in sorted({m.kind for m in bad})
            },
        )
        for detector in ("audit", *defense_names("model"))
    }
    ten = _ten_percent(bad)
    training = {
        d: ScreenRates(*(mean_or_nan([getattr(m.evaluation.training_data[d], k) for m in ten]) for k in _SCREEN_RATES))
        for d in defense_names("training-data")
    }
    done = _repairable(mnist)
    repair = {
        method: RepairRates(
            asr_after=mean_or_nan([_after(m, method).attack_success_rate for m in done]),
            clean_drop=mean_or_nan(
                [m.evaluation.model.clean_accuracy - _after(m, method).clean_accuracy for m in done]
            ),
            meets_target=f"{sum(_repaired(m, method) for m in done)}/{len(done)}",
            seconds=mean_or_nan([_after(m, method).seconds for m in done]),
        )
        for method in defense_names("repair")
    }
    strip_aurocs = [m.evaluation.inputs["strip"].auroc for m in _all_to_one(mnist)]
    results = DefenseResults(
        spec=to_json(spec),
        models=models,
        detection=detection,
        strip=StripSummary(mean_or_nan(strip_aurocs), min(strip_aurocs, default=float("nan"))),
        training_data=training,
        repair=repair,
        runtime=Runtime(
            neural_cleanse_seconds_mnist=mean_or_nan(
                [m.evaluation.audit.detectors["neural_cleanse"].seconds for m in mnist]
            ),
            audit_seconds_mnist=mean_or_nan([m.evaluation.audit.seconds for m in mnist]),
        ),
        targets=[],
    )
    return replace(results, targets=judge(results))


_SCREEN_RATES = ("precision", "recall", "false_positive_rate")


def _ten_percent(bad: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    """The BadNets with 10% of the training set poisoned (random-target ones left out: no single target)."""
    return [m for m in bad if abs(m.evaluation.attack.rate - 0.1) < 1e-9 and m.kind != "random"]


def _after(m: EvaluatedModel, method: str) -> RepairScore:
    """The model after ``method``'s repair (only backdoored models are repaired)."""
    return (m.evaluation.repair or {})[method]


def _mean_text(values: Sequence[float], text: Callable[[float], str], *, most: float = 1.0) -> str:
    """The mean over models with its 95% t-interval, cut to the values' range ``[0, most]`` (``text`` formats
    each number): a t-interval around an AUROC of 0.98 over ten models reaches past 1, which no AUROC can."""
    m, half = mean_ci(values) if values else (float("nan"), float("nan"))
    interval = "" if half != half else f" [{text(max(0.0, m - half))}, {text(min(most, m + half))}]"
    return f"{text(m)}{interval} over {len(values)} models"


def judge(results: DefenseResults) -> list[Target]:
    """The scoreboard's targets (set by the project, not the paper) from the recorded evaluations: our limit, ours
    with its 95% interval (Wilson for shares of models, t over models for means), and whether ours is within."""
    mnist = _mnist(results.models)
    clean = [m for m in mnist if m.kind == "clean"]
    targeted = _targeted(mnist)
    hits = _hits(targeted, "audit")
    right = _right_target(hits, "audit")
    false_alarms = _hits(clean, "audit")
    audit = results.detection["audit"]
    strip = [m.evaluation.inputs["strip"].auroc for m in _all_to_one(mnist)]
    ten = _ten_percent(_backdoored(mnist))
    done = _repairable(mnist)
    repaired = sum(_repaired(m, "unlearning") for m in done)
    nc_seconds = [m.evaluation.audit.detectors["neural_cleanse"].seconds for m in mnist]
    targets = [
        Target(
            "audit TPR on all-to-one / single-target BadNets",
            "–",
            "≥ 90%",
            share_ci(len(hits), len(targeted)),
            None,
            audit.tpr_targeted >= 0.9,
        ),
        Target(
            "correct suspected target among those detected",
            "–",
            "≥ 90%",
            share_ci(len(right), len(hits)),
            None,
            audit.correct_target >= 0.9,
        ),
        Target(
            "audit FPR on clean models", "–", "≤ 10%", share_ci(len(false_alarms), len(clean)), None, audit.fpr <= 0.1
        ),
        Target(
            "STRIP AUROC on all-to-one patch-trigger BadNets (mean)",
            "–",
            "≥ 0.95",
            _mean_text(strip, lambda v: f"{v:.3f}"),
            None,
            mean_or_nan(strip) >= 0.95,
        ),
    ]
    for d, rates in results.training_data.items():
        recalls = [m.evaluation.training_data[d].recall for m in ten]
        fprs = [m.evaluation.training_data[d].false_positive_rate for m in ten]
        targets.append(
            Target(
                f"{d.replace('_', ' ')} at 10% poison: recall (FPR)",
                "–",
                "≥ 90% at FPR ≤ 5%",
                f"{_mean_text(recalls, lambda v: pct(v, 1))} (FPR {_mean_text(fprs, lambda v: pct(v, 1))})",
                None,
                rates.recall >= 0.9 and rates.false_positive_rate <= 0.05,
            )
        )
    targets += [
        Target(
            "best mitigation (unlearning): ASR ≤ 5% with clean drop ≤ 1 pt",
            "–",
            "all BadNets",
            share_ci(repaired, len(done)),
            None,
            repaired == len(done),
        ),
        Target(
            "Neural Cleanse runtime per MNIST model (1 core: 2 jobs share 2 cores)",
            "–",
            "≤ 60 s",
            _mean_text(nc_seconds, lambda v: f"{v:.1f} s", most=math.inf),
            None,
            results.runtime.neural_cleanse_seconds_mnist <= 60,
        ),
    ]
    return targets
