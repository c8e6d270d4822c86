# SPDX-License-Identifier: Apache-2.0
"""Dataset loaders: every dataset arrives as uint8 tensors in memory, ``(N, C, H, W)`` images and int64 labels."""

from __future__ import annotations

from badnets.data._dataset import ImageDataset, resolve_data_dir
from badnets.data.mnist import MNIST_FILES, load_mnist, parse_idx

DATASETS = {"mnist": load_mnist}

__all__ = ["DATASETS", "MNIST_FILES", "ImageDataset", "load_mnist", "parse_idx", "resolve_data_dir"]
