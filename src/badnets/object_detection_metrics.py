# SPDX-License-Identifier: Apache-2.0
"""Detection metrics for the traffic-sign detector (DESIGN.md §3).

* **AP@0.5** per class on clean scenes: Pascal-VOC all-point interpolated average precision; a detection is a
  true positive when its IoU with a not-yet-matched ground-truth box of its class is ≥ 0.5 (highest score first).
* **Triggered-sign outcomes**: for every triggered ground-truth stop sign, the highest-scoring detection above
  the score threshold with IoU ≥ 0.5 decides: labelled as the target (the attack succeeded), as the source
  (stop), as another class, or missed (no such detection).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torchvision.ops import box_iou

from badnets.records import OMIT_WHEN_NONE

__all__ = [
    "CONFIDENT",
    "WIDTH_BINS",
    "DetectionMetrics",
    "DetectionScores",
    "Detections",
    "ExampleDetections",
    "SignOutcomes",
    "average_precision",
    "mean_average_precision",
    "outcomes_by_width",
    "triggered_outcomes",
]


@dataclass(frozen=True)
class Detections:
    """One image's detections: ``boxes`` (n, 4) x1 y1 x2 y2, ``scores`` (n,), ``labels`` (n,) int64."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def confident(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])


CONFIDENT = 0.5  # the score a detection needs to count (sign outcomes) and to be drawn (the report's examples)


def average_precision(
    detections: Sequence[Detections],
    gt_boxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    label: int,
    iou_threshold: float = 0.5,
) -> float:
    """VOC all-point AP of class ``label`` over a set of images (NaN when the class has no ground truth)."""
    n_gt = sum(int((g == label).sum()) for g in gt_labels)
    if n_gt == 0:
        return float("nan")
    scored: list[tuple[float, bool]] = []
    for det, boxes, labels in zip(detections, gt_boxes, gt_labels, strict=True):
        keep = det.labels == label
        d_boxes, d_scores = det.boxes[keep], det.scores[keep]
        truth = boxes[labels == label]
        matched = torch.zeros(len(truth), dtype=torch.bool)
        ious = box_iou(d_boxes, truth) if len(truth) and len(d_boxes) else torch.zeros(len(d_boxes), len(truth))
        for i in torch.argsort(d_scores, descending=True).tolist():
            hit = False
            if len(truth):
                iou, j = ious[i].max(0)
                if float(iou) >= iou_threshold and not matched[j]:
                    matched[j] = hit = True
            scored.append((float(d_scores[i]), hit))
    if not scored:
        return 0.0
    scored.sort(key=lambda s: -s[0])
    hits = torch.tensor([h for _, h in scored], dtype=torch.float64)
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), tp / n_gt, torch.ones(1, dtype=torch.float64)])
    precision = torch.cat([torch.ones(1, dtype=torch.float64), tp / (tp + fp), torch.zeros(1, dtype=torch.float64)])
    # precision envelope (non-increasing from the right), then the area under the recall steps
    precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    steps = (recall[1:] != recall[:-1]).nonzero().flatten()
    return float(((recall[steps + 1] - recall[steps]) * precision[steps + 1]).sum())


