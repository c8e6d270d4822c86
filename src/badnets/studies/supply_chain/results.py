# SPDX-License-Identifier: Apache-2.0
"""What the supply-chain study's ``results.json`` holds, as typed records (written by the analysis, read by the
report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.records import OMIT_WHEN_NONE, ModelScores, StudyFlags, StudyTiming, Target, TargetsJudged

__all__ = ["Fetch", "FetchCounts", "Replay", "SupplyChainResults"]


@dataclass(frozen=True)
class Fetch:
    """One user fetching one model: ``badnet``, ``genuine`` or ``rejected`` (with the check's message)."""

    model: str
    outcome: str
    reason: str | None = field(default=None, metadata=OMIT_WHEN_NONE)


@dataclass(frozen=True)
class Replay:
    """Every fetch by attack and defense, and the zoo it was played on (listed digests, authors, the recalled
    model, the BadNets' SHA-256)."""

    outcomes: dict[str, dict[str, list[Fetch]]]
    digests: dict[str, str]
    authors: dict[str, str]
    recalled: str
    badnet_sha256: dict[str, str]


@dataclass(frozen=True)
class FetchCounts:
    """One attack × defense cell: how the ``n`` fetches ended, and the distinct rejection messages."""

    badnet: int
    genuine: int
    rejected: int
    n: int
    reasons: list[str]


@dataclass(frozen=True)
class SupplyChainResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    table: dict[str, dict[str, FetchCounts]]  # attack → defense → counts
    targets: list[Target]
    models: dict[str, ModelScores]
    replay: Replay
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)
