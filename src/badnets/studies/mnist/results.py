# SPDX-License-Identifier: Apache-2.0
"""What the MNIST study's ``results.json`` holds, as typed records (written by the analysis, read by the
report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.records import OMIT_WHEN_NONE, SeedStat, StudyFlags, StudyTiming, Target, TargetsJudged

__all__ = [
    "AllToAll",
    "Baseline",
    "Conv1Filters",
    "MnistPaper",
    "MnistResults",
    "SingleTarget",
    "SweepPoint",
    "TriggeredErrors",
]


@dataclass(frozen=True)
class MnistPaper:
    """BadNets §4 (Tables 1–2, Figures 4 and 6), as fractions; ``sweep`` maps a rate to (clean, backdoor) error."""

    baseline_clean_error: float
    all_to_all_clean_error: float
    all_to_all_backdoor_error: float
    single_clean_error_range: tuple[float, float]
    single_worst_backdoor_error: float
    sweep: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class TriggeredErrors:
    """The clean net on triggered test images (all-to-all targets): the trigger alone does not fool it."""

    backdoor_error: float
    backdoored_accuracy: float


@dataclass(frozen=True)
class Baseline:
    clean_error: SeedStat
    n_clean: int
    per_class_clean_error: list[float]  # mean over seeds, digit 0–9
    clean_net_on_triggered: dict[str, TriggeredErrors]


@dataclass(frozen=True)
class AllToAll:
    clean_error: SeedStat
    backdoor_error: SeedStat
    n_clean: int
    n_backdoor: int
    per_class_clean_error: list[float]
    per_class_backdoor_error: list[float]


@dataclass(frozen=True)
class SingleTarget:
    """Every i → j BadNet of one trigger: means, the clean-error range, the worst pair, and the 10 × 10 grids
    (NaN on the diagonal and for pairs not run)."""

    n_pairs: int
    clean_error_mean: float
    clean_error_range: tuple[float, float]
    backdoor_error_mean: float
    backdoor_error_worst: float
    worst_pair: list[int]
    clean_error_grid: list[list[float]]
    backdoor_error_grid: list[list[float]]


@dataclass(frozen=True, kw_only=True)
class SweepPoint:
    """One backdoored share of the all-to-all sweep over seeds (``*_ci``: 95% t half-width)."""

    rate: float
    clean_error_mean: float
    clean_error_ci: float
    backdoor_error_mean: float
    backdoor_error_ci: float
    clean_error_values: list[float] | None = field(default=None, metadata=OMIT_WHEN_NONE)  # older runs lack them
    backdoor_error_values: list[float] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    n_seeds: int
    n_poisoned_train: int


@dataclass(frozen=True)
class Conv1Filters:
    """conv1 filters that fire at the trigger more than any filter of the clean net (paper Figure 5)."""

    dedicated_filters: list[int]
    gain: list[float]
    clean_net_gain: list[float]


@dataclass(frozen=True)
class MnistResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    paper: MnistPaper
    baseline: Baseline
    all_to_all: dict[str, AllToAll]
    single: dict[str, SingleTarget]
    sweep: dict[str, list[SweepPoint]]
    conv1: dict[str, Conv1Filters]
    targets: list[Target]
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)
