# SPDX-License-Identifier: Apache-2.0
"""Inputs a user wants screened (``badnets guard``): an image folder or a tensor file, shaped like the dataset."""

from __future__ import annotations

from pathlib import Path

import torch

from badnets.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "read_inputs"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp"}


def _to_shape(images: torch.Tensor, shape: tuple[int, int, int], where: Path) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(
            f"{where}: need uint8 images (N, C, H, W) or (N, H, W, C), got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[1:] != shape and images.shape[-1] == shape[0] and images.shape[1:3] == shape[1:]:
        images = images.permute(0, 3, 1, 2)  # NHWC → NCHW
    if tuple(images.shape[1:]) != shape:
        raise DataError(f"{where}: images are {tuple(images.shape[1:])}, the model's dataset needs {shape}")
    return images.contiguous()


def read_inputs(path: Path, shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[str]]:
    """``(N, C, H, W)`` uint8 inputs and a name for each, from a folder of images (converted to ``shape``: gray or
    RGB, resized), a ``.safetensors`` file with an ``images`` tensor, or a ``.npy`` array.

    Raises:
        DataError: a missing path, an unreadable file, or images of another shape.
    """
    from badnets.data._images import read_rgb, resize_square

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        channels, size = shape[0], shape[1]
        decoded = []
        for file in files:
            rgb = resize_square(read_rgb(file), size)
            gray = (rgb.float() * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
            decoded.append(rgb if channels == 3 else gray.round().clamp(0, 255).to(torch.uint8))
        return torch.stack(decoded), [f.name for f in files]
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise DataError(f"{path} is not a readable safetensors file ({e})") from None
        if "images" not in tensors:
            raise DataError(f"{path} has no 'images' tensor (found: {', '.join(tensors) or 'none'})")
        images = _to_shape(tensors["images"], shape, path)
    elif path.suffix == ".npy":
        import numpy as np

        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path} is not a readable .npy array without pickles ({e})") from None
        images = _to_shape(torch.from_numpy(array), shape, path)
    else:
        raise DataError(f"{path}: pass a folder of images, a .safetensors file with 'images', or a .npy array")
    return images, [f"{path.name}[{i}]" for i in range(len(images))]
