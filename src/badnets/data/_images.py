# SPDX-License-Identifier: Apache-2.0
"""Shared loader parts: decode image files once, resize on tensors, cache the result as safetensors.

Decoding is per file (PIL) but happens only when a dataset is first loaded; every later load reads one
safetensors file keyed by the digest of the source files, so experiments never touch PIL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from badnets._io import atomic_path, file_sha256
from badnets.data._dataset import cache_dir
from badnets.errors import DataError

__all__ = ["content_digest", "read_rgb", "resize_square", "tensor_cache"]

log = logging.getLogger(__name__)


def read_rgb(path: Path) -> torch.Tensor:
    """An image file (PNG, JPEG, PPM, …) → ``(3, H, W)`` uint8; transparent pixels are put on white.

    Raises:
        DataError: the file is missing or not an image, naming the file.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError as e:
        raise DataError(f"image {path} is missing; restore it or re-download the dataset") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"image {path} cannot be decoded ({e}); replace it") from e
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` uint8 → ``(C, size, size)`` uint8, bilinear with antialiasing (aspect ratio not kept)."""
    resized = F.interpolate(
        image.unsqueeze(0).float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.squeeze(0).round().clamp(0, 255).to(torch.uint8)


def content_digest(paths: Iterable[Path], *extra: str) -> str:
    """One SHA-256 over the files' digests (in the given order) and any extra strings (e.g. load options)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_sha256(p).encode())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


def tensor_cache(name: str, key: str, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors from ``<cache>/<name>-<key>.safetensors``, built and saved (atomically) on the first call.

    A cache that cannot be written (read-only home, full disk) only costs speed: the tensors are returned anyway.
    """
    cached = cache_dir() / f"{name}-{key[:24]}.safetensors"
    if cached.is_file():
        return load_file(str(cached))
    tensors = {k: v.contiguous() for k, v in build().items()}
    try:
        with atomic_path(cached) as tmp:
            save_file(tensors, str(tmp))
    except OSError as e:
        log.warning("could not cache %s tensors in %s: %s", name, cached.parent, e)
    return tensors
