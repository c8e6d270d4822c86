# SPDX-License-Identifier: Apache-2.0
"""Any folder of photos laid out as ``ROOT/<class name>/<image>`` (torchvision's ``ImageFolder`` layout).

This is how a user brings their own data (``badnets attack --dataset PATH``) and how the photo demo reads the
cats-and-dogs photos. Images are decoded once, resized to ``size × size`` and cached as uint8 tensors; the
train/test split is seeded and stratified per class, so every run sees the same held-out photos.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from badnets._io import file_sha256
from badnets.data._dataset import ImageDataset
from badnets.data._images import content_digest, read_rgb, resize_square, tensor_cache
from badnets.errors import ConfigError, DataError

__all__ = ["IMAGE_SUFFIXES", "image_folder_classes", "image_folder_file_hashes", "load_image_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff")


def _files(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise ConfigError(f"dataset {root}: no such folder; give a folder with one subfolder of images per class")
    by_class = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    by_class = {name: files for name, files in by_class.items() if files}
    if len(by_class) < 2:
        raise DataError(
            f"{root} needs at least two class subfolders holding images (ROOT/<class>/<image>.jpg), "
            f"found {len(by_class)}"
        )
    return by_class


def image_folder_classes(root: Path | str) -> tuple[str, ...]:
    """The class names (subfolder names, sorted) of an image folder."""
    return tuple(_files(Path(root).expanduser()))


def image_folder_file_hashes(root: Path | str) -> dict[str, str]:
    """SHA-256 of every image, keyed ``<class>/<file>`` (for manifests)."""
    return {f"{c}/{p.name}": file_sha256(p) for c, files in _files(Path(root).expanduser()).items() for p in files}


def load_image_folder(
    root: Path | str, *, size: int = 64, test_fraction: float = 0.2, split_seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """An image folder as ``(train, test)`` ``(N, 3, size, size)`` uint8 sets, split per class with a seed.

    Raises:
        ConfigError: a bad size or fraction, or the folder does not exist.
        DataError: fewer than two classes, or an image that cannot be decoded (naming it).
    """
    if not 8 <= size <= 512:
        raise ConfigError(f"image size must be in [8, 512], got {size}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    return _load(Path(root).expanduser().resolve(), size, test_fraction, split_seed)


@functools.lru_cache(maxsize=4)
def _load(root: Path, size: int, test_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    by_class = _files(root)
    paths = [p for files in by_class.values() for p in files]
    labels = torch.tensor([c for c, files in enumerate(by_class.values()) for _ in files], dtype=torch.int64)

    def decode() -> dict[str, torch.Tensor]:
        return {"images": torch.stack([resize_square(read_rgb(p), size) for p in paths])}

    images = tensor_cache("image-folder", content_digest(paths, str(size)), decode)["images"]
    generator = torch.Generator().manual_seed(seed)
    test = torch.zeros(len(paths), dtype=torch.bool)
    for c in range(len(by_class)):
        members = (labels == c).nonzero().flatten()
        n_test = max(1, round(test_fraction * len(members)))
        test[members[torch.randperm(len(members), generator=generator)][:n_test]] = True
    classes = tuple(by_class)
    return (
        ImageDataset(images[~test].contiguous(), labels[~test].contiguous(), classes),
        ImageDataset(images[test].contiguous(), labels[test].contiguous(), classes),
    )