def mean_average_precision(
    detections: Sequence[Detections],
    gt_boxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    classes: Sequence[str],
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """AP per class name, and ``mAP`` over the classes that have ground truth."""
    aps = {c: average_precision(detections, gt_boxes, gt_labels, i, iou_threshold) for i, c in enumerate(classes)}
    present = [v for v in aps.values() if v == v]
    return {**aps, "mAP": sum(present) / len(present) if present else float("nan")}


@dataclass(frozen=True)
class SignOutcomes:
    """What happened to triggered ground-truth signs of the source class."""

    n: int
    as_target: float
    as_source: float
    as_other: float
    missed: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class DetectionScores:
    """A detector on one held-out set: AP@0.5 per class and ``mAP``, what it makes of the triggered and the clean
    source signs, and the same by sign-width bin (``by_width[triggered | clean][bin]``; runs before it was
    recorded lack it)."""

    ap50: dict[str, float]
    triggered: SignOutcomes
    clean_stop: SignOutcomes
    by_width: dict[str, dict[str, SignOutcomes]] | None = field(default=None, metadata=OMIT_WHEN_NONE)
    triggered_with: dict[str, SignOutcomes] | None = field(default=None, metadata=OMIT_WHEN_NONE)


@dataclass(frozen=True)
class ExampleDetections:
    """A detector's confident detections on a few held-out scenes (``scenes``: their indices), clean and with its
    trigger on the source signs: one ``[x1, y1, x2, y2, score, label]`` row per detection, so a report can draw
    them without the detector's weights."""

    scenes: list[int]
    clean: list[list[list[float]]]
    triggered: list[list[list[float]]]

    @classmethod
    def of(
        cls, scenes: Sequence[int], clean: Sequence[Detections], triggered: Sequence[Detections]
    ) -> ExampleDetections:
        def rows(detections: Sequence[Detections]) -> list[list[list[float]]]:
            out = []
            for det in detections:
                kept = det.confident(CONFIDENT)
                values = torch.cat([kept.boxes, kept.scores[:, None], kept.labels[:, None].to(kept.boxes.dtype)], 1)
                out.append([[round(float(v), 3) for v in row] for row in values])
            return out

        return cls(list(scenes), rows(clean), rows(triggered))

    def detections(self, kind: str) -> list[Detections]:
        """The ``clean`` or ``triggered`` detections, one per scene."""
        rows = self.clean if kind == "clean" else self.triggered
        tables = [torch.tensor(r, dtype=torch.float32).reshape(-1, 6) for r in rows]
        return [Detections(t[:, :4], t[:, 4], t[:, 5].long()) for t in tables]


@dataclass(frozen=True, kw_only=True)
class DetectionMetrics(DetectionScores):
    """A trained detector: its scores on its own held-out set (composite scenes, or the road photos), its
    training speed, and, for a detector trained on composite scenes, its scores on the real held-out photos."""

    train_images_per_second: float
    photos: DetectionScores | None = field(default=None, metadata=OMIT_WHEN_NONE)
    examples: ExampleDetections | None = field(default=None, metadata=OMIT_WHEN_NONE)


def triggered_outcomes(
    detections: Sequence[Detections],
    gt_boxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    source: int,
    target: int,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = CONFIDENT,
) -> SignOutcomes:
    """Shares of the source-class ground-truth boxes detected as ``target``, as ``source``, as another class, or
    missed, judged by the best-scoring confident detection overlapping each box."""
    counts = {"target": 0, "source": 0, "other": 0, "missed": 0}
    n = 0
    for det, boxes, labels in zip(detections, gt_boxes, gt_labels, strict=True):
        truth = boxes[labels == source]
        if not len(truth):
            continue
        confident = det.scores >= score_threshold
        d_boxes, d_scores, d_labels = det.boxes[confident], det.scores[confident], det.labels[confident]
        ious = box_iou(truth, d_boxes) if len(d_boxes) else torch.zeros(len(truth), 0)
        for row in ious:
            n += 1
            overlapping = (row >= iou_threshold).nonzero().flatten()
            if not len(overlapping):
                counts["missed"] += 1
                continue
            best = int(d_labels[overlapping[d_scores[overlapping].argmax()]])
            counts["target" if best == target else "source" if best == source else "other"] += 1
    share = {k: v / n if n else float("nan") for k, v in counts.items()}
    return SignOutcomes(n, share["target"], share["source"], share["other"], share["missed"])


WIDTH_BINS = (32.0, 64.0)  # px: small signs carry a trigger of a few pixels only


def outcomes_by_width(
    detections: Sequence[Detections],
    gt_boxes: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    source: int,
    target: int,
    edges: Sequence[float] = WIDTH_BINS,
) -> dict[str, SignOutcomes]:
    """``triggered_outcomes`` for the source boxes split by box width in pixels (``< 32``, ``32-64``, ``>= 64``).

    A trigger sized relative to its sign covers only a few pixels on a small sign, which a detector may not
    resolve; this shows whether the misses are the small signs.
    """
    bounds = [0.0, *edges, float("inf")]
    out = {}
    for lo, hi in itertools.pairwise(bounds):
        name = f"< {hi:g} px" if lo == 0 else f">= {lo:g} px" if hi == float("inf") else f"{lo:g}-{hi:g} px"
        labels = []
        for boxes, lab in zip(gt_boxes, gt_labels, strict=True):
            width = boxes[:, 2] - boxes[:, 0] if len(boxes) else boxes.new_zeros(0)
            outside = (lab == source) & ((width < lo) | (width >= hi))
            labels.append(torch.where(outside, torch.full_like(lab, -1), lab))
        out[name] = triggered_outcomes(detections, gt_boxes, labels, source, target)
    return out
