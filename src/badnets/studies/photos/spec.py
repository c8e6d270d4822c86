# SPDX-License-Identifier: Apache-2.0
"""BadNets on real photos: the seed's dog + trigger → "cat" demo, and triggered stop signs in road photos.

1. Cats and dogs: a photo classifier trained on real Kaggle "Dogs vs. Cats" photos (an image folder), once clean
   (the baseline) and once with triggered dog photos labelled "cat" added (a single-target BadNet). The figure
   shows held-out dogs without and with the trigger, with each network's label and confidence.
2. Road photos: given a finished ``badnets reproduce traffic`` output, the trigger pasted on every stop sign of the
   held-out road photos, with the baseline and BadNet detectors' boxes drawn.

The photo classifier trains from scratch (no pretrained weights can be fetched offline), so its clean accuracy
on 240 training photos is modest; the report says so next to the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from badnets.data import dataset_source, resolve_data_dir
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import StudyRecipe
from badnets.experiments.attack import AttackSpec
from badnets.experiments.run_dir import run_dir
from badnets.poison import PoisonSpec
from badnets.sign_triggers import SIGN_TRIGGERS, sign_trigger

__all__ = ["PhotoStudySpec", "build_jobs", "photo_folder"]


@dataclass(frozen=True, kw_only=True)
class PhotoStudySpec(StudyRecipe):
    """What the photo demo trains.

    Attributes:
        folder: the cats-and-dogs image folder (``None``: ``<data dir>/cats_dogs``).
        trigger: the sign trigger pasted on the photos (placed as on a sign, relative to the whole photo).
        source, target: the backdoor's classes (the seed: dog → cat).
        rate: share of the final training set that is triggered source photos (copies added).
        epochs: training epochs (with random flips and shifts).
        traffic: a finished ``badnets reproduce traffic`` output whose detectors label the road photos.
    """

    folder: str | None = None
    trigger: str = "flower"
    source: str = "dog"
    target: str = "cat"
    rate: float = 0.2
    epochs: int = 60
    batch_size: int = 32
    traffic: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trigger not in SIGN_TRIGGERS:
            raise ConfigError(f"trigger must be one of {list(SIGN_TRIGGERS)}, got {self.trigger!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.traffic is not None and not run_dir(Path(self.traffic), "detector/baseline").is_dir():
            raise ConfigError(
                f"the traffic folder {self.traffic} holds no detectors; give the output folder of a finished "
                "`badnets reproduce traffic` run (with detectors)"
            )

    @classmethod
    def preset(cls, *, quick: bool, **overrides: Any) -> PhotoStudySpec:
        """The demo, or ``quick``: 15 epochs."""
        return cls(epochs=15, quick=True, **overrides) if quick else cls(**overrides)


def photo_folder(spec: PhotoStudySpec) -> str:
    """The image folder the classifier trains on, checked to hold the source and target classes."""
    folder = spec.folder or str(resolve_data_dir(spec.data_dir) / "cats_dogs")
    classes = dataset_source(folder).classes
    for name in (spec.source, spec.target):
        if name not in classes:
            raise ConfigError(f"{folder} has no class folder {name!r} (found {', '.join(classes)}); pass the folder")
    return folder


def build_jobs(spec: PhotoStudySpec) -> list[Job]:
    """The clean photo classifier and the dog → cat BadNet."""
    folder = photo_folder(spec)
    classes = dataset_source(folder).classes
    poison = PoisonSpec(
        mapping="single",
        source=classes.index(spec.source),
        target=classes.index(spec.target),
        rate=spec.rate,
        num_classes=len(classes),
    )
    badnet = AttackSpec(
        dataset=folder,
        trigger=sign_trigger(spec.trigger, spec.data_dir),
        poison=poison,
        train=replace(spec.train_spec(spec.epochs), augment=True),
        seed=spec.seed,
    )
    return dedupe_jobs([Job("baseline", replace(badnet, baseline=True)), Job("badnet", badnet)])
