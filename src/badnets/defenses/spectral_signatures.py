# SPDX-License-Identifier: Apache-2.0
"""Spectral Signatures (Tran et al., NeurIPS 2018): which training samples carry a backdoor?

Centre each class's representations (``badnets.defenses.representations``) on the clean reference mean, project
them on the top singular vector, and score each sample by the squared projection; a sample is flagged when its
score exceeds what all but ``fpr`` of the clean references reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.representations import (
    SampleFlags,
    by_class,
    robust_z,
    screen_representations,
    top_directions,
)

__all__ = ["SpectralSignatures", "SpectralSpec", "spectral_signatures"]


@dataclass(frozen=True, kw_only=True)
class SpectralSpec:
    """``fpr``: the share of the clean references allowed above the flagging limit. With ~100 references per class
    the realised rate on clean training samples is higher (3.5% at 0.01 on MNIST: the references are few and
    held out, the training samples are fitted), so keep it small."""

    fpr: float = 0.01


def spectral_signatures(
    features: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    spec: SpectralSpec | None = None,
) -> SampleFlags:
    """Spectral Signatures on ``(N, D)`` training representations, with clean ``reference`` representations."""
    cfg = spec or SpectralSpec()

    def rule(x: torch.Tensor, ref: torch.Tensor, _c: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        centre = ref.mean(0)
        centred = x - centre
        top = top_directions(centred, 1)[:, 0]
        s, s_ref = (centred @ top) ** 2, ((ref - centre) @ top) ** 2
        z = robust_z(s, s_ref)
        limit = float(torch.quantile(robust_z(s_ref, s_ref), 1 - cfg.fpr))
        return z, z > limit, {"flagged_share": float((z > limit).float().mean()), "limit": limit}

    return by_class("spectral_signatures", features, labels, reference, reference_labels, rule)


@dataclass(frozen=True)
class SpectralSignatures:
    """Spectral Signatures as a training-data screen (``badnets.defenses.interface``); its time includes reading
    the representations."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="spectral_signatures", init=False)

    def screen(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clean: CleanData) -> SampleFlags:
        return screen_representations(model, images, labels, (clean.images, clean.labels), spectral_signatures)
