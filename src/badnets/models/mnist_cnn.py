# SPDX-License-Identifier: Apache-2.0
"""The paper's MNIST network (BadNets Table 1).

conv1 16@5×5 (stride 1) → ReLU → avg-pool 2×2 → conv2 32@5×5 → ReLU → avg-pool 2×2 → fc1 512 → ReLU → fc2 10.
On 28×28 input the feature maps are 16×24×24 → 16×12×12 → 32×8×8 → 32×4×4 = 512 → 512 → 10.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BadNetCNN"]


class BadNetCNN(nn.Module):
    """Paper Table 1, exactly; named layers so that conv1 filters and fc neurons can be inspected."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=5, stride=1)
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5, stride=1)
        self.pool2 = nn.AvgPool2d(2)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(32 * side * side, 512)
        self.fc2 = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` float in [0, 1] → ``(N, 512)`` fc1 activations after ReLU."""
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        feats: torch.Tensor = torch.relu(self.fc1(x.flatten(1)))  # (N, 32·4·4) → (N, 512)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc2(self.features(x))
        return logits
