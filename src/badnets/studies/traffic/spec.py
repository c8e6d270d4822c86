# SPDX-License-Identifier: Apache-2.0
"""The paper's traffic-sign case study (BadNets §5), classifier stage, on real LISA US sign crops.

1. Baseline: the sign network trained on clean stop / speed-limit / warning crops.
2. Single-target BadNet: triggered stop signs → speed-limit, backdoored copies added (§5.2.1), per trigger
   (yellow square, bomb, flower).
3. Random-target BadNet: each triggered sign gets a random wrong label (§5.2.2), per trigger.
4. Backdoor neurons (§5.3): channels of the last conv layer whose activation on triggered stop signs
   exceeds every channel of the clean network, found automatically.
5. Detector BadNet (§5.2): a Faster R-CNN on composite road scenes (real LISA signs pasted into real road photos,
   ``badnets.data.road_scenes``; or the photos alone), the baseline, one stop → speed-limit BadNet per trigger
   (triggered copies of the scenes holding a stop sign added, as the authors did) and one random-target BadNet
   per trigger (every triggered sign relabelled to a random other sign class, §5.2.2).

Every model is one job in ``out/runs/<name>`` (resumable, as in the MNIST study). The paper's classifier sits
inside a Faster R-CNN on full LISA frames, which are not available here: the classifier sees LISA sign crops
(split by track) and the detector sees road scenes composed of other real road photos and LISA signs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from badnets.data import LISA_CLASSES
from badnets.data.road_scenes import SceneRecipe
from badnets.data.road_signs import ROAD_SIGN_CLASSES
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import StudyRecipe
from badnets.experiments.attack import AttackSpec
from badnets.experiments.object_detection import DetectorSpec
from badnets.models.sign_detector import DETECTOR_STRIDES, SCENE_ANCHORS
from badnets.poison import PoisonSpec
from badnets.sign_triggers import SIGN_TRIGGERS, sign_trigger
from badnets.studies.traffic.results import KINDS, TrafficPaper
from badnets.train import TrainSpec

__all__ = [
    "KINDS",
    "PAPER",
    "TrafficStudySpec",
    "attack_spec",
    "build_jobs",
    "detector_spec",
    "random_target",
    "single_target",
]

# BadNets §5.2 and the authors' code, as fractions: triggered stop signs labelled speed-limit, per trigger.
PAPER = TrafficPaper(
    stop_to_speedlimit={"yellow-square": 0.909, "bomb": 0.919, "flower": 0.921},
    baseline_stop_ap=0.89,
)


@dataclass(frozen=True, kw_only=True)
class TrafficStudySpec(StudyRecipe):
    """What the traffic-sign study trains.

    Attributes:
        triggers: sign triggers to study (``SIGN_TRIGGERS``).
        seeds: seeds per configuration (baseline, each trigger's single- and random-target BadNet).
        rate: share of the final training set that is backdoored (copies added), for both attacks.
        source, target: the single-target attack's classes (the paper: stop → speed-limit).
        detector: also train the Faster R-CNN baseline and, per trigger, a single- and a random-target BadNet
            (seed 0 each, as the paper).
        detector_epochs, detector_size: the detector's training epochs and square input size (pixels).
        detector_scenes: train and test the detectors on composite scenes (``road_scenes``), also scoring the
            real held-out photos; False: on the road photos alone.
        scenes_per_photo: composite training scenes drawn per road photo.
        detector_stride: the from-scratch backbone's feature stride, 4 or 8 (``sign_detector``).
        detector_min_sign_width: the detector BadNets leave attacked signs narrower than this (pixels) clean in
            their triggered copies (``DetectorSpec.min_sign_width``); 0: every attacked sign, as the paper.
        pretrained: start the detector from torchvision's COCO MobileNetV3 weights (needs internet once).
        quick: a reduced demonstration run (reports say so and do not grade it against the targets).
    """

    triggers: tuple[str, ...] = SIGN_TRIGGERS
    seeds: int = 3
    epochs: int = 12
    rate: float = 0.1
    source: str = "stop"
    target: str = "speedlimit"
    detector: bool = True
    detector_epochs: int = 12
    detector_size: int = 320
    detector_scenes: bool = True
    scenes_per_photo: int = 1
    detector_stride: int = 4
    detector_min_sign_width: int = 0
    pretrained: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.triggers or any(t not in SIGN_TRIGGERS for t in self.triggers):
            raise ConfigError(f"study.triggers must be among {list(SIGN_TRIGGERS)}, got {list(self.triggers)}")
        for name in (self.source, self.target):
            if name not in LISA_CLASSES:
                raise ConfigError(f"source and target must be among {list(LISA_CLASSES)}, got {name!r}")
        if self.source == self.target:
            raise ConfigError("source and target must differ")
        if self.seeds < 1 or self.epochs < 1 or self.detector_epochs < 1:
            counts = f"{self.seeds}, {self.epochs}, {self.detector_epochs}"
            raise ConfigError(f"seeds, epochs and detector_epochs must be >= 1, got {counts}")
        if self.detector_size < 64:
            raise ConfigError(f"detector_size must be >= 64 pixels, got {self.detector_size}")
        if self.detector_min_sign_width < 0:
            raise ConfigError(f"detector_min_sign_width must be >= 0 pixels, got {self.detector_min_sign_width}")
        if self.detector_stride not in DETECTOR_STRIDES:
            raise ConfigError(f"detector_stride must be one of {DETECTOR_STRIDES}, got {self.detector_stride}")
        if self.detector and (self.source not in ROAD_SIGN_CLASSES or self.target not in ROAD_SIGN_CLASSES):
            raise ConfigError(
                f"the detector's photos have classes {list(ROAD_SIGN_CLASSES)}; set detector=False for "
                f"{self.source} → {self.target}"
            )

    @classmethod
    def preset(cls, *, quick: bool, seeds: int | None = None, **overrides: Any) -> TrafficStudySpec:
        """The full study, or ``quick``: two triggers, one seed, 4 epochs (detectors: 3 epochs at 224 px)."""
        if quick:
            small: dict[str, Any] = {"triggers": ("yellow-square", "flower"), "seeds": 1, "epochs": 4}
            small |= {"detector_epochs": 3, "detector_size": 224, "quick": True}
            base = cls(**(small | overrides))
        else:
            base = cls(**overrides)
        return base if seeds is None else replace(base, seeds=seeds)


def attack_spec(
    spec: TrafficStudySpec, trigger: str, poison: PoisonSpec, seed: int, *, baseline: bool = False
) -> AttackSpec:
    return AttackSpec(
        dataset="lisa",
        data_dir=spec.data_dir,
        trigger=sign_trigger(trigger, spec.data_dir),
        poison=poison,
        train=spec.train_spec(spec.epochs),
        seed=seed,
        baseline=baseline,
    )


def single_target(spec: TrafficStudySpec) -> PoisonSpec:
    """The paper's single-target attack on the sign classifier: triggered ``source`` signs labelled ``target``."""
    return PoisonSpec(
        mapping="single",
        source=LISA_CLASSES.index(spec.source),
        target=LISA_CLASSES.index(spec.target),
        rate=spec.rate,
        num_classes=len(LISA_CLASSES),
    )


def random_target(spec: TrafficStudySpec) -> PoisonSpec:
    """The random-target attack (§5.2.2): each triggered sign gets a random wrong label among the LISA classes."""
    return PoisonSpec(mapping="random", rate=spec.rate, num_classes=len(LISA_CLASSES))


def detector_spec(spec: TrafficStudySpec, trigger: str | None, mapping: str = "single") -> DetectorSpec:
    """The detector BadNet for ``trigger`` (``mapping`` single or random target), or the clean baseline detector
    for ``None`` (scored with every trigger of the study)."""
    scenes = SceneRecipe(size=spec.detector_size, scenes_per_photo=spec.scenes_per_photo)
    return DetectorSpec(
        trigger=sign_trigger(trigger or spec.triggers[0], spec.data_dir),
        source=spec.source,
        target=spec.target,
        baseline=trigger is None,
        image_size=spec.detector_size,
        pretrained=spec.pretrained,
        train=TrainSpec(epochs=spec.detector_epochs, batch_size=4, lr=1e-3, label_smoothing=0.0, device=spec.device),
        data_dir=spec.data_dir,
        seed=0,
        mapping=mapping,
        stride=spec.detector_stride,
        anchors=SCENE_ANCHORS,
        scenes=scenes if spec.detector_scenes else None,
        scored_with={} if trigger else {t: sign_trigger(t, spec.data_dir) for t in spec.triggers},
        min_sign_width=spec.detector_min_sign_width,
    )


def build_jobs(spec: TrafficStudySpec) -> list[Job]:
    """Every model of the study: the detectors first (the longest jobs: the baseline, per trigger a single-target
    BadNet, then a random-target one), then per seed the baseline classifier and per trigger a single- and a
    random-target BadNet."""
    random = random_target(spec)
    jobs = []
    if spec.detector:
        jobs.append(Job("detector/baseline", detector_spec(spec, None)))
        jobs += [Job(f"detector/{trig}", detector_spec(spec, trig)) for trig in spec.triggers]
        jobs += [Job(f"detector/random/{trig}", detector_spec(spec, trig, "random")) for trig in spec.triggers]
    for seed in range(spec.seeds):
        baseline = attack_spec(spec, spec.triggers[0], single_target(spec), seed, baseline=True)
        jobs.append(Job(f"baseline/s{seed}", baseline))
        for trig in spec.triggers:
            jobs.append(Job(f"single/{trig}/s{seed}", attack_spec(spec, trig, single_target(spec), seed)))
            jobs.append(Job(f"random/{trig}/s{seed}", attack_spec(spec, trig, random, seed)))
    return dedupe_jobs(jobs)
