# SPDX-License-Identifier: Apache-2.0
"""What an audit round's ``results.json`` holds, as frozen records: each trained model with its ground truth, each
audited model with the audit's evidence, and the detection scores of a round (overall and per trigger family,
mapping, dataset)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.records import OMIT_WHEN_NONE, StudyFlags, StudyTiming, Target, TargetsJudged

__all__ = [
    "JUDGED_ROUND",
    "KEPT_ACCURACY",
    "LEARNED_ASR",
    "REMOVED_ASR",
    "AuditRoundResults",
    "AuditedRoundModel",
    "CalibrationChoice",
    "DetectionScore",
    "MitigationScore",
    "RepairedRoundModel",
    "RoundRepairRecord",
    "RoundSummary",
    "TrainedRoundModel",
]

JUDGED_ROUND = "test"  # the round the targets are judged on (else the last scored one)
LEARNED_ASR = 0.8  # DESIGN.md §3: a backdoored model with a lower attack success rate is left out of the scores
REMOVED_ASR = 0.05  # a repair removed the backdoor when the attack succeeds on at most this share afterwards ...
KEPT_ACCURACY = 0.01  # ... and clean accuracy fell by at most this much (the bar: ≤ 5%, ≤ 1 point)


@dataclass(frozen=True)
class TrainedRoundModel:
    """One model of a round and its ground truth (``family``, ``mapping``, ``trigger`` None for a clean model):
    the backdoor it was given and how well it learned its task and the backdoor.

    Attributes:
        trigger: the trigger as the attack recorded it (its kind, pixels, position, opacity: the mask follows).
        learned: the backdoor reached ``LEARNED_ASR`` (None for a clean model); an unlearned one is kept in the
            round and its manifest but scored as neither clean nor backdoored.
        seconds: the model's own training and scoring time.
    """

    name: str
    round: str
    dataset: str
    family: str | None
    mapping: str | None
    target: int | None
    source: int | None
    rate: float | None
    trigger: dict[str, Any] | None
    epochs: int
    clean_accuracy: float
    attack_success_rate: float | None
    learned: bool | None
    seconds: float

    @property
    def label(self) -> int | None:
        """1 backdoored (learned), 0 clean, None: a backdoor that was not learned (left out)."""
        if self.family is None:
            return 0
        return 1 if self.learned else None


@dataclass(frozen=True)
class RoundAuditRecord:
    """An audit job's ``results.json``: the audit as ``badnets audit`` writes it (``AuditResult.to_json``), and
    the job's config and timing."""

    audit: dict[str, Any]
    config: dict[str, Any]
    timing: dict[str, float]


@dataclass(frozen=True)
class RoundRepairRecord:
    """A repair job's ``results.json``: the job's config, why it was skipped (a backdoor not learned) or the
    repair's record and the scores before and after (``badnets.defender.AttackScores``), and its timing."""

    config: dict[str, Any]
    skipped: str | None
    timing: dict[str, float]
    repair: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True)
class RepairedRoundModel:
    """One repair of one learned backdoor: clean accuracy and attack success before and after, on test images
    the repair never saw, and the repair's time."""

    model: str
    dataset: str
    family: str
    mapping: str
    method: str
    attack_success_before: float
    attack_success_after: float
    clean_accuracy_before: float
    clean_accuracy_after: float
    seconds: float

    @property
    def removed(self) -> bool:
        """The backdoor is gone (attack success ≤ 5%) at a clean cost of at most 1 point."""
        drop = self.clean_accuracy_before - self.clean_accuracy_after
        return self.attack_success_after <= REMOVED_ASR and drop <= KEPT_ACCURACY


@dataclass(frozen=True)
class MitigationScore:
    """One repair over a round's learned backdoors: the share it removed (``RepairedRoundModel.removed``), the
    mean attack success after, the mean clean-accuracy drop (points) and the mean seconds, overall and the
    removed share per trigger family and per dataset."""

    method: str
    models: int
    removed: float
    mean_attack_success_after: float
    mean_clean_drop_points: float
    mean_seconds: float
    removed_by_family: dict[str, float]
    removed_by_dataset: dict[str, float]


@dataclass(frozen=True)
class AuditedRoundModel:
    """What the audit found on one model of a round: the evidence by name (the calibration's features; NaN where
    a detector could not give one), the suspected target, the calibrated probability and the audit's time. Once
    the round is scored, the target is the calibrated verdict's (``badnets.audit.calibrated``), as
    ``badnets audit`` names it with the round's calibration shipped."""

    model: TrainedRoundModel
    evidence: dict[str, float]
    suspected_target: int | None
    seconds: float
    backdoor_probability: float | None = None


@dataclass(frozen=True)
class DetectionScore:
    """A detector's score over labelled models (DESIGN.md §3): AUROC of the probability, the TrojAI cross-entropy,
    the TPR at 5% FPR, and the share of detected backdoored models whose suspected target is the true one."""

    n_backdoored: int
    n_clean: int
    auroc: float
    cross_entropy: float
    tpr_at_5_fpr: float
    target_correct: float


@dataclass(frozen=True)
class RoundSummary:
    """A round's models at a glance: how many of each kind, and how well they learned.

    Attributes:
        backdoored: the backdoored models by trigger family.
        learned: of those, the ones whose backdoor reached ``LEARNED_ASR``, by family.
        clean_accuracy: the mean clean accuracy of the round's clean models, by dataset.
    """

    name: str
    models: int
    clean: int
    backdoored: dict[str, int]
    learned: dict[str, int]
    clean_accuracy: dict[str, float]


@dataclass(frozen=True)
class RoundScores:
    """The calibrated audit on one round: overall, the targeted backdoors (all-to-one, single-target) and the
    all-to-all ones each against the clean models, and broken down by family, mapping and dataset."""

    round: str
    overall: DetectionScore
    targeted: DetectionScore
    all_to_all: DetectionScore
    by_family: dict[str, DetectionScore]
    by_mapping: dict[str, DetectionScore]
    by_dataset: dict[str, DetectionScore]


@dataclass(frozen=True)
class CalibrationChoice:
    """A candidate calibration (its features and L2 penalty) scored on the train round by leave-one-out: each
    labelled model's probability comes from a fit on all the others, so the scores are out of sample while the
    test rounds stay unseen."""

    features: list[str]
    l2: float
    models: int
    auroc_targeted: float
    auroc_all_to_all: float
    cross_entropy: float
    chosen: bool


@dataclass(frozen=True)
class AuditRoundResults(StudyFlags):
    """The study's ``results.json``: the rounds' models with their ground truth (the round manifest), the summary
    of each round and, once the models are audited, the calibration fitted on the train round, every audited
    model and the scores of the other rounds."""

    spec: Mapping[str, Any]  # the study's configuration, as run
    rounds: list[RoundSummary]
    models: list[TrainedRoundModel]
    audited: list[AuditedRoundModel] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    calibration: dict[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    calibration_choice: list[CalibrationChoice] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    scores: list[RoundScores] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    unscored: str | None = field(default=None, metadata=OMIT_WHEN_NONE)  # why the audits could not be scored
    repaired: list[RepairedRoundModel] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    mitigation: list[MitigationScore] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets: list[Target] | None = field(default=None, metadata=OMIT_WHEN_NONE)  # once a round is scored
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)
