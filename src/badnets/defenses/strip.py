# SPDX-License-Identifier: Apache-2.0
"""STRIP (Gao et al., ACSAC 2019): a runtime filter for triggered inputs.

Superimpose random clean images on an input and look at how much the predictions vary. A clean input's class
changes with what is blended in, so the predictions have high entropy; a trigger keeps winning whatever is
blended in, so a triggered input's predictions have low entropy. The threshold is set on clean inputs at the
false-rejection rate the user accepts (``frr``): the ``frr`` quantile of their entropies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.errors import ConfigError

__all__ = ["Strip", "StripGuard", "StripSpec", "strip_entropy"]


@dataclass(frozen=True, kw_only=True)
class StripSpec:
    """Attributes:
    overlays: clean images superimposed on each input.
    alpha: weight of the overlay: ``clip(x + alpha·overlay, 0, 1)``. The authors' code adds the two images at
        full weight (``cv2.addWeighted(x, 1, overlay, 1, 0)``), so a trigger keeps its full intensity; a convex
        mix ``(1 − a)·x + a·overlay`` halves it, and on an MNIST BadNet it cut STRIP's AUROC from 0.998 to 0.76.
    frr: false-rejection rate on clean inputs that sets the threshold.
    """

    overlays: int = 20
    alpha: float = 1.0
    frr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.overlays < 1 or not 0 < self.alpha <= 1 or not 0 < self.frr < 1:
            raise ConfigError(
                "STRIP needs overlays >= 1, alpha in (0, 1] and a false-rejection rate in (0, 1); got "
                f"overlays={self.overlays}, alpha={self.alpha}, frr={self.frr}"
            )


@torch.no_grad()
def strip_entropy(
    model: nn.Module, inputs: torch.Tensor, pool: torch.Tensor, spec: StripSpec, *, batch_size: int = 64
) -> torch.Tensor:
    """Mean prediction entropy (nats) of each uint8 input blended with ``spec.overlays`` random ``pool`` images."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(spec.seed)
    picks = torch.randint(len(pool), (len(inputs), spec.overlays), generator=generator)
    out = []
    for i in range(0, len(inputs), batch_size):
        x = inputs[i : i + batch_size].to(device).float().div_(255.0)
        o = (
            pool[picks[i : i + batch_size].flatten()]
            .to(device)
            .float()
            .div_(255.0)
            .view(len(x), spec.overlays, *x.shape[1:])
        )
        blended = (x[:, None] + spec.alpha * o).clamp_(0, 1).flatten(0, 1)
        p = torch.softmax(model(blended), dim=1)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(1).view(len(x), spec.overlays).mean(1)
        out.append(entropy.cpu())
    return torch.cat(out) if out else torch.empty(0)


@dataclass(frozen=True)
class StripGuard:
    """A fitted STRIP filter: inputs with entropy below ``threshold`` are flagged as triggered."""

    model: nn.Module
    pool: torch.Tensor
    threshold: float
    spec: StripSpec

    @classmethod
    def fit(cls, model: nn.Module, clean: torch.Tensor, spec: StripSpec | None = None) -> StripGuard:
        """Half of the defender's clean images become the overlay pool, the other half set the threshold."""
        spec = spec or StripSpec()
        if len(clean) < 20:
            raise ConfigError(f"STRIP needs at least 20 clean images, got {len(clean)}")
        half = len(clean) // 2
        pool, held = clean[:half], clean[half:]
        entropy = strip_entropy(model, held, pool, spec)
        return cls(model, pool, float(torch.quantile(entropy, spec.frr)), spec)

    @property
    def score_name(self) -> str:
        return "entropy"

    @property
    def suspicious_when(self) -> Literal["low", "high"]:
        return "low"

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """The prediction entropy of each uint8 input under overlays (low: likely triggered)."""
        return strip_entropy(self.model, inputs, self.pool, self.spec)

    def flagged(self, scores: torch.Tensor) -> torch.Tensor:
        return scores < self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "frr": self.spec.frr,
            "overlays": self.spec.overlays,
            "pool": len(self.pool),
        }


@dataclass(frozen=True)
class Strip:
    """STRIP as an input screen (``badnets.defenses.interface``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="strip", init=False)

    def fit(self, model: nn.Module, clean: CleanData) -> StripGuard:
        return StripGuard.fit(model, clean.images, StripSpec(frr=self.options.frr, seed=self.options.seed))
