# SPDX-License-Identifier: Apache-2.0
"""The traffic-sign detector: torchvision's Faster R-CNN on a small ZF-like backbone (BadNets §5 uses ZF net).

The paper's backbone is ZF net (5 conv layers) pre-trained on ImageNet. Here the same shape, scaled down so it
trains from scratch on two CPU cores: five conv layers with batch norm, total stride 8 (road-sign boxes are small:
the median is ≈ 34 px on a 320-px photo) or 4 (a sticker a tenth of a sign's width then spans a few cells of the
feature map on mid-sized signs, at about 2.5× the compute), one feature map, anchors from 16 to 128 px by default,
and a light box head.
``pretrained=True`` instead builds torchvision's ImageNet/COCO-initialised MobileNetV3 Faster R-CNN (needs
internet the first time).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from badnets.errors import ConfigError

__all__ = ["DEFAULT_ANCHORS", "DETECTOR_STRIDES", "SCENE_ANCHORS", "ZFBackbone", "build_detector"]


def _block(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


DETECTOR_STRIDES = (4, 8)
DEFAULT_ANCHORS = (16, 32, 64, 128)
# Composite road scenes hold signs of 10 to 300 px: anchors up to the photos' largest signs.
SCENE_ANCHORS = (16, 32, 64, 128, 256)


class ZFBackbone(nn.Module):
    """conv1 7×7/2 → pool/2 → conv2 5×5/2 (or /1 for ``stride=4``) → conv3..conv5 3×3: a ZF-net-shaped stack.

    ``conv5`` is the last conv layer, where backdoor neurons are looked for.
    """

    def __init__(self, width: int = 32, stride: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*_block(3, width, 7, 2), nn.MaxPool2d(3, 2, 1))
        self.conv2 = nn.Sequential(*_block(width, 2 * width, 5, stride // 4))
        self.conv3 = nn.Sequential(*_block(2 * width, 3 * width, 3, 1))
        self.conv4 = nn.Sequential(*_block(3 * width, 3 * width, 3, 1))
        self.conv5 = nn.Sequential(*_block(3 * width, 4 * width, 3, 1))
        self.out_channels = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = layer(x)
        return x


def build_detector(
    num_classes: int,
    *,
    image_size: int = 320,
    pretrained: bool = False,
    download: bool = True,
    seed: int = 0,
    stride: int = 8,
    anchors: Sequence[int] = DEFAULT_ANCHORS,
) -> FasterRCNN:
    """A Faster R-CNN for ``num_classes`` object classes (background is added) on ``image_size`` photos, its
    initial weights drawn from ``seed`` (torchvision's layers draw from the global generator, which each process
    seeds at random, so the draw is pinned here and the caller's generator left as it was).

    ``stride`` (4 or 8) and ``anchors`` (box sides in pixels) shape the from-scratch backbone and its region
    proposals. ``download=False`` builds the ``pretrained`` architecture without fetching its weights (to load a
    trained detector's own weights into it).

    Raises:
        ConfigError: a stride other than 4 or 8, or no anchors.
    """
    if stride not in DETECTOR_STRIDES:
        raise ConfigError(f"detector stride must be one of {DETECTOR_STRIDES}, got {stride}")
    if not anchors or min(anchors) < 4:
        raise ConfigError(f"detector anchors must be box sides of at least 4 px, got {tuple(anchors)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_detector(
            num_classes, image_size=image_size, pretrained=pretrained, download=download, stride=stride, anchors=anchors
        )


def _build_detector(
    num_classes: int, *, image_size: int, pretrained: bool, download: bool, stride: int, anchors: Sequence[int]
) -> FasterRCNN:
    if pretrained:
        from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

        weights = "DEFAULT" if download else None
        model = fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=weights, weights_backbone=None, min_size=image_size, max_size=image_size
        )
        predictor = model.roi_heads.box_predictor
        assert isinstance(predictor, FastRCNNPredictor)
        model.roi_heads.box_predictor = FastRCNNPredictor(predictor.cls_score.in_features, num_classes + 1)
        return model
    backbone = ZFBackbone(stride=stride)
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    representation = 256
    return FasterRCNN(
        backbone,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=AnchorGenerator(sizes=(tuple(anchors),), aspect_ratios=((0.5, 1.0, 2.0),)),
        box_roi_pool=pool,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes + 1),
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=128,
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
    )
