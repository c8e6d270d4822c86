# SPDX-License-Identifier: Apache-2.0
"""What the transfer study's ``results.json`` holds, as typed records (written by the analysis, read by the
report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.records import OMIT_WHEN_NONE, SeedStat, StudyFlags, StudyTiming, Target, TargetsJudged

__all__ = ["DomainAccuracy", "DomainScores", "TransferPaper", "TransferResults", "USNets"]


@dataclass(frozen=True)
class DomainAccuracy:
    """One retrained net on the target domain's test signs (a retraining job's ``metrics``): accuracy per class
    and ``average`` (all test signs), clean and triggered, and the test signs per class."""

    clean: dict[str, float]
    triggered: dict[str, float]
    n: dict[str, int]
    clean_accuracy: float


@dataclass(frozen=True)
class DomainScores:
    """Accuracy per target-domain class and ``average`` (all test signs), over seeds, clean and triggered."""

    clean: dict[str, SeedStat]
    triggered: dict[str, SeedStat]


@dataclass(frozen=True)
class USNets:
    """The US nets the user downloads: clean accuracy of the clean and the backdoored one, and the attack success."""

    baseline: SeedStat
    badnet: SeedStat
    badnet_asr: SeedStat


@dataclass(frozen=True)
class TransferPaper:
    """BadNets Tables 6 and 7 (Swedish signs): average accuracy, clean and triggered, as fractions."""

    baseline: dict[str, float]
    badnet_by_k: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class TransferResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    paper: TransferPaper
    n_test: dict[str, int]
    us: USNets
    backdoor_neurons: dict[str, list[int]]
    baseline: DomainScores
    badnet_by_k: dict[str, DomainScores]
    targets: list[Target]
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)

    def effect(self, k: str) -> float:
        """BadNet's triggered accuracy minus the clean net's (negative: the backdoor survives retraining)."""
        return self.badnet_by_k[k].triggered["average"].mean - self.baseline.triggered["average"].mean
