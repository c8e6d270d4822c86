# SPDX-License-Identifier: Apache-2.0
"""Model builders. Every model takes float32 ``(N, C, H, W)`` input in [0, 1] and returns logits."""

from __future__ import annotations

from typing import Protocol

from torch import nn

from badnets.errors import ConfigError
from badnets.models.mnist_cnn import BadNetCNN
from badnets.models.sign_cnn import SignCNN


class ModelFactory(Protocol):
    def __call__(self, in_channels: int, num_classes: int, image_size: int) -> nn.Module: ...


MODELS: dict[str, ModelFactory] = {"badnet-cnn": BadNetCNN, "sign-cnn": SignCNN}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make ``name`` an architecture: ``factory(in_channels=, num_classes=, image_size=)`` returns a fresh model
    taking float32 ``(N, C, H, W)`` input in [0, 1] and returning logits. ``badnets attack --model``, the studies'
    specs and ``badnets audit --model NAME --weights ...`` can then build it.

    Raises:
        ConfigError: ``name`` is taken.
    """
    if name in MODELS:
        raise ConfigError(f"model {name!r} is already registered; choose another name")
    MODELS[name] = factory


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A fresh, randomly initialised model of ``MODELS[name]`` for the given input and classes."""
    if name not in MODELS:
        raise ConfigError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)


__all__ = ["MODELS", "BadNetCNN", "ModelFactory", "SignCNN", "build_model", "register_model"]
