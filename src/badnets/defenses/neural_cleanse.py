# SPDX-License-Identifier: Apache-2.0
"""Neural Cleanse (Wang et al., S&P 2019): reverse-engineer the smallest trigger that sends clean images to each
class; a class whose trigger is far smaller than the others' is a backdoor target.

For every class t, optimise a mask m_t ∈ [0, 1]^{H×W} and a pattern p_t ∈ [0, 1]^{C×H×W} so that
``(1 − m_t)·x + m_t·p_t`` is classified t for clean x, with an L1 penalty on m_t whose weight is raised while the
attack succeeds and lowered while it does not (the paper's cost schedule). All classes are optimised together in
one batch of ``classes × images`` inputs, so the model runs once per step instead of once per class.

The outlier test is the paper's: with the L1 norms of the best masks, the consistency constant
``1.4826 · median(|l1 − median(l1)|)`` and the anomaly index ``(median(l1) − l1_t) / consistency``; an index above
2 flags class t. Only unusually *small* triggers count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from badnets.errors import ConfigError

__all__ = ["NeuralCleanseResult", "NeuralCleanseSpec", "mad_anomaly_index", "neural_cleanse"]


@dataclass(frozen=True, kw_only=True)
class NeuralCleanseSpec:
    """Attributes:
    steps: optimisation steps (all classes at once).
    images_per_step: clean images per class and step.
    lr: Adam learning rate on the mask and pattern logits.
    init_cost: starting weight of the mask's L1 norm (per class; adapted every ``adjust_every`` steps).
    target_asr: a reverse-engineered trigger counts once it sends this share of images to its class.
    threshold: anomaly index above which a class is flagged (the paper: 2).
    """

    steps: int = 600
    images_per_step: int = 32
    lr: float = 0.1
    init_cost: float = 1e-3
    cost_factor: float = 1.5
    adjust_every: int = 10
    target_asr: float = 0.99
    threshold: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < self.adjust_every or self.images_per_step < 1 or self.lr <= 0:
            raise ConfigError("Neural Cleanse needs steps >= adjust_every, images_per_step >= 1 and lr > 0")


@dataclass(frozen=True)
class NeuralCleanseResult:
    l1: torch.Tensor  # (K,) L1 norm of each class's best mask
    asr: torch.Tensor  # (K,) attack success of each class's best trigger on the optimisation images
    masks: torch.Tensor  # (K, 1, H, W)
    patterns: torch.Tensor  # (K, C, H, W)
    anomaly_index: torch.Tensor  # (K,)
    threshold: float
    seconds: float

    @property
    def flagged(self) -> list[int]:
        return [int(k) for k in torch.nonzero(self.anomaly_index > self.threshold).flatten()]

    @property
    def suspected_target(self) -> int | None:
        return int(self.anomaly_index.argmax()) if self.flagged else None

    def to_json(self) -> dict[str, Any]:
        return {
            "l1": self.l1.tolist(),
            "asr": self.asr.tolist(),
            "anomaly_index": self.anomaly_index.tolist(),
            "max_anomaly_index": float(self.anomaly_index.max()),
            "threshold": self.threshold,
            "flagged": self.flagged,
            "suspected_target": self.suspected_target,
            "seconds": self.seconds,
        }


def mad_anomaly_index(l1: torch.Tensor) -> torch.Tensor:
    """The paper's anomaly index per class: how many robust standard deviations its L1 norm lies *below* the
    median (0 for classes above it)."""
    median = l1.median()
    consistency = 1.4826 * (l1 - median).abs().median()
    index = (median - l1) / consistency.clamp_min(1e-12)
    return index.clamp_min(0.0)


def neural_cleanse(
    model: nn.Module, images: torch.Tensor, num_classes: int, spec: NeuralCleanseSpec | None = None
) -> NeuralCleanseResult:
    """Reverse-engineer a trigger for every class of ``model`` from clean uint8 ``images`` (N, C, H, W)."""
    spec = spec or NeuralCleanseSpec()
    start = time.perf_counter()
    device = next(model.parameters()).device
    model.eval()
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(spec.seed)
    k, (c, h, w) = num_classes, images.shape[1:]
    mask_logit = torch.full((k, 1, h, w), -2.0, device=device, requires_grad=True)  # start from small masks
    pattern_logit = torch.zeros((k, c, h, w), device=device, requires_grad=True)
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=spec.lr, betas=(0.5, 0.9))
    cost = torch.full((k,), spec.init_cost, device=device)
    targets = torch.arange(k, device=device).repeat_interleave(spec.images_per_step)
    best_l1 = torch.full((k,), float("inf"), device=device)
    best_asr = torch.zeros(k, device=device)
    best_mask = torch.zeros((k, 1, h, w), device=device)
    best_pattern = torch.zeros((k, c, h, w), device=device)
    hits = torch.zeros(k, device=device)
    try:
        for step in range(spec.steps):
            idx = torch.randint(len(images), (spec.images_per_step,), generator=generator)
            x = images[idx].to(device).float().div_(255.0)
            mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
            stamped = (1 - mask[:, None]) * x[None] + mask[:, None] * pattern[:, None]  # (K, B, C, H, W)
            logits = model(stamped.reshape(k * spec.images_per_step, c, h, w))
            ce = F.cross_entropy(logits, targets, reduction="none").view(k, -1).mean(1)
            l1 = mask.flatten(1).sum(1)
            loss = (ce + cost * l1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            with torch.no_grad():
                asr = (logits.argmax(1) == targets).float().view(k, -1).mean(1)
                hits += asr
                better = (asr >= spec.target_asr) & (l1 < best_l1)
                best_l1 = torch.where(better, l1, best_l1)
                best_asr = torch.where(better, asr, best_asr)
                best_mask[better], best_pattern[better] = mask[better], pattern[better]
                if (step + 1) % spec.adjust_every == 0:
                    succeeding = hits / spec.adjust_every >= spec.target_asr
                    cost = torch.where(succeeding, cost * spec.cost_factor, cost / spec.cost_factor)
                    hits.zero_()
        with torch.no_grad():  # a class that never reached the target keeps its last (large) mask
            never = torch.isinf(best_l1)
            mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
            best_l1 = torch.where(never, mask.flatten(1).sum(1), best_l1)
            best_mask[never], best_pattern[never] = mask[never], pattern[never]
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    l1_cpu = best_l1.detach().cpu()
    return NeuralCleanseResult(
        l1=l1_cpu,
        asr=best_asr.detach().cpu(),
        masks=best_mask.detach().cpu(),
        patterns=best_pattern.detach().cpu(),
        anomaly_index=mad_anomaly_index(l1_cpu),
        threshold=spec.threshold,
        seconds=time.perf_counter() - start,
    )
