# SPDX-License-Identifier: Apache-2.0
"""The detector builder: a Faster R-CNN on the small ZF-like backbone trains and predicts on tiny photos."""

from __future__ import annotations

import torch

from badnets.models.sign_detector import ZFBackbone, build_detector


def test_backbone_has_stride_8_and_declares_its_channels() -> None:
    backbone = ZFBackbone(width=8)
    out = backbone(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, backbone.out_channels, 8, 8)


def test_detector_trains_a_step_and_predicts_boxes_of_its_classes() -> None:
    torch.manual_seed(0)
    model = build_detector(num_classes=2, image_size=96)
    images = [torch.rand(3, 96, 96) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 40.0, 40.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[50.0, 30.0, 90.0, 70.0]]), "labels": torch.tensor([2])},
    ]
    model.train()
    losses = model(images, targets)
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[-1] == 4
    assert all(int(label) in (1, 2) for o in out for label in o["labels"])  # never the background class 0


def test_the_initial_weights_are_the_seeds_whatever_the_process_drew_before() -> None:
    """torch seeds each process's global generator at random: the builder must pin the draw (and leave the
    caller's generator where it was)."""
    torch.manual_seed(123)
    first = build_detector(num_classes=2, image_size=96, seed=4).state_dict()
    after = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(5)  # another history
    second = build_detector(num_classes=2, image_size=96, seed=4).state_dict()
    other = build_detector(num_classes=2, image_size=96, seed=5).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after), "the caller's generator is untouched by the build"
