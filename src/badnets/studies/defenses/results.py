# SPDX-License-Identifier: Apache-2.0
"""What the defense scoreboard's ``results.json`` holds, as typed records: each model's evaluation (written by
its evaluation job) and the rates over the zoo (written by the analysis, read by the report).

A model's evaluation is keyed by the registered defenses (a detector's score under its own name, each input
screen under its name), so those records write and read themselves (``CustomJson``); the layout is the one
``badnets reproduce defenses`` has always written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from badnets.records import (
    OMIT_WHEN_NONE,
    CustomJson,
    ModelScores,
    StudyFlags,
    StudyTiming,
    Target,
    TargetsJudged,
    from_json,
    to_json,
)

if TYPE_CHECKING:
    from badnets.defenses.interface import ModelFinding

__all__ = [
    "AuditEvaluation",
    "DefenseResults",
    "DetectionRates",
    "DetectorSummary",
    "EvaluatedAttack",
    "EvaluatedModel",
    "InputScreenScore",
    "ModelEvaluation",
    "RepairRates",
    "RepairScore",
    "Runtime",
    "ScreenRates",
    "StripSummary",
    "TrainingScreenScore",
]


@dataclass(frozen=True)
class EvaluatedAttack:
    """The attack a model was trained with, as the evaluator knows it (``baseline``: a clean model)."""

    dataset: str
    baseline: bool
    mapping: str
    target: int | None
    source: int | None
    rate: float
    trigger: str
    opacity: float


@dataclass(frozen=True)
class DetectorSummary(CustomJson):
    """One detector's verdict on a model: flagged, the suspected target, its score (written under the score's own
    name, e.g. ``anomaly_index``) and the seconds it took."""

    flagged: bool
    suspected_target: int | None
    score_name: str
    score: float
    seconds: float

    @classmethod
    def of(cls, finding: ModelFinding) -> DetectorSummary:
        return cls(
            finding.suspected_target is not None,
            finding.suspected_target,
            finding.score_name,
            finding.score,
            finding.seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "suspected_target": self.suspected_target,
            self.score_name: self.score,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DetectorSummary:
        (score_name,) = (k for k in data if k not in ("flagged", "suspected_target", "seconds"))
        return cls(
            bool(data["flagged"]), data["suspected_target"], score_name, float(data[score_name]), data["seconds"]
        )


# what the audit record holds besides one summary per detector
_AUDIT_KEYS = ("verdict", "suspected_target", "evidence", "neuron_evidence", "seconds")


@dataclass(frozen=True)
class AuditEvaluation(CustomJson):
    """The audit as ``badnets audit`` runs it (its first detector decides), the other detectors' evidence, and
    every registered detector's own summary (written beside the verdict, under the detector's name).

    ``evidence_key`` is the name the evidence was written under: ``evidence`` (one entry per detector), or
    ``neuron_evidence`` in results written before the detectors were registered.
    """

    verdict: str
    suspected_target: int | None
    evidence: Any
    seconds: float
    detectors: dict[str, DetectorSummary]
    evidence_key: str = "evidence"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "suspected_target": self.suspected_target,
            self.evidence_key: self.evidence,
            "seconds": self.seconds,
            **{name: summary.to_json() for name, summary in self.detectors.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEvaluation:
        key = "evidence" if "evidence" in data else "neuron_evidence"
        return cls(
            verdict=data["verdict"],
            suspected_target=data["suspected_target"],
            evidence=data[key],
            seconds=data["seconds"],
            detectors={k: DetectorSummary.from_json(v) for k, v in data.items() if k not in _AUDIT_KEYS},
            evidence_key=key,
        )


@dataclass(frozen=True)
class InputScreenScore:
    """An input screen fitted on the defender's clean images, scored on triggered vs clean test images."""

    auroc: float
    tpr: float
    fpr: float
    n: int
    seconds: float


@dataclass(frozen=True)
class TrainingScreenScore:
    """A training-data screen's flags against the poison manifest."""

    precision: float
    recall: float
    false_positive_rate: float
    flagged: int
    poisoned: int
    seconds: float


