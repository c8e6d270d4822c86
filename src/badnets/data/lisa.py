# SPDX-License-Identifier: Apache-2.0
"""LISA US traffic signs (Møgelmose, Trivedi, Moeslund, IEEE T-ITS 2012), as sign crops in super-classes.

BadNets §5 trains on LISA's stop / speed-limit / warning super-classes. Two layouts are read:

* the full LISA release, ``<data dir>/lisa/allAnnotations.csv`` (``;``-separated) with its frames beside it;
  every annotated box is cut out of its frame (the paper's setting, ≈ 8.6k boxes);
* sign crops with an ``annotations.csv`` (``image,…,label,super_class,…,track``), as staged in
  ``<data dir>/signs_detection/lisa_crops`` (6,987 real LISA crops; see its README).

Crops are resized to ``size × size`` (aspect ratio not kept) and cached as uint8 tensors. The train/test split is
drawn by LISA *track* (one video snippet of one sign), seeded, because frames of one track are near-duplicates and
a split by frame leaks them into the test set.

Deviation from the paper: the paper classifies boxes inside a Faster R-CNN; here the classifier sees the crops
(the detector lives in ``road_signs``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from badnets._io import file_sha256
from badnets.data._dataset import ImageDataset, resolve_data_dir
from badnets.data._images import read_rgb, resize_square, tensor_cache
from badnets.errors import ConfigError, DataError

__all__ = [
    "LISA_CLASSES",
    "LisaSign",
    "lisa_file_hashes",
    "lisa_signs",
    "lisa_super_class",
    "load_lisa",
    "read_sign",
    "track_split",
]

LISA_CLASSES = ("stop", "speedlimit", "warning")

# The BadNets authors' mapping (Kooscii/BadNets, datasets/fetch_usts.py); matched case-insensitively.
_WARNING = [
    *("addedLane", "curveLeft", "curveRight", "dip", "intersection", "laneEnds", "merge", "pedestrianCrossing"),
    *("roundAbout", "signalAhead", "slow", "speedBumpsAhead", "stopAhead", "thruMergeLeft", "thruMergeRight"),
    *("turnLeft", "turnRight", "yieldAhead", "warningUrdbl"),
]
_SPEED = [f"speedLimit{v}" for v in (15, 25, 30, 35, 40, 45, 50, 55, 65)] + ["speedLimitUrdbl"]
_SUPER = {t.lower(): "warning" for t in _WARNING} | {t.lower(): "speedlimit" for t in _SPEED} | {"stop": "stop"}


def lisa_super_class(tag: str) -> str:
    """A LISA annotation tag → ``stop``, ``speedlimit``, ``warning`` or ``other`` (the authors' mapping)."""
    return _SUPER.get(tag.strip().lower(), "other")


@dataclass(frozen=True)
class LisaSign:
    """One annotated sign: the file holding it, its box there (``None``: the file is the crop), its LISA tag and
    the track (one video snippet of one physical sign) it belongs to."""

    path: Path
    box: tuple[int, int, int, int] | None
    label: str
    track: str

    @property
    def super_class(self) -> str:
        return lisa_super_class(self.label)


def _find(root: Path) -> Path:
    for candidate in (
        root / "lisa" / "allAnnotations.csv",
        root / "LISA" / "allAnnotations.csv",
        root / "signs_detection" / "lisa_crops" / "annotations.csv",
        root / "lisa_crops" / "annotations.csv",
    ):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"no LISA data in {root}: expected lisa/allAnnotations.csv (full release) or "
        "signs_detection/lisa_crops/annotations.csv (crops); set data_dir (or $BADNETS_DATA) to the folder holding it"
    )


def _read_csv(path: Path, delimiter: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path} ({e}); replace it") from e


def _need(row: dict[str, str], keys: Sequence[str], path: Path) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; is it a LISA annotation file?")


def _release_crops(index: Path) -> list[LisaSign]:
    rows = _read_csv(index, ";")
    corners = ["Upper left corner X", "Upper left corner Y", "Lower right corner X", "Lower right corner Y"]
    if rows:
        _need(rows[0], ["Filename", "Annotation tag", *corners], index)
    crops = []
    for row in rows:
        try:
            x1, y1, x2, y2 = (int(float(row[c])) for c in corners)
        except ValueError as e:
            raise DataError(f"{index}: bad box in the row for {row['Filename']} ({e}); fix or remove the row") from e
        track = row.get("Origin track") or row["Filename"]
        crops.append(LisaSign(index.parent / row["Filename"], (x1, y1, x2, y2), row["Annotation tag"], track))
    return crops


def _staged_crops(index: Path) -> list[LisaSign]:
    rows = _read_csv(index, ",")
    if rows:
        _need(rows[0], ["image", "label", "track"], index)
    return [LisaSign(index.parent / r["image"], None, r["label"], r["track"]) for r in rows]


