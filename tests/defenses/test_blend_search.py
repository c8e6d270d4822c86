# SPDX-License-Identifier: Apache-2.0
"""The blend search: one opacity per class, on a hand-built model whose backdoor is a faint full-image pattern."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from badnets.defenses.blend_search import BLEND_THRESHOLD, BlendSearch
from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.neural_cleanse import neural_cleanse
from badnets.defenses.registry import model_detector

K, SIDE, TARGET = 6, 12, 4
CHECKER = ((torch.arange(SIDE)[:, None] + torch.arange(SIDE)[None]) % 2).float() * 2 - 1  # ±1, mean 0


class BlendNet(nn.Module):
    """Class c is a bright band of rows 2c, 2c+1. A blended backdoor: the image's correlation with a checkerboard
    (about 0 on clean images; α/2 with the checkerboard blended in at opacity α) adds to the target's logit."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x[:, 0].view(len(x), K, 2, SIDE).mean(dim=(2, 3))
        backdoor = torch.zeros_like(bands)
        backdoor[:, TARGET] = 200 * (x[:, 0] * CHECKER).mean(dim=(1, 2))
        return self.gain * bands + backdoor


def _band_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % K
    images = torch.randint(0, 20, (n, 1, SIDE, SIDE), generator=generator, dtype=torch.uint8)
    band = (torch.arange(SIDE)[None] // 2 == labels[:, None])[:, None, :, None]
    return torch.where(band, torch.full_like(images, 200), images), labels


def test_the_blend_search_flags_a_blended_backdoor_at_about_its_opacity() -> None:
    images, labels = _band_images(240)
    model = BlendNet()
    assert bool((model(images.float() / 255).argmax(1) == labels).all())
    detector = model_detector("blend_search", DefenseOptions(search_steps=600))
    assert isinstance(detector, BlendSearch) and detector.spec.steps == 600  # the trigger search's steps
    found = detector.detect(model, CleanData(images, labels, K))
    opacity = found.l1 / SIDE**2
    assert found.flagged == [TARGET] and found.suspected_target == TARGET and found.threshold == BLEND_THRESHOLD
    # the checkerboard at opacity α lifts the target by 100·α over a band of 7.8·(1 − α): about 0.07
    assert float(opacity[TARGET]) < 0.15
    assert float(opacity[torch.arange(K) != TARGET].min()) > 2 * float(opacity[TARGET])
    # one opacity per class: every pixel of a recovered mask holds it
    assert torch.allclose(found.masks, opacity.view(K, 1, 1, 1).expand(K, 1, SIDE, SIDE).float(), atol=1e-5)
    assert found.sources is None  # one search per target, on images of every class


def test_a_window_of_batches_never_credits_a_smaller_blend_than_its_luckiest_batch() -> None:
    """Same seed, same optimisation: only what counts as success differs. A window whose batches together reach
    the target success holds a batch that reaches it alone, at no larger a mask than the window's largest, so the
    window rule's smallest blend is never below the per-batch rule's; with two images a batch it is above."""
    images, labels = _band_images(240)
    spec = replace(BlendSearch(DefenseOptions(search_steps=200, search_images=2)).spec, success_over="step")
    by_batch = neural_cleanse(BlendNet(), images, K, spec, labels)
    by_window = neural_cleanse(BlendNet(), images, K, replace(spec, success_over="window"), labels)
    assert BlendSearch().spec.success_over == "window"
    assert bool((by_window.asr >= spec.target_asr).all())  # every class was reached, so no last-mask fallback
    assert bool((by_window.l1 >= by_batch.l1 - 1e-4).all())
    assert float((by_window.l1 - by_batch.l1).max()) > 0
    assert by_window.flagged == [TARGET]
