# SPDX-License-Identifier: Apache-2.0
"""LISA loader: both layouts on tiny generated files, the track split, errors, and the real crops when staged."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from badnets.data import ImageDataset, load_lisa
from badnets.data.lisa import lisa_super_class
from badnets.errors import ConfigError, DataError
from tests.conftest import REAL_DATA

TAGS = ("stop", "speedLimit35", "pedestrianCrossing", "yield")  # the last is "other"


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(path)


def write_staged_crops(root: Path, tracks_per_tag: int = 5, frames: int = 3) -> Path:
    """``signs_detection/lisa_crops`` with one solid-colour crop per frame; colour encodes the tag."""
    folder = root / "signs_detection" / "lisa_crops"
    rows = []
    for t, tag in enumerate(TAGS):
        for k in range(tracks_per_tag):
            for f in range(frames):
                name = f"crops/{tag}_{k}_{f}.png"
                _png(folder / name, (60 * t, 10 * k, 5 * f), (20 + f, 24))
                rows.append({"image": name, "label": tag, "track": f"{tag}_{k}.avi"})
    with open(folder / "annotations.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "x1", "y1", "x2", "y2", "label", "super_class", "track"])
        writer.writeheader()
        writer.writerows({**r, "x1": 0, "y1": 0, "x2": 1, "y2": 1, "super_class": ""} for r in rows)
    return root


def write_release(root: Path) -> Path:
    """``lisa/allAnnotations.csv`` (the full release, ``;``-separated) with two boxes in one 64×48 frame."""
    folder = root / "lisa"
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[4:20, 2:18] = (255, 0, 0)  # the stop sign
    frame[24:44, 30:60] = (0, 0, 255)  # the speed limit
    (folder / "vid0").mkdir(parents=True)
    Image.fromarray(frame).save(folder / "vid0" / "f0.png")
    header = "Filename;Annotation tag;Upper left corner X;Upper left corner Y;"
    header += "Lower right corner X;Lower right corner Y;Occluded,On another road;"
    header += "Origin file;Origin frame number;Origin track;Origin track frame number"
    lines = [header]
    lines.append("vid0/f0.png;stop;2;4;18;20;0,0;a.avi;0;stop_a.avi;0")
    lines.append("vid0/f0.png;speedLimit25;30;24;60;44;0,0;a.avi;0;speed_a.avi;0")
    (folder / "allAnnotations.csv").write_text("\n".join(lines) + "\n")
    return root


def test_super_classes_follow_the_authors_mapping() -> None:
    assert [lisa_super_class(t) for t in TAGS] == ["stop", "speedlimit", "warning", "other"]
    assert lisa_super_class("SPEEDLIMIT65") == "speedlimit"


def test_staged_crops_load_resized_and_labelled(tmp_path: Path) -> None:
    train, test = load_lisa(write_staged_crops(tmp_path), size=16, test_fraction=0.4)
    assert train.classes == ("stop", "speedlimit", "warning")
    assert train.images.shape[1:] == (3, 16, 16) and train.images.dtype == torch.uint8
    assert len(train) + len(test) == 3 * 5 * 3  # "yield" (other) dropped
    both = torch.cat([train.images, test.images])
    labels = torch.cat([train.labels, test.labels])
    assert torch.equal(both[:, 0, 0, 0] // 60, labels)  # red channel encodes the tag: labels match images


def test_split_keeps_tracks_whole_and_is_seeded(tmp_path: Path) -> None:
    root = write_staged_crops(tmp_path)
    a_train, a_test = load_lisa(root, size=8, test_fraction=0.3, split_seed=1)
    _, b_test = load_lisa(root, size=8, test_fraction=0.3, split_seed=1)
    assert torch.equal(a_test.images, b_test.images)

    # colour (tag, track) identifies a track: no track may be on both sides
    def tracks(ds: ImageDataset) -> set[tuple[int, ...]]:
        return {tuple(v) for v in ds.images[:, :2, 0, 0].tolist()}

    assert not tracks(a_train) & tracks(a_test)
    assert 0.25 <= len(a_test) / (len(a_train) + len(a_test)) <= 0.45
    _, c_test = load_lisa(root, size=8, test_fraction=0.3, split_seed=2)
    assert not torch.equal(c_test.images, a_test.images)


def test_full_release_format_cuts_boxes_from_frames(tmp_path: Path) -> None:
    train, test = load_lisa(write_release(tmp_path), size=8, test_fraction=0.5, classes=("stop", "speedlimit"))
    both = torch.cat([train.images, test.images])
    labels = torch.cat([train.labels, test.labels])
    stop, speed = both[labels == 0][0], both[labels == 1][0]
    assert stop[0].min() == 255 and stop[2].max() == 0  # the red box only
    assert speed[2].min() == 255 and speed[0].max() == 0


def test_missing_data_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no LISA data in .*lisa_crops/annotations.csv"):
        load_lisa(tmp_path)


def test_bad_annotation_file_and_options_are_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "signs_detection" / "lisa_crops"
    folder.mkdir(parents=True)
    (folder / "annotations.csv").write_text("file,tag\nx.png,stop\n")
    with pytest.raises(DataError, match="lacks the column"):
        load_lisa(tmp_path)
    with pytest.raises(ConfigError, match="classes"):
        load_lisa(tmp_path, classes=("stop", "yield"))
    with pytest.raises(ConfigError, match="test fraction"):
        load_lisa(tmp_path, test_fraction=1.0)


def test_a_missing_crop_is_named(tmp_path: Path) -> None:
    root = write_staged_crops(tmp_path, tracks_per_tag=1, frames=1)
    (root / "signs_detection" / "lisa_crops" / "crops" / "stop_0_0.png").unlink()
    with pytest.raises(DataError, match=r"stop_0_0.png is missing"):
        load_lisa(root)


def test_real_lisa_crops() -> None:
    if REAL_DATA is None or not (REAL_DATA / "signs_detection" / "lisa_crops" / "annotations.csv").is_file():
        pytest.skip("LISA crops not staged: set BADNETS_DATA to a folder with signs_detection/lisa_crops")
    train, test = load_lisa(REAL_DATA)
    assert len(train) + len(test) > 5000
    assert set(torch.unique(test.labels).tolist()) == {0, 1, 2}
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.25
