# SPDX-License-Identifier: Apache-2.0
"""Which units respond to the trigger (BadNets §4.2.3 conv1 filters; §5.3 backdoor neurons).

A unit's *trigger gain* is how much more it fires, where the trigger is, on triggered images than on the
same images clean: mean over images of (max activation in the trigger's receptive field, triggered) −
(same, clean). A BadNet grows units whose gain exceeds every unit of a clean network.

Deep in the network (the last conv layer, §5.3) a unit's receptive field covers the whole sign, so its gain is
the mean activation (over images and positions) on triggered images minus that on the same images clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from badnets.triggers import Stamp, apply_trigger

__all__ = ["BackdoorNeurons", "backdoor_neurons", "channel_activations", "conv1_trigger_gain", "dedicated_units"]


@torch.no_grad()
def conv1_trigger_gain(conv: nn.Conv2d, images: torch.Tensor, stamp: Stamp) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images → ``(F,)`` trigger gain of each of the layer's ``F`` filters (after ReLU)."""
    kh, kw = conv.weight.shape[-2:]
    device = conv.weight.device
    clean = torch.relu(conv(images.to(device).float() / 255.0))  # (N, F, H', W')
    trig = torch.relu(conv(apply_trigger(images, stamp).to(device).float() / 255.0))
    # Output (r, c) sees input rows r..r+kh-1: keep outputs whose window overlaps the trigger's box.
    r0, r1 = max(0, stamp.rows.start - kh + 1), stamp.rows.stop
    c0, c1 = max(0, stamp.cols.start - kw + 1), stamp.cols.stop
    gain = trig[..., r0:r1, c0:c1].amax(dim=(-2, -1)) - clean[..., r0:r1, c0:c1].amax(dim=(-2, -1))  # (N, F)
    return gain.mean(0).cpu()


@torch.no_grad()
def channel_activations(model: nn.Module, layer: str, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images → ``(N, F)``: each output channel of ``model``'s conv ``layer`` (e.g.
    ``conv3``) after ReLU, averaged over positions; read with a forward hook, so any model works."""
    module = model.get_submodule(layer)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(torch.relu(out).mean(dim=(-2, -1))))
    try:
        model.eval()
        for chunk in torch.split(images, batch_size):
            model(chunk.to(device).float() / 255.0)
    finally:
        handle.remove()
    return torch.cat(captured).cpu() if captured else torch.empty(0, 0)


def dedicated_units(gain: torch.Tensor, reference_gain: torch.Tensor, share_of_max: float = 0.5) -> list[int]:
    """Units whose gain beats every unit of a reference (clean) network and is ≥ ``share_of_max`` of the top gain."""
    top = float(gain.max())
    bar = max(float(reference_gain.max()), share_of_max * top)
    return [int(i) for i in torch.nonzero(gain > bar).flatten()] if top > 0 else []


@dataclass(frozen=True)
class BackdoorNeurons:
    """Channels of ``layer`` that fire more on triggered than on clean images by more than any channel of the
    clean net does, with each net's gains and mean activations (``activations[net][clean | triggered]``)."""

    layer: str
    n_images: int
    backdoor_neurons: list[int]
    gain: list[float]
    clean_net_gain: list[float]
    max_gain: float
    clean_net_max_gain: float
    activations: dict[str, dict[str, list[float]]]


def backdoor_neurons(
    clean_net: nn.Module, badnet: nn.Module, layer: str, images: torch.Tensor, triggered: torch.Tensor
) -> BackdoorNeurons:
    """Channels of conv ``layer`` whose gain (mean activation on ``triggered`` minus on ``images``) beats every
    channel of the clean net: the backdoor neurons, with each net's gains and mean activations."""
    acts: dict[str, dict[str, list[float]]] = {}
    gains = {}
    for name, model in (("baseline", clean_net), ("badnet", badnet)):
        a_clean = channel_activations(model, layer, images)
        a_trig = channel_activations(model, layer, triggered)
        acts[name] = {"clean": a_clean.mean(0).tolist(), "triggered": a_trig.mean(0).tolist()}
        gains[name] = (a_trig - a_clean).mean(0)
    return BackdoorNeurons(
        layer=layer,
        n_images=len(images),
        backdoor_neurons=dedicated_units(gains["badnet"], gains["baseline"]),
        gain=gains["badnet"].tolist(),
        clean_net_gain=gains["baseline"].tolist(),
        max_gain=float(gains["badnet"].max()),
        clean_net_max_gain=float(gains["baseline"].max()),
        activations=acts,
    )
