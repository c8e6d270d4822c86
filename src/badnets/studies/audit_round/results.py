# SPDX-License-Identifier: Apache-2.0
"""What an audit round's ``results.json`` holds, as frozen records: each trained model with its ground truth, each
audited model with the audit's evidence, and the detection scores of a round (overall and per trigger family,
mapping, dataset)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.records import OMIT_WHEN_NONE, StudyFlags, StudyTiming

__all__ = [
    "LEARNED_ASR",
    "AuditRoundResults",
    "AuditedRoundModel",
    "DetectionScore",
    "RoundSummary",
    "TrainedRoundModel",
]

LEARNED_ASR = 0.8  # DESIGN.md §3: a backdoored model with a lower attack success rate is left out of the scores


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
class AuditedRoundModel:
    """What the audit found on one model of a round: the evidence by name (the calibration's features; NaN where
    a detector could not give one), the suspected target, the calibrated probability and the audit's time."""

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
class AuditRoundResults(StudyFlags):
    """The study's ``results.json``: the rounds' models with their ground truth (the round manifest), the summary
    of each round and, once the models are audited, the calibration fitted on the train round, every audited
    model and the scores of the other rounds."""

    spec: Mapping[str, Any]  # the study's configuration, as run
    rounds: list[RoundSummary]
    models: list[TrainedRoundModel]
    audited: list[AuditedRoundModel] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    calibration: dict[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    scores: list[RoundScores] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    unscored: str | None = field(default=None, metadata=OMIT_WHEN_NONE)  # why the audits could not be scored
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
