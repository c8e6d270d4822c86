# SPDX-License-Identifier: Apache-2.0
"""Model builders. Every model takes float32 ``(N, C, H, W)`` input in [0, 1] and returns logits."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from badnets.models.mnist_cnn import BadNetCNN

MODELS: dict[str, Callable[[], nn.Module]] = {"badnet-cnn": BadNetCNN}

__all__ = ["MODELS", "BadNetCNN"]
