# SPDX-License-Identifier: Apache-2.0
"""The benchmark's baselines must compute what ours computes, or the ratios compare different work."""

from __future__ import annotations

import torch

from badnets.data import ImageDataset
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp
from benchmarks.run import PILDataset, pil_poison
from tests.conftest import synthetic_digits


def test_pil_reference_poisons_exactly_like_apply_trigger() -> None:
    images, _ = synthetic_digits(20, 0)
    ours = apply_trigger(images.unsqueeze(1), make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28)))[:, 0]
    assert torch.equal(torch.from_numpy(pil_poison(images.numpy())), ours)


def test_pil_dataset_yields_what_the_trainer_sees() -> None:
    images, labels = synthetic_digits(5, 0)
    data = ImageDataset(images.unsqueeze(1), labels.to(torch.int64), tuple("0123456789"))
    x, y = PILDataset(data, {4: 7})[3]
    assert PILDataset(data, {4: 7})[4][1] == 7
    assert torch.allclose(x, images[3:4].float() / 255) and y == 3
