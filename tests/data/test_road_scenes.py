# SPDX-License-Identifier: Apache-2.0
"""The scene compositor on tiny generated photos and crops: boxes follow the pasted signs, the splits keep LISA
tracks and photos apart, the draw is seeded, and the real data composite when staged."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from badnets.data import road_scenes
from badnets.data.lisa import lisa_signs, track_split
from badnets.data.road_scenes import SCENE_CLASSES, SceneRecipe, composite_road_scenes
from badnets.data.road_signs import load_road_signs
from badnets.errors import ConfigError
from tests.conftest import REAL_DATA

# each class pasted in a colour the photos (black, a red and a blue box) lack: green, magenta, cyan
COLOURS = {"stop": (0, 255, 0), "speedLimit35": (255, 0, 255), "pedestrianCrossing": (0, 255, 255)}
TRACKS = 6


def write_photos(root: Path, n: int = 10) -> Path:
    """``n`` black 160×120 photos, each with a red stop and a blue speed-limit box at its own place (the places
    pasted signs are drawn from)."""
    folder = root / "signs_detection" / "road_sign_detection"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        photo = np.zeros((120, 160, 3), dtype=np.uint8)
        stop, speed = (8 + 14 * i, 10 + 6 * i, 28 + 14 * i, 30 + 6 * i), (130 - 12 * i, 95, 154 - 12 * i, 119)
        for (x1, y1, x2, y2), colour in ((stop, (255, 0, 0)), (speed, (0, 0, 255))):
            photo[y1:y2, x1:x2] = colour
        Image.fromarray(photo).save(folder / "images" / f"road{i}.png")
        rows += [[f"images/road{i}.png", *stop, "stop"], [f"images/road{i}.png", *speed, "speedlimit"]]
    with open(folder / "annotations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "x1", "y1", "x2", "y2", "label"])
        writer.writerows(rows)
    return root


def write_crops(root: Path) -> Path:
    """``signs_detection/lisa_crops``: per tag ``TRACKS`` tracks of two 24×24 crops; the third channel's share
    encodes the track, so a pasted sign tells which track it came from whatever its brightness gain."""
    folder = root / "signs_detection" / "lisa_crops"
    (folder / "crops").mkdir(parents=True)
    rows = []
    for tag, colour in COLOURS.items():
        for k in range(TRACKS):
            for f in range(2):
                name = f"crops/{tag}_{k}_{f}.png"
                pixel = (colour[0], colour[1], 40 * k) if tag == "stop" else colour
                Image.fromarray(np.full((24, 24, 3), pixel, dtype=np.uint8)).save(folder / name)
                rows.append({"image": name, "label": tag, "track": f"{tag}_{k}.avi"})
    with open(folder / "annotations.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "x1", "y1", "x2", "y2", "label", "super_class", "track"])
        writer.writeheader()
        writer.writerows({**r, "x1": 0, "y1": 0, "x2": 24, "y2": 24, "super_class": ""} for r in rows)
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_crops(write_photos(tmp_path))


RECIPE = SceneRecipe(
    size=128, scenes_per_photo=3, test_scenes_per_photo=2, max_signs=3, min_width=12, blur=0.0, test_fraction=0.3
)


def test_boxes_follow_the_pasted_signs(data: Path) -> None:
    train, test = composite_road_scenes(data, RECIPE)
    assert train.classes == SCENE_CLASSES and len(train) == 7 * 3 and len(test) == 3 * 2
    photos, _ = load_road_signs(data, size=128, test_fraction=0.3)
    pasted_total = 0
    for i in range(len(train)):
        image, boxes, labels, pasted = train.images[i].int(), train.boxes[i], train.labels[i], train.pasted[i]  # type: ignore[index]
        own = photos.boxes[i // 3]
        assert torch.equal(boxes[~pasted], own) and not pasted[: len(own)].any()  # the photo's signs kept, first
        covered = torch.zeros(128, 128, dtype=torch.bool)
        for box, label in zip(boxes[pasted].long().tolist(), labels[pasted].tolist(), strict=True):
            x1, y1, x2, y2 = box
            r, g, b = image[:, y1:y2, x1:x2].float().mean(dim=(1, 2)).tolist()
            name = SCENE_CLASSES[label]
            if name == "stop":
                assert g > 100 and r < 20  # green, whatever the track's blue
            elif name == "speedlimit":
                assert r > 100 and b > 100 and g < 20
            else:
                assert name == "warning" and g > 100 and b > 100 and r < 20
            covered[y1:y2, x1:x2] = True
            pasted_total += 1
        for x1, y1, x2, y2 in own.tolist():  # the photos' own boxes, a pixel wider for the resize's blur
            covered[max(0, int(y1) - 1) : int(y2) + 1, max(0, int(x1) - 1) : int(x2) + 1] = True
        assert int(image[:, ~covered].max()) < 40, "a pasted sign reaches outside its box"
    assert pasted_total >= len(train)  # every scene got at least one sign


def test_test_scenes_hold_only_test_tracks(data: Path) -> None:
    recipe = SceneRecipe(
        size=128, scenes_per_photo=4, sign_weights=(1.0, 0.0, 0.0), min_width=12, blur=0.0, test_fraction=0.3
    )
    train, test = composite_road_scenes(data, recipe)
    signs = [s for s in lisa_signs(data) if s.super_class == "stop"]
    is_test = track_split([s.track for s in signs], 0.3, 0)  # split class by class
    test_tracks = {int(s.track.split("_")[1].split(".")[0]) for s, t in zip(signs, is_test.tolist(), strict=True) if t}
    assert 0 < len(test_tracks) < TRACKS
    for scenes, wanted in ((train, set(range(TRACKS)) - test_tracks), (test, test_tracks)):
        found = set()
        for image, boxes, pasted in zip(scenes.images, scenes.boxes, scenes.pasted or (), strict=True):
            for x1, y1, x2, y2 in boxes[pasted].long().tolist():
                _, g, b = image[:, y1:y2, x1:x2].float().mean(dim=(1, 2)).tolist()
                found.add(round(b / g * 255 / 40))  # the track, from the blue-to-green ratio
        assert found and found <= wanted


def test_the_draw_is_seeded(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(seed: int, cache: str) -> torch.Tensor:
        monkeypatch.setenv("BADNETS_CACHE", str(tmp_path / cache))  # a fresh cache: the scenes are drawn again
        road_scenes._composite.cache_clear()
        train, test = composite_road_scenes(data, SceneRecipe(size=96, min_width=10, test_fraction=0.3, seed=seed))
        return torch.cat([train.images, test.images])

    first = build(0, "a")
    assert torch.equal(first, build(0, "b"))
    assert not torch.equal(first, build(1, "c"))


def test_bad_recipes_name_the_field() -> None:
    with pytest.raises(ConfigError, match="sign_weights"):
        SceneRecipe(sign_weights=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="min_width"):
        SceneRecipe(size=64, min_width=40)


@pytest.mark.skipif(
    REAL_DATA is None or not (REAL_DATA / "signs_detection" / "lisa_crops").is_dir(),
    reason="road photos and LISA crops not staged: set BADNETS_DATA to a folder with signs_detection/",
)
@pytest.mark.slow
def test_real_scenes_have_hundreds_of_held_out_stop_signs() -> None:
    train, test = composite_road_scenes(REAL_DATA, SceneRecipe(size=160, scenes_per_photo=1))  # small: fast
    stop = SCENE_CLASSES.index("stop")
    pasted_stops = sum(int(((lab == stop) & p).sum()) for lab, p in zip(test.labels, test.pasted or (), strict=True))
    assert pasted_stops >= 150 and (len(train), len(test)) == (702, 3 * 175)  # 877 photos, 175 held out
