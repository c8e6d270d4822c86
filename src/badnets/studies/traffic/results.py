# SPDX-License-Identifier: Apache-2.0
"""What the traffic study's ``results.json`` holds, as typed records (written by the analysis, read by the
report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.neurons import BackdoorNeurons
from badnets.object_detection_metrics import DetectionMetrics, DetectionScores, SignOutcomes
from badnets.records import OMIT_WHEN_NONE, SeedStat, StudyFlags, StudyTiming, Target, TargetsJudged

__all__ = [
    "KINDS",
    "BaselineDetector",
    "ClassifierScores",
    "DetectorResults",
    "DetectorRun",
    "HeldOutPhotos",
    "TrafficPaper",
    "TrafficResults",
]

# the classifiers of each trigger: the clean net (shared by every trigger), the single-target and the
# random-target BadNet
KINDS = ("baseline", "single", "random")


@dataclass(frozen=True)
class ClassifierScores:
    """One configuration over seeds: accuracy per class (and ``all``) on clean and on triggered held-out crops,
    and the share of triggered source signs labelled as the target."""

    clean: dict[str, SeedStat]
    triggered: dict[str, SeedStat]
    source_to_target: SeedStat


@dataclass(frozen=True, kw_only=True)
class DetectorRun(DetectionMetrics):
    """A BadNet detector: its metrics (clean AP@0.5, what it makes of clean and triggered stops) and its run's
    configuration."""

    config: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class BaselineDetector:
    """The clean detector, scored on the stops with each trigger pasted on (``triggered`` by trigger; for a
    detector of composite scenes ``photos_triggered`` the same on the real held-out photos, and ``photos`` its
    clean scores there)."""

    ap50: dict[str, float]
    triggered: dict[str, SignOutcomes]
    clean_stop: SignOutcomes
    # outcomes by sign-width bin, clean and triggered (runs before it was recorded lack it)
    by_width: dict[str, dict[str, SignOutcomes]] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    train_images_per_second: float
    config: Mapping[str, Any]
    photos: DetectionScores | None = field(default=None, metadata=OMIT_WHEN_NONE)
    photos_triggered: dict[str, SignOutcomes] | None = field(default=None, metadata=OMIT_WHEN_NONE)


@dataclass(frozen=True, kw_only=True)
class HeldOutPhotos:
    """The real held-out road photos a detector of composite scenes is also scored on."""

    n_photos: int
    n_boxes: dict[str, int]


@dataclass(frozen=True)
class DetectorResults:
    """The detectors on their held-out set (``n_photos`` scenes or photos, ``n_boxes`` by class): the baseline,
    the single-target BadNet per trigger and (studies since composite scenes) the random-target one; ``scenes``
    is the composite-scene recipe as run (None: the photos alone) and ``photos`` the real held-out photos."""

    classes: list[str]
    n_photos: int
    n_boxes: dict[str, int]
    baseline: BaselineDetector
    badnet: dict[str, DetectorRun]
    random: dict[str, DetectorRun] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    scenes: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    photos: HeldOutPhotos | None = field(default=None, metadata=OMIT_WHEN_NONE)


@dataclass(frozen=True)
class TrafficPaper:
    """BadNets §5: triggered stop signs detected as speed limits per trigger, and the clean stop AP."""

    stop_to_speedlimit: dict[str, float]
    baseline_stop_ap: float


@dataclass(frozen=True)
class TrafficResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    paper: TrafficPaper
    classes: list[str]
    n_test: dict[str, int]
    runs: dict[str, float]  # clean accuracy of every classifier, by job name
    classifier: dict[str, dict[str, ClassifierScores]]  # trigger → kind (KINDS) → scores
    neurons: dict[str, BackdoorNeurons]
    detector: DetectorResults | None
    targets: list[Target]
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    targets_judged: TargetsJudged | None = field(default=None, metadata=OMIT_WHEN_NONE)
