# SPDX-License-Identifier: Apache-2.0
"""GTSRB loader: tiny generated npz files, the category grouping, errors, and the real subset when staged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from badnets.data import SOURCES, load_gtsrb
from badnets.data.gtsrb import GTSRB_CATEGORY_OF
from badnets.errors import DataError
from tests.conftest import REAL_DATA


def write_npz(root: Path, n: int = 86, side: int = 32) -> Path:
    (root / "gtsrb").mkdir(parents=True)
    for split in ("train", "test"):
        y = np.arange(n, dtype=np.int64) % 43
        x = np.zeros((n, side, side, 3), dtype=np.uint8)
        x[..., 0] = (y * 5).astype(np.uint8)[:, None, None]  # the class, readable back from the pixels
        np.savez_compressed(root / "gtsrb" / f"{split}.npz", x=x, y=y)
    return root


def test_grouped_categories_follow_gtsdb(tmp_path: Path) -> None:
    train, _ = load_gtsrb(write_npz(tmp_path))
    assert train.classes == ("prohibitory", "mandatory", "warning", "other")
    assert train.images.shape == (86, 3, 32, 32)
    original = train.images[:, 0, 0, 0].long() // 5
    assert torch.equal(train.labels, torch.tensor(GTSRB_CATEGORY_OF)[original])
    stop, limit_30, keep_right = 14, 1, 38
    assert GTSRB_CATEGORY_OF[stop] == 3 and GTSRB_CATEGORY_OF[limit_30] == 0 and GTSRB_CATEGORY_OF[keep_right] == 1
    assert GTSRB_CATEGORY_OF[25] == 2  # road work is a warning sign


def test_ungrouped_and_resized(tmp_path: Path) -> None:
    train, _ = load_gtsrb(write_npz(tmp_path), grouped=False, size=16)
    assert train.num_classes == 43 and train.images.shape[-1] == 16
    assert torch.equal(train.labels, torch.arange(86) % 43)


def test_the_43_class_source_is_ungrouped(tmp_path: Path) -> None:
    source = SOURCES["gtsrb-43"]
    train, test = source.load(write_npz(tmp_path))
    assert train.classes == test.classes == source.classes and len(source.classes) == 43
    assert torch.equal(test.labels, torch.arange(86) % 43)
    assert source.class_index("class14") == 14


def test_bad_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "gtsrb").mkdir()
    for split in ("train", "test"):
        np.savez(tmp_path / "gtsrb" / f"{split}.npz", x=np.zeros((2, 4)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"train.npz holds x"):
        load_gtsrb(tmp_path)


def test_missing_without_download_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"GTSRB is not in .*BADNETS_DATA"):
        load_gtsrb(tmp_path, download=False)


def test_real_gtsrb_subset() -> None:
    if REAL_DATA is None or not (REAL_DATA / "gtsrb" / "train.npz").is_file():
        pytest.skip("GTSRB not staged: set BADNETS_DATA to a folder with gtsrb/train.npz")
    train, test = load_gtsrb(REAL_DATA)
    assert (len(train), len(test)) == (13069, 6315)
    assert torch.bincount(train.labels).min() > 500
