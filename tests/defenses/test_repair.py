# SPDX-License-Identifier: Apache-2.0
"""Unlearning's stamping: each chosen image carries the trigger recovered from its own class, nothing else moves."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.defenses.repair import stamp_recovered


def _triggers(sources: list[int | None], side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trigger t lights pixel (0, t) at value (t + 1) / 16, so a stamped image tells which trigger it got."""
    masks = torch.zeros(len(sources), 1, side, side)
    patterns = torch.zeros(len(sources), 1, side, side)
    for t in range(len(sources)):
        masks[t, 0, 0, t] = 1
        patterns[t, 0, 0, t] = (t + 1) / 16
    return masks, patterns


@given(
    n=st.integers(1, 60),
    classes=st.integers(2, 6),
    share=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
    per_source=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_each_image_gets_its_own_class_trigger(n: int, classes: int, share: float, seed: int, per_source: bool) -> None:
    side, target = 8, 0
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (n,), generator=generator)
    images = torch.full((n, 1, side, side), 200, dtype=torch.uint8)
    sources: list[int | None] = [s for s in range(classes) if s != target] if per_source else [None]
    masks, patterns = _triggers(sources, side)
    chosen, stamped = stamp_recovered(images, labels, sources, masks, patterns, share, seed)
    assert len(chosen) == int(n * share) and len(set(chosen.tolist())) == len(chosen)
    untouched = torch.ones(n, dtype=torch.bool)
    untouched[chosen] = False
    assert torch.equal(stamped[untouched], images[untouched])
    for i in chosen.tolist():
        lit = [t for t in range(len(sources)) if stamped[i, 0, 0, t] == round((t + 1) / 16 * 255)]
        assert len(lit) == 1  # exactly one trigger
        if per_source and int(labels[i]) != target:
            assert sources[lit[0]] == int(labels[i])
    again = stamp_recovered(images, labels, sources, masks, patterns, share, seed)
    assert torch.equal(again[0], chosen) and torch.equal(again[1], stamped)
