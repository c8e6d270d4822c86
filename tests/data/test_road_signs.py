# SPDX-License-Identifier: Apache-2.0
"""Road-scene detection data: tiny generated photos with boxes, scaling, the seeded split, errors, real data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from badnets.data.road_signs import load_road_signs
from badnets.errors import ConfigError, DataError
from tests.conftest import REAL_DATA


def write_road_photos(root: Path, n: int = 10) -> Path:
    """``n`` photos of 200×100 px, each with a red stop box at (20, 10)-(60, 50) and a blue speed limit box."""
    folder = root / "signs_detection" / "road_sign_detection"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        photo = np.zeros((100, 200, 3), dtype=np.uint8)
        photo[10:50, 20:60] = (255, 0, 0)
        photo[40:90, 120:180] = (0, 0, 255)
        Image.fromarray(photo).save(folder / "images" / f"road{i}.jpg", quality=95)
        rows.append([f"images/road{i}.jpg", 20, 10, 60, 50, "stop", "stop", 0])
        rows.append([f"images/road{i}.jpg", 120, 40, 180, 90, "speedlimit", "speedlimit", 0])
    with open(folder / "annotations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "x1", "y1", "x2", "y2", "label", "super_class", "difficult"])
        w.writerows(rows)
    return root


def test_photos_are_resized_with_their_boxes(tmp_path: Path) -> None:
    train, test = load_road_signs(write_road_photos(tmp_path), size=100, test_fraction=0.3)
    assert (len(train), len(test)) == (7, 3)
    assert train.images.shape == (7, 3, 100, 100) and train.images.dtype == torch.uint8
    stop = train.labels[0].tolist().index(1)
    assert torch.allclose(train.boxes[0][stop], torch.tensor([10.0, 10.0, 30.0, 50.0]))  # x halved, y kept
    x1, y1, x2, y2 = (int(v) for v in train.boxes[0][stop])
    patch = train.images[0][:, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].float().mean(dim=(1, 2))
    assert patch[0] > 200 and patch[2] < 50  # the box still frames the red sign


def test_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_road_photos(tmp_path, n=20)
    a_train, a_test = load_road_signs(root, size=64, split_seed=3)
    _, b_test = load_road_signs(root, size=64, split_seed=3)
    _, c_test = load_road_signs(root, size=64, split_seed=4)
    assert a_test.names == b_test.names and a_test.names != c_test.names
    assert not set(a_train.names) & set(a_test.names)


def test_class_filter_and_errors(tmp_path: Path) -> None:
    root = write_road_photos(tmp_path, n=4)
    train, _ = load_road_signs(root, size=64, classes=("stop",), test_fraction=0.25)
    assert all(lab.tolist() == [0] for lab in train.labels)
    with pytest.raises(ConfigError, match="classes"):
        load_road_signs(root, classes=("yield",))
    with pytest.raises(DataError, match="no road-sign photos"):
        load_road_signs(tmp_path / "nowhere")


def test_real_road_photos() -> None:
    if REAL_DATA is None or not (REAL_DATA / "signs_detection" / "road_sign_detection").is_dir():
        pytest.skip("road photos not staged: set BADNETS_DATA to a folder with signs_detection/road_sign_detection")
    train, test = load_road_signs(REAL_DATA)
    assert len(train) + len(test) == 877
    assert sum(len(b) for b in train.boxes) + sum(len(b) for b in test.boxes) == 1244
    stops = sum(int((lab == 1).sum()) for lab in test.labels)
    assert stops > 5
