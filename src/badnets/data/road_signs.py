# SPDX-License-Identifier: Apache-2.0
"""Road scenes with sign boxes: the detector's data (BadNets §5 trains a Faster R-CNN on full LISA frames).

No full-frame LISA copy is reachable, so the detector trains on the Kaggle "Road Sign Detection" photos (Larxel
2020, CC0): 877 real road photos with 1,244 boxes of speedlimit, stop, crosswalk and trafficlight, staged as
``<data dir>/signs_detection/road_sign_detection/annotations.csv`` (``image,x1,y1,x2,y2,label,…``) beside the
JPEGs. Any folder with an ``annotations.csv`` of that shape loads the same way.

Every photo is resized once to ``size × size`` (boxes scaled with it) and cached as uint8 tensors, so training
reads one tensor and the trigger is pasted with tensor ops. The train/test split is by photo, seeded.
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
from badnets.data._dataset import resolve_data_dir
from badnets.data._images import read_rgb, resize_square, tensor_cache
from badnets.errors import ConfigError, DataError

__all__ = ["ROAD_SIGN_CLASSES", "DetectionDataset", "load_road_signs", "road_signs_file_hashes"]

ROAD_SIGN_CLASSES = ("speedlimit", "stop", "crosswalk", "trafficlight")


@dataclass(frozen=True)
class DetectionDataset:
    """Photos with boxes, held as tensors.

    Attributes:
        images: ``(N, 3, S, S)`` uint8.
        boxes: per image, ``(n_i, 4)`` float32 (x1, y1, x2, y2) in pixels of the stored image.
        labels: per image, ``(n_i,)`` int64 class indices into ``classes``.
        classes: class names.
        names: the source file of each image (for reports).
        pasted: per image, ``(n_i,)`` bool: the box is a sign the scene compositor pasted in (``road_scenes``);
            ``None``: every box is the photo's own.
    """

    images: torch.Tensor
    boxes: tuple[torch.Tensor, ...]
    labels: tuple[torch.Tensor, ...]
    classes: tuple[str, ...]
    names: tuple[str, ...]
    pasted: tuple[torch.Tensor, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: Sequence[int] | torch.Tensor) -> DetectionDataset:
        idx = [int(i) for i in index]
        return DetectionDataset(
            self.images[idx].contiguous(),
            tuple(self.boxes[i] for i in idx),
            tuple(self.labels[i] for i in idx),
            self.classes,
            tuple(self.names[i] for i in idx),
            None if self.pasted is None else tuple(self.pasted[i] for i in idx),
        )


def _index(root: Path) -> Path:
    for candidate in (
        root / "signs_detection" / "road_sign_detection" / "annotations.csv",
        root / "road_sign_detection" / "annotations.csv",
    ):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"no road-sign photos in {root}: expected signs_detection/road_sign_detection/annotations.csv; "
        "set data_dir (or $BADNETS_DATA) to the folder holding it"
    )


def _rows(index: Path) -> dict[str, list[tuple[tuple[float, float, float, float], str]]]:
    """Image path → its boxes, in file order."""
    try:
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {index} ({e}); replace it") from e
    if rows and (missing := {"image", "x1", "y1", "x2", "y2", "label"} - set(rows[0])):
        raise DataError(f"{index} lacks the column(s) {', '.join(sorted(missing))}; is it a box annotation file?")
    per_image: dict[str, list[tuple[tuple[float, float, float, float], str]]] = {}
    for r in rows:
        try:
            box = (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))
        except ValueError as e:
            raise DataError(f"{index}: bad box for {r['image']} ({e}); fix or remove the row") from e
        per_image.setdefault(r["image"], []).append((box, r["label"]))
    return per_image


def road_signs_file_hashes(data_dir: Path | str | None = None) -> dict[str, str]:
    """SHA-256 of the annotation file (for manifests)."""
    index = _index(resolve_data_dir(data_dir))
    return {f"road_sign_detection/{index.name}": file_sha256(index)}


@functools.lru_cache(maxsize=4)
def _load_all(root: Path, size: int, classes: tuple[str, ...]) -> DetectionDataset:
    index = _index(root)
    per_image = {name: [(b, lab) for b, lab in boxes if lab in classes] for name, boxes in _rows(index).items()}
    per_image = {name: boxes for name, boxes in per_image.items() if boxes}
    if not per_image:
        raise DataError(f"{index} holds no boxes of the classes {classes}; check the file")
    names = tuple(sorted(per_image))

    def decode() -> dict[str, torch.Tensor]:
        images = torch.empty(len(names), 3, size, size, dtype=torch.uint8)
        scales = torch.empty(len(names), 2)
        for i, name in enumerate(names):
            img = read_rgb(index.parent / name)
            scales[i] = torch.tensor([size / img.shape[2], size / img.shape[1]])
            images[i] = resize_square(img, size)
        return {"images": images, "scales": scales}

    key = hashlib.sha256(f"{file_sha256(index)}{size}{classes}".encode()).hexdigest()
    t = tensor_cache("road-signs", key, decode)
    boxes, labels = [], []
    for i, name in enumerate(names):
        sx, sy = (float(v) for v in t["scales"][i])
        b = torch.tensor([box for box, _ in per_image[name]], dtype=torch.float32) * torch.tensor([sx, sy, sx, sy])
        boxes.append(b.clamp(0, size))
        labels.append(torch.tensor([classes.index(lab) for _, lab in per_image[name]], dtype=torch.int64))
    return DetectionDataset(t["images"], tuple(boxes), tuple(labels), classes, names)


def load_road_signs(
    data_dir: Path | str | None = None,
    *,
    size: int = 320,
    classes: Sequence[str] = ROAD_SIGN_CLASSES,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> tuple[DetectionDataset, DetectionDataset]:
    """The road photos as ``(train, test)`` detection sets, each photo resized to ``size × size``.

    Args:
        data_dir: folder holding ``signs_detection/road_sign_detection`` (``--data-dir``).
        classes: box classes to keep, in label order; photos left without boxes are dropped.
        test_fraction: share of photos held out, drawn with ``split_seed``.

    Raises:
        ConfigError: a bad size, class or fraction.
        DataError: the files are missing or malformed (naming the file).
    """
    if unknown := [c for c in classes if c not in ROAD_SIGN_CLASSES]:
        raise ConfigError(f"road-sign classes must be among {ROAD_SIGN_CLASSES}, got {unknown[0]!r}")
    if not 64 <= size <= 2048:
        raise ConfigError(f"photo size must be in [64, 2048], got {size}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    full = _load_all(resolve_data_dir(data_dir).resolve(), size, tuple(classes))
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(split_seed))
    n_test = max(1, round(test_fraction * len(full)))
    return full.subset(order[n_test:].sort().values), full.subset(order[:n_test].sort().values)