def read_sign(sign: LisaSign) -> torch.Tensor:
    """The sign's pixels at their own size, ``(3, h, w)`` uint8 (a frame with several boxes is decoded once).

    Raises:
        DataError: the file is missing or unreadable, or the box lies outside it.
    """
    image = _read_frame(sign.path)
    if sign.box is None:
        return image
    x1, y1, x2, y2 = sign.box
    _, h, w = image.shape
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise DataError(f"box {sign.box} lies outside {sign.path} ({w}×{h}); fix its annotation")
    return image[:, y1:y2, x1:x2]


def _decode(crops: Sequence[LisaSign], size: int) -> torch.Tensor:
    """Every crop resized to ``size``."""
    out = torch.empty(len(crops), 3, size, size, dtype=torch.uint8)
    for i, crop in enumerate(crops):
        out[i] = resize_square(read_sign(crop), size)
    return out


@functools.lru_cache(maxsize=8)
def _read_frame(path: Path) -> torch.Tensor:
    return read_rgb(path)


def track_split(tracks: Sequence[str], test_fraction: float, seed: int) -> torch.Tensor:
    """Bool mask of test rows: whole tracks, in a seeded order, until ``test_fraction`` of the rows are test."""
    names = sorted(set(tracks))
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    sizes: dict[str, int] = {}
    for t in tracks:
        sizes[t] = sizes.get(t, 0) + 1
    test: set[str] = set()
    count = 0
    for i in order:
        if count >= test_fraction * len(tracks):
            break
        test.add(names[i])
        count += sizes[names[i]]
    return torch.tensor([t in test for t in tracks], dtype=torch.bool)


def _signs(index: Path) -> list[LisaSign]:
    return _release_crops(index) if index.name == "allAnnotations.csv" else _staged_crops(index)


def lisa_signs(data_dir: Path | str | None = None, classes: Sequence[str] = LISA_CLASSES) -> list[LisaSign]:
    """Every annotated LISA sign of the super-``classes``, in file order (pixels are read by ``read_sign``).

    Raises:
        DataError: no LISA data in the folder, or no sign of those classes.
    """
    index = _find(resolve_data_dir(data_dir))
    signs = [s for s in _signs(index) if s.super_class in classes]
    if not signs:
        raise DataError(f"{index} holds no boxes of the classes {tuple(classes)}; check the file")
    return signs


def lisa_file_hashes(data_dir: Path | str | None = None) -> dict[str, str]:
    """SHA-256 of the annotation file a LISA load reads, and one digest over its image list (for manifests)."""
    index = _find(resolve_data_dir(data_dir))
    crops = _signs(index)
    listing = hashlib.sha256()
    for path in sorted({c.path for c in crops}):
        listing.update(f"{path.relative_to(index.parent)}:{path.stat().st_size if path.exists() else -1}\n".encode())
    return {index.name: file_sha256(index), "images (names and sizes)": listing.hexdigest()}


def load_lisa(
    data_dir: Path | str | None = None,
    *,
    size: int = 32,
    classes: Sequence[str] = LISA_CLASSES,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> tuple[ImageDataset, ImageDataset]:
    """LISA sign crops as ``(train, test)`` ``(N, 3, size, size)`` uint8 images, split by track.

    Args:
        data_dir: folder holding ``lisa/`` or ``signs_detection/lisa_crops/`` (``--data-dir``).
        size: side the crops are resized to.
        classes: super-classes to keep, in label order (``other`` may be added); boxes of other classes are dropped.
        test_fraction: share of the crops (whole tracks) held out for testing.
        split_seed: seed of the track split (fixed across experiments so every model sees the same test set).

    Raises:
        ConfigError: a bad size, class or fraction.
        DataError: the files are missing or malformed (naming the file).
    """
    known = (*LISA_CLASSES, "other")
    if unknown := [c for c in classes if c not in known]:
        raise ConfigError(f"LISA classes must be among {known}, got {unknown[0]!r}")
    if not 8 <= size <= 512:
        raise ConfigError(f"LISA crop size must be in [8, 512], got {size}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    hashes = lisa_file_hashes(data_dir)
    return _load(resolve_data_dir(data_dir).resolve(), size, tuple(classes), test_fraction, split_seed, hashes)


def _load(
    root: Path, size: int, classes: tuple[str, ...], test_fraction: float, seed: int, hashes: dict[str, str]
) -> tuple[ImageDataset, ImageDataset]:
    crops = lisa_signs(root, classes)
    key = hashlib.sha256(f"{sorted(hashes.items())}{size}{classes}".encode()).hexdigest()
    images = tensor_cache("lisa", key, lambda: {"images": _decode(crops, size)})["images"]
    _read_frame.cache_clear()
    labels = torch.tensor([classes.index(c.super_class) for c in crops], dtype=torch.int64)
    test = track_split([c.track for c in crops], test_fraction, seed)
    return (
        ImageDataset(images[~test].contiguous(), labels[~test], classes),
        ImageDataset(images[test].contiguous(), labels[test], classes),
    )