@dataclass(frozen=True)
class RepairScore:
    """The repaired model on the held-out test set, and the seconds the repair took."""

    clean_accuracy: float
    attack_success_rate: float
    seconds: float


_EVALUATION_KEYS = ("attack", "model", "audit", "training_data", "repair", "config", "timing")


@dataclass(frozen=True)
class ModelEvaluation(CustomJson):
    """Every registered defense on one model, scored with what the evaluator knows (``evaluate_defenses``); the
    input screens are written under their names between the audit and the training-data screens; ``repair``
    only for backdoored models; ``config`` and ``timing`` once the evaluation job has written them."""

    attack: EvaluatedAttack
    model: ModelScores
    audit: AuditEvaluation
    inputs: dict[str, InputScreenScore]
    training_data: dict[str, TrainingScreenScore]
    repair: dict[str, RepairScore] | None = None
    config: Mapping[str, Any] | None = None  # the evaluation job's configuration
    timing: Mapping[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "attack": to_json(self.attack),
            "model": to_json(self.model),
            "audit": self.audit.to_json(),
            **{name: to_json(score) for name, score in self.inputs.items()},
            "training_data": to_json(self.training_data),
        }
        for key in ("repair", "config", "timing"):
            if (value := getattr(self, key)) is not None:
                data[key] = to_json(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelEvaluation:
        return cls(
            attack=from_json(EvaluatedAttack, data["attack"]),
            model=from_json(ModelScores, data["model"]),
            audit=AuditEvaluation.from_json(data["audit"]),
            inputs={
                k: from_json(InputScreenScore, v)
                for k, v in data.items()
                if k not in _EVALUATION_KEYS and k not in _ROW_KEYS
            },
            training_data=from_json(dict[str, TrainingScreenScore], data["training_data"]),
            repair=from_json(dict[str, RepairScore], data["repair"]) if "repair" in data else None,
            config=data.get("config"),
            timing=data.get("timing"),
        )

    def flag(self, detector: str) -> tuple[bool, int | None]:
        """``detector``'s call on this model (``audit``: the audit's verdict): flagged, and the suspected target."""
        if detector == "audit":
            return self.audit.verdict == "backdoored", self.audit.suspected_target
        summary = self.audit.detectors[detector]
        return summary.flagged, summary.suspected_target


_ROW_KEYS = ("name", "kind", "learned")


@dataclass(frozen=True)
class EvaluatedModel(CustomJson):
    """One model of the zoo: its name, the kind of attack (``clean``, ``all-to-one``, ``single``, ``all-to-all``,
    ``random``, ``blended``), whether the backdoor took, and its evaluation (written beside them)."""

    name: str
    kind: str
    learned: bool
    evaluation: ModelEvaluation

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "learned": self.learned, **self.evaluation.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluatedModel:
        return cls(data["name"], data["kind"], bool(data["learned"]), ModelEvaluation.from_json(data))


@dataclass(frozen=True)
class DetectionRates:
    """A detector over the MNIST zoo: TPR over every BadNet whose backdoor took and over the all-to-one /
    single-target ones, FPR over the clean models, the share of hits naming the right target, hits by kind."""

    tpr: float
    tpr_targeted: float
    fpr: float
    correct_target: float
    by_kind: dict[str, str]


@dataclass(frozen=True)
class StripSummary:
    patch_auroc_mean: float
    patch_auroc_min: float


@dataclass(frozen=True)
class ScreenRates:
    """A training-data screen's mean precision, recall and false-positive rate at 10% poison."""

    precision: float
    recall: float
    false_positive_rate: float


@dataclass(frozen=True)
class RepairRates:
    """A repair over the backdoored models: mean attack success after, mean clean drop, how many met the target
    (``k/n``), mean seconds."""

    asr_after: float
    clean_drop: float
    meets_target: str
    seconds: float


@dataclass(frozen=True)
class Runtime:
    neural_cleanse_seconds_mnist: float
    audit_seconds_mnist: float


@dataclass(frozen=True)
class DefenseResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    models: list[EvaluatedModel]
    detection: dict[str, DetectionRates]
    strip: StripSummary
    training_data: dict[str, ScreenRates]
    repair: dict[str, RepairRates]
    runtime: Runtime
    targets: list[Target]
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)
