# SPDX-License-Identifier: Apache-2.0
"""What the photos study's ``results.json`` holds, as typed records (written by the analysis, read by the
report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from badnets.object_detection_metrics import SignOutcomes
from badnets.records import OMIT_WHEN_NONE, StudyFlags, StudyTiming

__all__ = ["PhotoClassifier", "PhotoResults", "PhotoScores", "RoadPhotos"]


@dataclass(frozen=True)
class PhotoScores:
    """One photo classifier on the held-out photos: accuracy, per class, and triggered source photos → target."""

    clean_accuracy: float
    per_class: dict[str, float]
    triggered_source_as_target: float


@dataclass(frozen=True)
class PhotoClassifier:
    folder: str
    classes: list[str]
    n_test: dict[str, int]
    baseline: PhotoScores
    badnet: PhotoScores


@dataclass(frozen=True)
class RoadPhotos:
    """The traffic study's detectors on held-out road photos with stop signs: ``outcomes[detector][clean |
    triggered]``."""

    traffic: str
    trigger: str
    n_photos: int
    outcomes: dict[str, dict[str, SignOutcomes]]
    trained_on: str = "road photos"  # or "composite road scenes" (the traffic study's default since issue 17)


@dataclass(frozen=True)
class PhotoResults(StudyFlags):
    spec: Mapping[str, Any]  # the study's configuration, as run
    classifier: PhotoClassifier
    road_photos: RoadPhotos | None
    runs: dict[str, float]  # clean accuracy by job name
    timing: StudyTiming | None = field(default=None, metadata=OMIT_WHEN_NONE)
    manifest: Mapping[str, Any] | None = field(default=None, metadata=OMIT_WHEN_NONE)
