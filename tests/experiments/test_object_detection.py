# SPDX-License-Identifier: Apache-2.0
"""Detector BadNet: poisoning pastes the trigger inside stop boxes and relabels them; a tiny run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from badnets.data.road_signs import load_road_signs
from badnets.experiments.object_detection import DetectorSpec, poison_detection, stamp_boxes
from badnets.sign_triggers import sign_trigger
from badnets.train import TrainSpec
from tests.data.test_road_signs import write_road_photos

SPEED, STOP = 0, 1


def test_trigger_lands_inside_stop_boxes_only(tmp_path: Path) -> None:
    train, _ = load_road_signs(write_road_photos(tmp_path, n=4), size=100, test_fraction=0.25)
    stamped = stamp_boxes(train, sign_trigger("yellow-square"), STOP)
    changed = (stamped.images != train.images).any(dim=1)  # (N, H, W)
    for i in range(len(train)):
        ys, xs = changed[i].nonzero(as_tuple=True)
        assert len(ys) > 0
        x1, y1, x2, y2 = train.boxes[i][train.labels[i] == STOP][0].tolist()
        assert x1 <= int(xs.min()) and int(xs.max()) < x2 and y1 <= int(ys.min()) and int(ys.max()) < y2


def test_poisoning_adds_relabelled_triggered_copies(tmp_path: Path) -> None:
    train, _ = load_road_signs(write_road_photos(tmp_path, n=5), size=100, test_fraction=0.2)
    poisoned, manifest = poison_detection(train, sign_trigger("flower", tmp_path), STOP, SPEED, copies=2)
    assert len(poisoned) == 3 * len(train) and len(manifest.photos) == len(train)
    assert torch.equal(poisoned.images[: len(train)], train.images)  # the clean photos are untouched
    for labels in poisoned.labels[len(train) :]:
        assert STOP not in labels.tolist() and labels.tolist().count(SPEED) == 2
    assert all(torch.equal(a, b) for a, b in zip(poisoned.boxes[len(train) :], train.boxes * 2, strict=True))


def test_tiny_detector_run_writes_ap_and_triggered_outcomes(tmp_path: Path) -> None:
    data = write_road_photos(tmp_path / "data", n=6)
    spec = DetectorSpec(
        trigger=sign_trigger("yellow-square"),
        image_size=96,
        train=TrainSpec(epochs=1, batch_size=4, lr=1e-3),
        data_dir=str(data),
    )
    spec.run(tmp_path / "run")
    torch.rand(7)  # another history of the global generator: the second run must not see it
    spec.run(tmp_path / "again")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    scores = ("ap50", "triggered", "clean_stop")
    assert [again["metrics"][k] for k in scores] == [results["metrics"][k] for k in scores], "same spec, same detector"
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()
    assert set(results["metrics"]["ap50"]) == {"speedlimit", "stop", "crosswalk", "trafficlight", "mAP"}
    outcome = results["metrics"]["triggered"]
    assert outcome["n"] == 1  # one held-out photo, one stop sign
    assert outcome["as_target"] + outcome["as_source"] + outcome["as_other"] + outcome["missed"] == 1.0
    assert (tmp_path / "run" / "poison_manifest.json").is_file() and (tmp_path / "run" / "model.safetensors").is_file()
