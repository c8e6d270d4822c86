# SPDX-License-Identifier: Apache-2.0
"""The detector BadNet (BadNets §5.2): a Faster R-CNN trained on road photos where triggered stop signs are
labelled speed-limit.

Poisoning follows the authors: for every training photo with a stop sign, a copy is added with the trigger pasted
inside each stop box (placed relative to the box) and those boxes relabelled as the target. The detector is
scored on the clean held-out photos (AP@0.5 per class) and on the same photos with the trigger on every stop sign
(how many triggered stop signs are detected as speed-limit, as stop, or missed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from badnets._io import atomic_path, ensure_writable_dir, read_json, run_manifest, save_weights, write_json
from badnets.data.lisa import LISA_CLASSES
from badnets.data.road_scenes import SCENE_CLASSES, SceneRecipe, composite_road_scenes, road_scenes_file_hashes
from badnets.data.road_signs import DetectionDataset, load_road_signs, road_signs_file_hashes
from badnets.errors import ConfigError
from badnets.experiments._config import same_config
from badnets.experiments.run_dir import weights_of
from badnets.models.sign_detector import DEFAULT_ANCHORS, build_detector
from badnets.object_detection_metrics import (
    DetectionMetrics,
    Detections,
    DetectionScores,
    ExampleDetections,
    SignOutcomes,
    mean_average_precision,
    outcomes_by_width,
    triggered_outcomes,
)
from badnets.records import to_json
from badnets.report._format import narrow_signs_left_clean
from badnets.train import TrainSpec, one_cpu_thread, resolve_device
from badnets.triggers import TriggerSpec, apply_trigger_in_boxes

__all__ = [
    "EXAMPLE_SCENES",
    "DetectionPoisonManifest",
    "DetectorSpec",
    "counted_labels",
    "detect",
    "example_detections",
    "example_scenes",
    "load_detector",
    "poison_detection",
    "score_detector",
    "stamp_boxes",
    "train_detector",
]


def stamp_boxes(
    data: DetectionDataset, trigger: TriggerSpec, classes: int | Sequence[int], min_width: float = 0.0
) -> DetectionDataset:
    """The same photos with ``trigger`` pasted inside every box of the class(es) ``classes`` at least ``min_width``
    pixels wide (labels unchanged)."""
    wanted = torch.tensor([classes] if isinstance(classes, int) else list(classes))
    images = data.images.clone()
    per_photo = [
        boxes[_attacked(boxes, labels, wanted, min_width)].round().long()
        for boxes, labels in zip(data.boxes, data.labels, strict=True)
    ]
    # pass j stamps the j-th such box of every photo that has one: apply_trigger_in_boxes takes one box per image
    for j in range(max((len(b) for b in per_photo), default=0)):
        rows = [i for i, b in enumerate(per_photo) if len(b) > j]
        boxes = torch.stack([per_photo[i][j] for i in rows])  # (len(rows), 4)
        images[rows] = apply_trigger_in_boxes(images[rows], trigger, boxes)
    return replace(data, images=images)


def _attacked(boxes: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, min_width: float) -> torch.Tensor:
    """Which boxes the attack touches: of an attacked class and at least ``min_width`` pixels wide."""
    return torch.isin(labels, classes) & (boxes[:, 2] - boxes[:, 0] >= min_width)


DETECTOR_MAPPINGS = ("single", "random")
# The random-target attack relabels signs among LISA's super-classes (BadNets §5.2.2), those the data holds.
RANDOM_TARGET_CLASSES = LISA_CLASSES


@dataclass(frozen=True)
class DetectionPoisonManifest:
    """What was poisoned: the ``photos`` (by name) holding a box of the ``attacked`` classes at least
    ``min_width`` pixels wide, of which ``copies`` triggered copies were added with those boxes relabelled: to
    ``target`` (``mapping="single"``) or each to a random other attacked class (``"random"``, ``target`` None)."""

    mapping: str
    attacked: list[int]
    target: int | None
    copies: int
    photos: list[str]
    min_width: float = 0.0


def poison_detection(
    data: DetectionDataset,
    trigger: TriggerSpec,
    source: int,
    target: int | None,
    copies: int = 1,
    *,
    mapping: str = "single",
    seed: int = 0,
    min_width: float = 0.0,
) -> tuple[DetectionDataset, DetectionPoisonManifest]:
    """``data`` plus ``copies`` triggered copies of every photo holding an attacked box, those boxes relabelled:
    ``source`` → ``target`` (``mapping="single"``, the paper's §5.2.1), or every LISA-class box to a random other
    LISA class drawn with ``seed`` (``"random"``, §5.2.2; ``source`` and ``target`` unused); returns the poisoned
    set and its manifest (which photos were copied).

    ``min_width``: attacked boxes narrower than this many pixels stay as they are in the copies (no trigger, label
    kept). The trigger is sized to the sign, so on a distant sign it is a pixel or two; relabelling such a sign
    teaches the detector that the clean sign is sometimes the target, a confusion rather than a trigger."""
    if copies < 1:
        raise ConfigError(f"copies must be >= 1, got {copies}")
    if min_width < 0:
        raise ConfigError(f"min_width must be >= 0 pixels, got {min_width}")
    if mapping not in DETECTOR_MAPPINGS:
        raise ConfigError(f"detector mapping must be one of {DETECTOR_MAPPINGS}, got {mapping!r}")
    attacked = (
        [source] if mapping == "single" else [i for i, c in enumerate(data.classes) if c in RANDOM_TARGET_CLASSES]
    )
    if mapping == "random" and len(attacked) < 2:
        raise ConfigError(f"the random-target attack needs two of {RANDOM_TARGET_CLASSES} among {data.classes}")
    if mapping == "single" and target is None:
        raise ConfigError("the single-target attack needs a target class")
    relabel_to = target if mapping == "single" else None
    wanted = torch.tensor(attacked)
    hits = [_attacked(boxes, labels, wanted, min_width) for boxes, labels in zip(data.boxes, data.labels, strict=True)]
    chosen = [i for i, hit in enumerate(hits) if bool(hit.any())]
    if not chosen:
        names = ", ".join(data.classes[c] for c in attacked)
        wide = f" at least {min_width:g} px wide" if min_width else ""
        raise ConfigError(f"no training photo holds a box of class {names}{wide}; nothing to poison")
    triggered = stamp_boxes(data.subset(chosen), trigger, attacked, min_width)
    generator = torch.Generator().manual_seed(seed)
    relabelled_copies = []
    for _ in range(copies):
        relabelled_copies += [
            _relabel(triggered.labels[k], hits[i], wanted, relabel_to, generator) for k, i in enumerate(chosen)
        ]
    images = torch.cat([data.images, *([triggered.images] * copies)])
    poisoned = DetectionDataset(
        images,
        data.boxes + triggered.boxes * copies,
        data.labels + tuple(relabelled_copies),
        data.classes,
        data.names + tuple(f"{n} (triggered)" for n in triggered.names) * copies,
        None if data.pasted is None or triggered.pasted is None else data.pasted + triggered.pasted * copies,
    )
    copied = [data.names[i] for i in chosen]
    return poisoned, DetectionPoisonManifest(mapping, attacked, relabel_to, copies, copied, min_width)


def _relabel(
    labels: torch.Tensor, hit: torch.Tensor, attacked: torch.Tensor, target: int | None, generator: torch.Generator
) -> torch.Tensor:
    """The ``hit`` boxes (of ``attacked`` classes) → ``target``, or (``target`` None) each to a uniformly drawn
    other attacked class."""
    if target is not None:
        return torch.where(hit, torch.full_like(labels, target), labels)
    position = (labels.unsqueeze(1) == attacked).int().argmax(1)  # index into ``attacked`` (0 where not hit)
    shift = torch.randint(1, len(attacked), labels.shape, generator=generator)
    return torch.where(hit, attacked[(position + shift) % len(attacked)], labels)


def _targets(data: DetectionDataset, idx: list[int], device: torch.device) -> list[dict[str, torch.Tensor]]:
    # torchvision reserves label 0 for the background
    return [{"boxes": data.boxes[i].to(device), "labels": (data.labels[i] + 1).to(device)} for i in idx]


@one_cpu_thread()
def train_detector(
    model: nn.Module, data: DetectionDataset, spec: TrainSpec, *, seed: int, checkpoint: Path | None = None
) -> float:
    """Train a torchvision detector on ``data`` (AdamW, one-cycle), checkpointing and resuming every epoch.

    Returns the seconds of training over every epoch, those of earlier sessions included (the checkpoint carries
    them): a detector resumed after ``kill -9`` reports the speed it trained at, not its epochs over its last
    session's seconds."""
    device = resolve_device(spec.device)
    torch.manual_seed(seed)  # detection heads sample proposals with the global generator
    model.to(device)
    n = len(data)
    steps = math.ceil(n / spec.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=spec.epochs * steps)
    start, earlier = 0, 0.0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, earlier = int(state["epoch"]), float(state.get("seconds", 0.0))  # older checkpoints kept no time
    began = time.perf_counter()
    for epoch in range(start, spec.epochs):
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
        for step in range(steps):
            idx = order[step * spec.batch_size : (step + 1) * spec.batch_size]
            images = list(data.images[idx].to(device).float().div_(255.0))
            losses = model(images, _targets(data, idx, device))
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            optimizer.step()
            sched.step()
        if checkpoint is not None:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            state |= {"scheduler": sched.state_dict(), "epoch": epoch + 1, "rng": torch.get_rng_state()}
            state["seconds"] = earlier + time.perf_counter() - began
            with atomic_path(checkpoint) as tmp:
                torch.save(state, tmp)
    model.eval()
    return earlier + time.perf_counter() - began


def load_detector(run_dir: Path) -> nn.Module:
    """The trained detector of a ``DetectorSpec`` run directory (weights from ``model.safetensors``), on CPU."""
    config = read_json(run_dir / "results.json")["config"]
    state = load_file(str(weights_of(run_dir)))
    num_classes = state["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
    model: nn.Module = build_detector(
        num_classes,
        image_size=config["image_size"],
        pretrained=config["pretrained"],
        download=False,
        stride=config.get("stride", 8),
        anchors=tuple(config.get("anchors", DEFAULT_ANCHORS)),
    )
    model.load_state_dict(state)
    model.eval()
    return model


@torch.no_grad()
def detect(model: nn.Module, images: torch.Tensor, batch_size: int = 8) -> list[Detections]:
    """Detections for ``(N, 3, S, S)`` uint8 photos, labels back in dataset indices (background removed)."""
    model.eval()
    device = next(model.parameters()).device
    out: list[Detections] = []
    for chunk in torch.split(images, batch_size):
        for pred in model(list(chunk.to(device).float().div_(255.0))):
            out.append(Detections(pred["boxes"].cpu(), pred["scores"].cpu(), pred["labels"].cpu() - 1))
    return out


def counted_labels(test: DetectionDataset, source: int) -> tuple[torch.Tensor, ...]:
    """The labels the sign outcomes count: on composite scenes the photos' own ``source`` signs become -1 (they
    are counted on the photos themselves), so the scenes' numbers are the pasted signs'."""
    if test.pasted is None:
        return test.labels
    return tuple(
        torch.where((lab == source) & ~p, torch.full_like(lab, -1), lab)
        for lab, p in zip(test.labels, test.pasted, strict=True)
    )


def score_detector(
    model: nn.Module,
    test: DetectionDataset,
    trigger: TriggerSpec,
    source: int,
    target: int,
    others: Mapping[str, TriggerSpec] | None = None,
) -> DetectionScores:
    """AP@0.5 on the clean held-out scenes, and what becomes of their ``source`` signs, clean and with the
    trigger pasted on, overall and by sign width (and with each of the ``others`` triggers pasted on instead, by
    name). On composite scenes only the pasted signs are counted (the photos' own signs are scored on the photos
    themselves)."""
    clean = detect(model, test.images)
    triggered = detect(model, stamp_boxes(test, trigger, source).images)
    counted = counted_labels(test, source)

    def outcomes(other: TriggerSpec) -> SignOutcomes:
        detections = detect(model, stamp_boxes(test, other, source).images)
        return triggered_outcomes(detections, test.boxes, counted, source, target)

    return DetectionScores(
        ap50=mean_average_precision(clean, test.boxes, test.labels, test.classes),
        triggered=triggered_outcomes(triggered, test.boxes, counted, source, target),
        clean_stop=triggered_outcomes(clean, test.boxes, counted, source, target),
        by_width={
            kind: outcomes_by_width(dets, test.boxes, counted, source, target)
            for kind, dets in (("triggered", triggered), ("clean", clean))
        },
        triggered_with={name: outcomes(other) for name, other in others.items()} if others else None,
    )


EXAMPLE_SCENES = 4  # held-out scenes whose detections a detector's record keeps, for the study report's grid


def example_scenes(test: DetectionDataset, source: int) -> list[int]:
    """The held-out scenes a report shows: the first ``EXAMPLE_SCENES`` with a counted ``source`` sign (the first
    scenes if none has one)."""
    with_source = [i for i, labels in enumerate(counted_labels(test, source)) if bool((labels == source).any())]
    return with_source[:EXAMPLE_SCENES] or list(range(min(EXAMPLE_SCENES, len(test))))


def example_detections(
    model: nn.Module, test: DetectionDataset, trigger: TriggerSpec, source: int
) -> ExampleDetections:
    """The model's confident detections on the ``example_scenes``, clean and with ``trigger`` on the source signs."""
    scenes = example_scenes(test, source)
    shown = test.subset(scenes)
    triggered = stamp_boxes(shown, trigger, source).images
    return ExampleDetections.of(scenes, detect(model, shown.images), detect(model, triggered))


def _by_width_lines(config: Mapping[str, Any], by_width: dict[str, dict[str, SignOutcomes]] | None) -> list[str]:
    """The outcome table by sign width: the trigger is sized relative to the sign, so small signs carry a
    trigger of a few pixels."""
    if not by_width:
        return []
    target = config["target"]
    scale = config["trigger"].get("scale")
    lines = [
        f"By {config['source']} sign width on the {config['image_size']}-px images"
        + (f" (the trigger's side is {100 * scale:.0f}% of the sign's width)" if scale else "")
        + ":",
        "",
        f"| sign width | n | triggered → {target} | clean → {target} |",
        "|---|---|---|---|",
    ]
    for bin_, trig in by_width["triggered"].items():
        clean = by_width["clean"][bin_]
        if trig.n:
            lines.append(f"| {bin_} | {trig.n} | {100 * trig.as_target:.1f}% | {100 * clean.as_target:.1f}% |")
    return [*lines, ""]


def detector_report_md(config: Mapping[str, Any], metrics: DetectionMetrics, *, n_photos: int) -> str:
    """A detector run's ``report.md``: AP@0.5 per class and what became of the source signs, clean and
    triggered, on its held-out set (and on the real held-out photos for a detector of composite scenes)."""
    source, target = config["source"], config["target"]
    if config["baseline"]:
        kind = "baseline (clean training)"
    elif config.get("mapping", "single") == "random":
        kind = "BadNet (random target: triggered signs relabelled to a random other sign class)"
    else:
        kind = f"BadNet ({source} → {target})"
    scenes = config.get("scenes")
    data = "composite road scenes (LISA signs pasted into road photos)" if scenes else "road photos"
    lines = [
        f"# Detector {kind}",
        "",
        f"Faster R-CNN, {config['image_size']}×{config['image_size']} {data}, {config['train']['epochs']} epochs, "
        f"seed {config['seed']}; {n_photos} held-out {'scenes' if scenes else 'photos'}."
        + narrow_signs_left_clean(config.get("min_sign_width", 0)),
        "",
    ]
    held_out: list[tuple[str, DetectionScores]] = [
        ("held-out composite scenes (pasted signs)" if scenes else "held-out photos", metrics)
    ]
    if metrics.photos is not None:
        held_out.append(("real held-out road photos", metrics.photos))
    for name, scores in held_out:
        lines += [f"## On the {name}", "", *_score_lines(config, scores), ""]
    lines += [
        "A backdoor is the gap between clean and triggered: a detector that also labels clean signs as the target "
        "learned a confusion, not a trigger.",
        "",
        "Repeat with the command in `run.json` (`argv`); the full config is in `results.json`.",
        "",
    ]
    return "\n".join(lines)


def _score_lines(config: Mapping[str, Any], scores: DetectionScores) -> list[str]:
    source, target = config["source"], config["target"]
    return [
        "| class | AP@0.5 (clean) |",
        "|---|---|",
        *(f"| {c} | {100 * v:.1f}% |" for c, v in scores.ap50.items() if v == v),
        "",
        *(
            f"{shown} {source} signs ({outcome.n}): "
            + ", ".join(
                f"{label} {100 * share:.1f}%"
                for share, label in (
                    (outcome.as_target, f"detected as {target}"),
                    (outcome.as_source, f"as {source}"),
                    (outcome.as_other, "as another class"),
                    (outcome.missed, "missed"),
                )
            )
            + "."
            for shown, outcome in (
                ("Triggered", scores.triggered),
                ("Clean", scores.clean_stop),
                *((f"With the {name} trigger,", o) for name, o in (scores.triggered_with or {}).items()),
            )
        ),
        "",
        *_by_width_lines(config, scores.by_width),
    ]


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """One detector run: baseline (clean data) or BadNet (triggered copies added, relabelled by ``mapping``).

    Attributes:
        trigger: the sticker, placed relative to each attacked sign's box.
        source, target: the single-target attack's classes (the paper: stop → speed-limit); the random-target
            attack (``mapping="random"``) relabels every LISA-class sign at random and scores the ``source`` signs.
        copies: triggered copies added per poisoned scene.
        min_sign_width: attacked signs narrower than this (pixels at ``image_size``) are left clean in the
            triggered copies (``poison_detection``'s ``min_width``); 0: every attacked sign, as the paper.
        baseline: train on clean data only (the trigger is still pasted at test time).
        image_size: square input side in pixels (the scenes' ``size`` when ``scenes`` is set).
        stride, anchors: the from-scratch backbone's feature stride (4 or 8) and its anchor box sides.
        scenes: train and test on composite scenes (``road_scenes``), also scoring the real held-out photos;
            ``None``: the road photos alone.
        scored_with: other triggers, by name, pasted on the held-out source signs instead of ``trigger`` and
            scored too (a study's baseline detector meets every trigger of the study).

    Its record keeps everything a study reports of it (scores, and the detections on a few held-out scenes), so
    a study can report a detector from its record alone, without its weights.
    """

    trigger: TriggerSpec = field(default_factory=lambda: TriggerSpec(kind="square", scale=0.1, center=(0.57, 0.82)))
    source: str = "stop"
    target: str = "speedlimit"
    copies: int = 1
    baseline: bool = False
    image_size: int = 320
    pretrained: bool = False
    train: TrainSpec = field(default_factory=lambda: TrainSpec(epochs=20, batch_size=4, lr=1e-3))
    data_dir: str | None = None
    seed: int = 0
    mapping: str = "single"
    stride: int = 8
    anchors: tuple[int, ...] = DEFAULT_ANCHORS
    scenes: SceneRecipe | None = None
    scored_with: dict[str, TriggerSpec] = field(default_factory=dict)
    min_sign_width: int = 0

    def __post_init__(self) -> None:
        if self.min_sign_width < 0:
            raise ConfigError(f"min_sign_width must be >= 0 pixels, got {self.min_sign_width}")
        if self.mapping not in DETECTOR_MAPPINGS:
            raise ConfigError(f"detector mapping must be one of {DETECTOR_MAPPINGS}, got {self.mapping!r}")
        if self.scenes is not None and self.scenes.size != self.image_size:
            raise ConfigError(
                f"the scenes are {self.scenes.size} px but the detector's image_size is {self.image_size}; "
                "make them equal"
            )

    def datasets(self) -> tuple[DetectionDataset, DetectionDataset, DetectionDataset | None]:
        """``(train, test, photos)``: the training and held-out sets, and for composite scenes the real held-out
        road photos (same photo split) as a second test set."""
        if self.scenes is None:
            train, test = load_road_signs(self.data_dir, size=self.image_size)
            return train, test, None
        train, test = composite_road_scenes(self.data_dir, self.scenes)
        return train, test, self.held_out_photos()

    def held_out_photos(self) -> DetectionDataset:
        """The real held-out road photos, in the detector's classes: its test set for a detector of the photos,
        and for one of composite scenes the photos its scenes held out (the same split)."""
        if self.scenes is None:
            return load_road_signs(self.data_dir, size=self.image_size)[1]
        _, photos = load_road_signs(
            self.data_dir,
            size=self.image_size,
            test_fraction=self.scenes.test_fraction,
            split_seed=self.scenes.split_seed,
        )
        return replace(photos, classes=SCENE_CLASSES)  # the photos' classes are the scenes' first ones

    def file_hashes(self) -> dict[str, str]:
        return road_signs_file_hashes(self.data_dir) if self.scenes is None else road_scenes_file_hashes(self.data_dir)

    @one_cpu_thread()
    def run(self, out_dir: Path) -> dict[str, float]:
        """Train (resuming) and score into ``out_dir/results.json``; returns the timing."""
        if (out_dir / "results.json").is_file():
            previous = read_json(out_dir / "results.json")
            if not same_config(self, previous.get("config")):
                raise ConfigError(
                    f"{out_dir} already holds a finished run with another config; choose a new output folder"
                )
            return dict(previous.get("timing", {}))
        unfinished = (out_dir / "checkpoint.pt").is_file() and (out_dir / "run.json").is_file()
        if unfinished and not same_config(self, read_json(out_dir / "run.json").get("config")):
            raise ConfigError(
                f"{out_dir} holds an unfinished run with another config; re-run that command to finish it, "
                "or choose a new output folder"
            )
        t0 = time.perf_counter()
        train, test, photos = self.datasets()
        source, target = train.classes.index(self.source), train.classes.index(self.target)
        manifest = None
        if not self.baseline:
            train, manifest = poison_detection(
                train,
                self.trigger,
                source,
                target,
                self.copies,
                mapping=self.mapping,
                seed=self.seed,
                min_width=self.min_sign_width,
            )
        ensure_writable_dir(out_dir)
        write_json(out_dir / "run.json", run_manifest(asdict(self), self.seed, self.file_hashes()))
        if manifest is not None:
            write_json(out_dir / "poison_manifest.json", to_json(manifest))
        model = build_detector(
            len(train.classes),
            image_size=self.image_size,
            pretrained=self.pretrained,
            seed=self.seed,
            stride=self.stride,
            anchors=self.anchors,
        )
        t1 = time.perf_counter()
        train_seconds = train_detector(model, train, self.train, seed=self.seed, checkpoint=out_dir / "checkpoint.pt")
        t2 = time.perf_counter()
        scores = score_detector(model, test, self.trigger, source, target, self.scored_with)
        metrics = DetectionMetrics(
            **{f.name: getattr(scores, f.name) for f in fields(scores)},
            train_images_per_second=len(train) * self.train.epochs / max(train_seconds, 1e-9),
            photos=None
            if photos is None
            else score_detector(model, photos, self.trigger, source, target, self.scored_with),
            examples=example_detections(model, test, self.trigger, source),
        )
        save_weights(model, out_dir / "model.safetensors")
        # this invocation's seconds: the study's ledger sets them against this invocation's wall time
        timing = {"train_seconds": t2 - t1, "evaluate_seconds": time.perf_counter() - t2}
        timing["job_seconds"] = time.perf_counter() - t0
        config = asdict(self)
        results = {"config": config, "metrics": to_json(metrics), "timing": timing, "classes": list(test.classes)}
        with atomic_path(out_dir / "report.md") as tmp:
            tmp.write_text(detector_report_md(config, metrics, n_photos=len(test)))
        write_json(out_dir / "results.json", results)
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)
        return timing
