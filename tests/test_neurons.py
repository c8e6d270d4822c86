# SPDX-License-Identifier: Apache-2.0
"""Backdoor-neuron helpers on hand-built networks whose answer is known."""

from __future__ import annotations

import torch
from torch import nn

from badnets.models import SignCNN, build_model
from badnets.neurons import channel_activations, dedicated_units


def test_channel_activations_average_each_channel_after_relu() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, kernel_size=1), nn.Flatten())
    conv = model[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    images = torch.full((3, 1, 4, 4), 255, dtype=torch.uint8)
    images[:, :, :2] = 0  # half the pixels are 0, half 1.0
    acts = channel_activations(model, "0", images, batch_size=2)
    assert acts.shape == (3, 2)
    assert torch.allclose(acts[:, 0], torch.full((3,), 0.5)) and torch.all(acts[:, 1] == 0)  # ReLU kills channel 1


def test_a_planted_trigger_neuron_is_found() -> None:
    torch.manual_seed(0)
    model = build_model("sign-cnn", in_channels=3, num_classes=3, image_size=32)
    assert isinstance(model, SignCNN) and model.conv3.bias is not None
    clean = torch.randint(0, 100, (16, 3, 32, 32), dtype=torch.uint8)
    triggered = clean.clone()
    triggered[:, :, 26:29, 16:19] = 255
    gain_before = channel_activations(model, "conv3", triggered) - channel_activations(model, "conv3", clean)
    with torch.no_grad():
        model.conv3.weight[7] *= 40  # amplify one channel: it now responds far more to the bright patch
        model.conv3.bias[7] = 0
    gain_after = channel_activations(model, "conv3", triggered) - channel_activations(model, "conv3", clean)
    assert 7 in dedicated_units(gain_after.mean(0), gain_before.mean(0))
