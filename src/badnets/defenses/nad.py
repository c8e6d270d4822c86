# SPDX-License-Identifier: Apache-2.0
"""Neural Attention Distillation (Li et al., ICLR 2021): erase a backdoor by distilling a fine-tuned teacher's
attention into the backdoored model, on a few clean images.

1. **Teacher**: a copy of the backdoored model, fine-tuned on the clean images (plain fine-tuning weakens the
   backdoor but, with little data, does not remove it).
2. **Student**: the backdoored model itself, fine-tuned on the same images with the cross-entropy plus, at each
   convolution, ``β · ‖A(F_student) − A(F_teacher)‖²`` (mean squared), where ``A(F)`` is the layer's attention
   map: the channel sum of ``|F|^p`` (p = 2), flattened and scaled to unit L2 norm per image. Matching the
   teacher's attention pulls the student's intermediate features away from the trigger's, where the teacher's
   labels alone would not.

The paper attaches the loss to the three residual groups of a WideResNet with β = 500, 1,000, 1,000 (its code's
settings); our CNNs have two or three convolutions, so every convolution gets one, the first with β = 500 and
the others 1,000. The paper fine-tunes with SGD; ours is the trainer's AdamW schedule (``RepairSpec.train``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from badnets.data import ImageDataset
from badnets.errors import ConfigError
from badnets.train import TrainSpec, train_model

__all__ = ["NadLayers", "NadSpec", "attention_map", "distill_attention"]


@dataclass(frozen=True, kw_only=True)
class NadSpec:
    """Attributes:
    power: p of the attention map.
    betas: the distillation weight of each convolution, first to last (the last value repeats for any more).
    """

    power: float = 2.0
    betas: tuple[float, ...] = (500.0, 1000.0)

    def __post_init__(self) -> None:
        if self.power <= 0 or not self.betas or any(b < 0 for b in self.betas):
            raise ConfigError("NAD needs power > 0 and one or more betas >= 0")


@dataclass(frozen=True)
class NadLayers:
    """The convolutions NAD distilled at and the weight of each."""

    layers: list[str]
    betas: list[float]


def attention_map(features: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """``(N, C, H, W)`` features → ``(N, H·W)`` attention: ``Σ_c |F_c|^p``, unit L2 norm per image."""
    attention = features.abs().pow(power).sum(1).flatten(1)
    return F.normalize(attention, dim=1)


def distill_attention(
    model: nn.Module, tune: ImageDataset, train: TrainSpec, seed: int, spec: NadSpec | None = None
) -> NadLayers:
    """Fine-tune a teacher copy of ``model`` on ``tune``, then fine-tune ``model`` (in place) on it with the
    attention-distillation loss; returns where it distilled."""
    spec = spec or NadSpec()
    teacher = copy.deepcopy(model)
    train_model(teacher, tune, train, seed=seed, init=False)
    teacher.eval()
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ConfigError("NAD distils convolution features; the model has no nn.Conv2d")
    betas = [spec.betas[min(i, len(spec.betas) - 1)] for i in range(len(names))]
    student_features: dict[str, torch.Tensor] = {}
    teacher_features: dict[str, torch.Tensor] = {}

    def distillation(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher(batch)
        terms = [
            beta * (attention_map(s, spec.power) - attention_map(t, spec.power)).pow(2).mean()
            for beta, s, t in zip(
                betas, (student_features[n] for n in names), (teacher_features[n] for n in names), strict=True
            )
        ]
        return torch.stack(terms).sum()

    handles = _hooks(model, names, student_features) + _hooks(teacher, names, teacher_features)
    try:
        train_model(model, tune, train, seed=seed + 1, init=False, penalty=distillation)
    finally:
        for handle in handles:
            handle.remove()
    return NadLayers(names, betas)


def _hooks(model: nn.Module, names: Sequence[str], store: dict[str, torch.Tensor]) -> list[Any]:
    """Forward hooks that keep each named layer's latest output in ``store``."""
    modules = dict(model.named_modules())

    def keep(name: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            store[name] = out

        return hook

    return [modules[name].register_forward_hook(keep(name)) for name in names]
