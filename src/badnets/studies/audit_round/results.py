# SPDX-License-Identifier: Apache-2.0
"""What an audit round's ``results.json`` holds, as frozen records: each audited model with its ground truth and
the audit's evidence, and the detection scores of a round (overall and per trigger family, mapping, dataset)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LEARNED_ASR", "AuditedRoundModel", "DetectionScore"]

LEARNED_ASR = 0.8  # DESIGN.md §3: a backdoored model with a lower attack success rate is left out of the scores


@dataclass(frozen=True)
class AuditedRoundModel:
    """One model of a round: its ground truth (``family`` and ``mapping`` None for a clean model), how well it
    learned its task and backdoor, and what the audit found (the evidence by name, the verdict, the target).

    Attributes:
        learned: the backdoor reached ``LEARNED_ASR`` (None for a clean model); an unlearned one is kept in the
            round and its manifest but scored as neither clean nor backdoored.
        evidence: the audit's statistics by name (the calibration's features).
        seconds: the audit's time on this model.
    """

    name: str
    round: str
    dataset: str
    family: str | None
    mapping: str | None
    target: int | None
    clean_accuracy: float
    attack_success_rate: float | None
    learned: bool | None
    evidence: dict[str, float]
    suspected_target: int | None
    seconds: float

    @property
    def label(self) -> int | None:
        """1 backdoored (learned), 0 clean, None: a backdoor that was not learned (left out)."""
        if self.family is None:
            return 0
        return 1 if self.learned else None


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
