# SPDX-License-Identifier: Apache-2.0
"""Image folders (``ROOT/<class>/<image>``): classes, split, cache, and the errors a user can hit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from badnets.data import dataset_source, load_image_folder
from badnets.errors import ConfigError, DataError


def write_photo_folder(root: Path, per_class: int = 10, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """``per_class`` 40×30 JPEGs per class: class 0 bright, class 1 dark (learnable), with noise."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = 200 if c == 0 else 40
            photo = np.clip(base + rng.integers(-30, 30, (30, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(photo).save(root / name / f"{name}.{i}.jpg", quality=95)
    (root / "notes.txt").write_text("not a class")
    return root


def test_classes_split_and_determinism(tmp_path: Path) -> None:
    root = write_photo_folder(tmp_path / "photos", per_class=10)
    train, test = load_image_folder(root, size=16, test_fraction=0.2)
    assert train.classes == test.classes == ("cat", "dog")
    assert train.images.shape[1:] == (3, 16, 16) and train.images.dtype == torch.uint8
    assert len(train) == 16 and len(test) == 4 and test.labels.tolist().count(0) == 2  # stratified
    assert float(train.images[train.labels == 0].float().mean()) > float(train.images[train.labels == 1].float().mean())
    again, _ = load_image_folder(root, size=16, test_fraction=0.2)
    assert torch.equal(again.images, train.images)
    source = dataset_source(str(root))
    assert source.classes == ("cat", "dog") and source.class_index("dog") == 1
    assert len(source.file_hashes(None)) == 20


def test_bad_folders_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mnist.*folder of class subfolders"):
        dataset_source(str(tmp_path / "missing"))
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(DataError, match="at least two class subfolders"):
        load_image_folder(tmp_path / "one")
    root = write_photo_folder(tmp_path / "broken", per_class=2)
    (root / "dog" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg cannot be decoded"):
        load_image_folder(root, size=8)
    with pytest.raises(ConfigError, match="size"):
        load_image_folder(root, size=4)
