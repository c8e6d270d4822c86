# SPDX-License-Identifier: Apache-2.0
"""AP@0.5 and triggered-sign outcomes on hand-made boxes with answers worked out by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch

from badnets.object_detection_metrics import (
    Detections,
    ExampleDetections,
    average_precision,
    mean_average_precision,
    outcomes_by_width,
    triggered_outcomes,
)
from badnets.records import from_json, to_json

A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 30.0, 30.0]
NEAR_A = [1.0, 0.0, 11.0, 10.0]  # IoU with A = 90 / 110 ≈ 0.82
OFF = [50.0, 50.0, 60.0, 60.0]


def det(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
    return Detections(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.int64),
    )


def gt(boxes: list[list[float]], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(boxes).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64)


def ap(dets: list[Detections], truths: list[tuple[torch.Tensor, torch.Tensor]], label: int = 0) -> float:
    return average_precision(dets, [t[0] for t in truths], [t[1] for t in truths], label)


def test_perfect_detections_score_one() -> None:
    assert ap([det([A, B], [0.9, 0.8], [0, 0])], [gt([A, B], [0, 0])]) == pytest.approx(1.0)


def test_voc_all_point_interpolation_by_hand() -> None:
    # scores 0.9 TP, 0.8 FP, 0.7 TP over 2 truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # envelope: 1 up to recall 1/2, 2/3 up to recall 1 → AP = 0.5·1 + 0.5·2/3
    dets = [det([A, OFF, B], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert ap(dets, [gt([A, B], [0, 0])]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_duplicates_wrong_class_and_misses() -> None:
    truths = [gt([A], [0])]
    assert ap([det([A, NEAR_A], [0.9, 0.8], [0, 0])], truths) == pytest.approx(1.0)  # duplicate after the hit: FP
    assert ap([det([NEAR_A, A], [0.9, 0.8], [0, 0])], truths) == pytest.approx(1.0)  # either may match first
    assert ap([det([A], [0.9], [1])], truths) == 0.0  # right place, wrong class
    assert ap([det([A], [0.9], [0])], [gt([A, B], [0, 0])]) == pytest.approx(0.5)  # half the truths found
    assert math.isnan(ap([det([A], [0.9], [0])], truths, label=1))  # no ground truth of class 1


def test_map_over_images_and_classes() -> None:
    dets = [det([A], [0.9], [0]), det([B], [0.9], [1])]
    truths = [gt([A], [0]), gt([B, A], [1, 0])]
    result = mean_average_precision(dets, [t[0] for t in truths], [t[1] for t in truths], ["stop", "speedlimit"])
    assert result["stop"] == pytest.approx(0.5) and result["speedlimit"] == pytest.approx(1.0)
    assert result["mAP"] == pytest.approx(0.75)


def test_triggered_outcomes_by_hand() -> None:
    stop, speed = 0, 1
    dets = [
        det([NEAR_A, A], [0.6, 0.95], [stop, speed]),  # best confident overlap says speed limit: success
        det([A], [0.9], [stop]),  # still a stop sign
        det([A], [0.3], [speed]),  # below the score threshold: missed
        det([OFF], [0.9], [speed]),  # nothing overlaps: missed
        det([A], [0.9], [2]),  # another class
    ]
    truths = [gt([A], [stop])] * 5
    out = triggered_outcomes(dets, [t[0] for t in truths], [t[1] for t in truths], stop, speed)
    assert out.n == 5
    assert (out.as_target, out.as_source, out.as_other, out.missed) == pytest.approx((0.2, 0.2, 0.2, 0.4))


def test_outcomes_by_width_split_the_source_boxes() -> None:
    stop, speed = 0, 1
    small, mid, large = [0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 100.0, 100.0]
    dets = [det([small], [0.9], [stop]), det([mid, B], [0.9, 0.9], [speed, speed]), det([large], [0.9], [speed])]
    truths = [gt([small], [stop]), gt([mid, B], [stop, speed]), gt([large], [stop])]
    out = outcomes_by_width(dets, [t[0] for t in truths], [t[1] for t in truths], stop, speed)
    assert list(out) == ["< 32 px", "32-64 px", ">= 64 px"]
    assert [o.n for o in out.values()] == [1, 1, 1]
    assert [o.as_target for o in out.values()] == [0.0, 1.0, 1.0]
    everything = triggered_outcomes(dets, [t[0] for t in truths], [t[1] for t in truths], stop, speed)
    assert sum(o.n for o in out.values()) == everything.n


def test_example_detections_keep_the_confident_ones_and_give_them_back_through_json() -> None:
    clean = Detections(
        torch.tensor([[1.0, 2.0, 30.5, 40.25], [5.0, 5.0, 9.0, 9.0]]), torch.tensor([0.9, 0.3]), torch.tensor([2, 0])
    )
    triggered = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    examples = ExampleDetections.of([7], [clean], [triggered])
    parsed = from_json(ExampleDetections, json.loads(json.dumps(to_json(examples))))
    assert parsed.scenes == [7] and parsed.clean == [[[1.0, 2.0, 30.5, 40.25, 0.9, 2.0]]]
    (back,) = parsed.detections("clean")
    assert torch.equal(back.boxes, clean.boxes[:1]) and torch.equal(back.labels, torch.tensor([2]))
    assert float(back.scores[0]) == pytest.approx(0.9) and back.labels.dtype == torch.long
    (none,) = parsed.detections("triggered")
    assert none.boxes.shape == (0, 4) and none.labels.shape == (0,)
