# SPDX-License-Identifier: Apache-2.0
"""A small sign classifier for 32×32 RGB crops: the classification stage of the paper's traffic-sign net.

The paper's F-RCNN uses a ZF-like backbone (5 conv layers) whose conv5 holds the backdoor neurons and whose
fully connected layers are what the transfer-learning user retrains. This is that shape, scaled to crops that
train on two CPU cores: three conv blocks (the last, ``conv3``, is where backdoor neurons are looked for),
then ``fc1`` and ``fc2`` (the layers the transfer attack retrains).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SignCNN"]


class SignCNN(nn.Module):
    """conv 32 → conv 64 → conv 128 (3×3, ReLU, max-pool 2×2 each) → fc1 256 → ReLU → dropout → fc2 C."""

    def __init__(self, in_channels: int = 3, num_classes: int = 3, image_size: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        side = image_size // 8
        self.fc1 = nn.Linear(128 * side * side, 256)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(256, num_classes)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in [0, 1] → ``(N, 128, H/8, W/8)``: the last conv layer's pooled activations."""
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        out: torch.Tensor = self.pool(torch.relu(self.conv3(x)))
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 256)`` fc1 activations after ReLU."""
        return torch.relu(self.fc1(self.conv_features(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc2(self.dropout(self.features(x)))
        return logits
