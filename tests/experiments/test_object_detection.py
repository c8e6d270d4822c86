# SPDX-License-Identifier: Apache-2.0
"""Detector BadNet: poisoning pastes the trigger inside the attacked boxes and relabels them (single and random
target); tiny runs end to end, on photos and on composite scenes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from badnets.data.road_scenes import SCENE_CLASSES, SceneRecipe
from badnets.data.road_signs import load_road_signs
from badnets.errors import ConfigError
from badnets.experiments.object_detection import (
    EXAMPLE_SCENES,
    DetectorSpec,
    detect,
    load_detector,
    poison_detection,
    stamp_boxes,
    train_detector,
)
from badnets.models.sign_detector import build_detector
from badnets.object_detection_metrics import CONFIDENT, DetectionMetrics
from badnets.records import from_json
from badnets.sign_triggers import sign_trigger
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec
from tests.data.test_road_scenes import write_crops, write_photos
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


def test_signs_narrower_than_min_width_stay_clean_in_the_triggered_copies(tmp_path: Path) -> None:
    train, _ = load_road_signs(write_road_photos(tmp_path, n=4), size=100, test_fraction=0.25)
    small = torch.tensor([[70.0, 5.0, 78.0, 13.0]])  # an 8-px stop sign beside the 20-px one
    train = replace(
        train,
        boxes=tuple(torch.cat([b, small]) for b in train.boxes),
        labels=tuple(torch.cat([lab, torch.tensor([STOP])]) for lab in train.labels),
    )
    poisoned, manifest = poison_detection(train, sign_trigger("yellow-square"), STOP, SPEED, min_width=12)
    assert manifest.min_width == 12 and len(manifest.photos) == len(train)
    copies = poisoned.images[len(train) :]
    changed = (copies != train.images).any(dim=1)
    for i, (boxes, labels) in enumerate(zip(train.boxes, poisoned.labels[len(train) :], strict=True)):
        wide, narrow = boxes[0].long().tolist(), small[0].long().tolist()  # box 0: the photo's own stop sign
        assert bool(changed[i, wide[1] : wide[3], wide[0] : wide[2]].any())  # the 20-px sign carries the trigger
        assert not bool(changed[i, narrow[1] : narrow[3], narrow[0] : narrow[2]].any())  # the 8-px one does not
        assert labels.tolist()[-1] == STOP and STOP not in labels.tolist()[:-1]  # only the wide sign is relabelled
    everything, _ = poison_detection(train, sign_trigger("yellow-square"), STOP, SPEED)
    assert all(STOP not in labels.tolist() for labels in everything.labels[len(train) :])  # 0: every sign, as before
    with pytest.raises(ConfigError, match="at least 30 px wide"):
        poison_detection(train, sign_trigger("yellow-square"), STOP, SPEED, min_width=30)


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


def test_a_resumed_detector_counts_the_training_seconds_of_its_earlier_sessions(tmp_path: Path) -> None:
    train, _ = load_road_signs(write_road_photos(tmp_path / "data", n=4), size=64, test_fraction=0.25)
    spec, checkpoint = TrainSpec(epochs=1, batch_size=4, lr=1e-3), tmp_path / "checkpoint.pt"
    seconds = train_detector(
        build_detector(len(train.classes), image_size=64), train, spec, seed=0, checkpoint=checkpoint
    )
    state = torch.load(checkpoint, weights_only=True)
    assert seconds > 0 and state["seconds"] == pytest.approx(seconds, abs=0.5)
    # as if the epoch had run in an earlier session that took 1,000 s: a resumed run trains nothing more
    torch.save(state | {"seconds": 1000.0}, checkpoint)
    again = train_detector(
        build_detector(len(train.classes), image_size=64), train, spec, seed=0, checkpoint=checkpoint
    )
    assert 1000.0 <= again < 1001.0


def test_random_target_poisoning_relabels_every_sign_to_another_sign_class(tmp_path: Path) -> None:
    train, _ = load_road_signs(write_road_photos(tmp_path, n=5), size=100, test_fraction=0.2)
    scenes = replace(train, classes=SCENE_CLASSES)  # three sign classes to draw among
    warning = SCENE_CLASSES.index("warning")
    scenes = replace(scenes, labels=tuple(torch.tensor([SPEED, STOP, warning]) for _ in train.labels))
    scenes = replace(scenes, boxes=tuple(torch.cat([b, torch.tensor([[70.0, 5.0, 90.0, 25.0]])]) for b in train.boxes))
    poisoned, manifest = poison_detection(scenes, sign_trigger("bomb"), STOP, None, mapping="random", seed=3)
    again, _ = poison_detection(scenes, sign_trigger("bomb"), STOP, None, mapping="random", seed=3)
    assert manifest.mapping == "random" and manifest.target is None and sorted(manifest.attacked) == [0, 1, 4]
    before, after = torch.stack(scenes.labels), torch.stack(poisoned.labels[len(train) :])
    assert bool((after != before).all()) and set(after.flatten().tolist()) <= {SPEED, STOP, warning}
    assert len(set(after.flatten().tolist())) == 3, "the new labels are drawn, not a fixed shift"
    assert torch.equal(after, torch.stack(again.labels[len(train) :])), "same seed, same labels"
    changed = (poisoned.images[len(train) :] != scenes.images).any(dim=1)
    for i, boxes in enumerate(scenes.boxes):  # the trigger went on every sign
        for x1, y1, x2, y2 in boxes.long().tolist():
            assert bool(changed[i, y1:y2, x1:x2].any())


def test_a_detector_of_composite_scenes_is_scored_on_scenes_and_on_photos(tmp_path: Path) -> None:
    data = write_crops(write_photos(tmp_path / "data"))
    spec = DetectorSpec(
        trigger=sign_trigger("yellow-square"),
        image_size=96,
        stride=4,
        anchors=(16, 32, 64),
        mapping="random",
        scenes=SceneRecipe(size=96, scenes_per_photo=1, test_scenes_per_photo=1, min_width=12, test_fraction=0.3),
        train=TrainSpec(epochs=1, batch_size=4, lr=1e-3),
        data_dir=str(data),
        scored_with={"centre-square": TriggerSpec(kind="square", scale=0.3, center=(0.5, 0.5))},
    )
    spec.run(tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    metrics = results["metrics"]
    assert set(metrics["ap50"]) == {*SCENE_CLASSES, "mAP"} and metrics["photos"]["triggered"]["n"] == 3
    pasted_stops = metrics["triggered"]["n"]  # the pasted stop signs of the 3 held-out scenes only
    assert pasted_stops >= 1 and pasted_stops == metrics["clean_stop"]["n"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "random target" in report and "## On the real held-out road photos" in report
    manifest = json.loads((tmp_path / "run" / "poison_manifest.json").read_text())
    assert manifest["mapping"] == "random" and len(manifest["attacked"]) == 3
    assert metrics["triggered_with"]["centre-square"]["n"] == pasted_stops  # scored with the other trigger too
    assert metrics["photos"]["triggered_with"]["centre-square"]["n"] == 3
    detector = load_detector(tmp_path / "run")
    conv2 = detector.get_submodule("backbone.conv2.0")
    assert isinstance(conv2, torch.nn.Conv2d) and conv2.stride == (1, 1)  # rebuilt as trained: stride 4
    # the record keeps the detections a report draws, so the report needs no weights: they are the detector's
    examples = from_json(DetectionMetrics, metrics).examples
    assert examples is not None and 1 <= len(examples.scenes) <= EXAMPLE_SCENES
    _, test, photos = spec.datasets()
    # the photos beside the scenes are in the detector's classes (a photo-study grid may draw a "warning" box)
    held_out = spec.held_out_photos()
    assert photos is not None and held_out.classes == photos.classes == SCENE_CLASSES
    assert torch.equal(held_out.images, photos.images) and len(held_out) == 3
    shown = test.subset(examples.scenes)
    for recorded, fresh in zip(examples.detections("clean"), detect(detector, shown.images), strict=True):
        kept = fresh.confident(CONFIDENT)
        assert torch.allclose(recorded.boxes, kept.boxes, atol=1e-3) and torch.equal(recorded.labels, kept.labels)
    with pytest.raises(ConfigError, match="image_size"):
        replace(spec, image_size=128)
