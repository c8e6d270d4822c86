# SPDX-License-Identifier: Apache-2.0
"""The in-memory dataset type and where data live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["ImageDataset", "resolve_data_dir"]


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set held as tensors.

    Attributes:
        images: ``(N, C, H, W)`` uint8, 0-255.
        labels: ``(N,)`` int64 class indices.
        classes: class names, index = label.
        boxes: optional ``(N, 4)`` int64 sign box (x1, y1, x2, y2) inside each image, where a sign trigger goes;
            ``None`` means the sign fills the image.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    boxes: torch.Tensor | None = None

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, "images must be uint8 (N, C, H, W)"
        assert self.labels.dtype == torch.int64 and self.labels.shape == (self.images.shape[0],)
        assert self.boxes is None or self.boxes.shape == (self.images.shape[0], 4)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """``--data-dir`` beats ``$BADNETS_DATA``, which beats ``~/.cache/badnets``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("BADNETS_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "badnets"


def cache_dir() -> Path:
    """Where decoded tensors are cached; separate from the data dir, which may be read-only."""
    env = os.environ.get("BADNETS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "badnets" / "tensors"
