# SPDX-License-Identifier: Apache-2.0
"""The paper's own suggestion (§7): look for neurons that clean validation data never activates, and see what
they do when they fire.

A BadNet's backdoor neurons (paper Figure 8) respond to the trigger and switch the output to the target. So: run
clean images through the model, record each unit of the last conv layer's mean activation (units far below the
busiest one are listed as "dormant"), then drive each unit in turn to the largest activation any unit reached on
clean data, at every spatial position, and record which class the clean images are sent to. A unit that sends
nearly all images of other classes to one class is trigger-selective: one switch decides the output. (This is the
stimulation idea of ABS, Liu et al. CCS 2019.)

Measured on real MNIST (paper CNN, 1 epoch): in an all-to-one BadNet (target 7) one `conv2` unit sent 100% of
other digits to 7, yet it was not dormant on average (its mean activation was 67% of the busiest unit's: the
trigger's corner is small next to the whole map); in a clean net the strongest unit sent 42% to one class. So
every unit is stimulated, and dormancy is reported beside it rather than used as a filter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.errors import ConfigError
from badnets.records import CustomJson, json_object

__all__ = [
    "Stimulation",
    "StimulationRecord",
    "StimulationResult",
    "StimulationSpec",
    "UnitFlip",
    "last_conv",
    "stimulate_units",
]


@dataclass(frozen=True, kw_only=True)
class StimulationSpec:
    """Attributes:
    dormant_share: a unit is listed as dormant when its mean clean activation is below this share of the busiest
        unit's.
    flip_threshold: a unit is trigger-selective when stimulating it sends at least this share of clean images
        (not already of that class) to one class.
    images: clean images stimulated, at most.
    passes: at most this many images × units are stimulated, so a layer of 128 units (the sign CNN's) gets 125
        images and one of 32 (the MNIST CNN's) 500: the cost stays that of 16,000 forward passes.
    """

    dormant_share: float = 0.05
    flip_threshold: float = 0.9
    images: int = 500
    passes: int = 16_000


@dataclass(frozen=True)
class UnitFlip(CustomJson):
    """Where stimulating one unit sends the clean images: the class (``class`` in JSON) and the share sent."""

    sends_to: int
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"class": self.sends_to, "share": self.share}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitFlip:
        return cls(int(data["class"]), float(data["share"]))


@dataclass(frozen=True)
class StimulationRecord:
    """What an audit records of the stimulation of the last conv ``layer``'s units (by unit number, as a string),
    and what its report renders."""

    layer: str
    units: int
    dormant: list[int]
    selective: dict[str, UnitFlip]
    flips: dict[str, UnitFlip]
    score: float
    flip_threshold: float
    dormant_share: float
    suspected_target: int | None
    seconds: float


@dataclass(frozen=True)
class StimulationResult:
    layer: str
    mean_activation: torch.Tensor  # (units,)
    dormant: list[int]
    flips: dict[int, tuple[int, float]]  # unit → (class stimulating it sends images to, share sent)
    flip_threshold: float
    dormant_share: float
    seconds: float

    @property
    def selective(self) -> dict[int, tuple[int, float]]:
        return {u: f for u, f in self.flips.items() if f[1] >= self.flip_threshold}

    @property
    def suspected_target(self) -> int | None:
        if not self.selective:
            return None
        return max(self.selective.values(), key=lambda f: f[1])[0]

    @property
    def score(self) -> float:
        """The largest share of clean images one stimulated unit sends to one class."""
        return max((f[1] for f in self.flips.values()), default=0.0)

    @property
    def score_name(self) -> str:
        return "score"

    def record(self) -> StimulationRecord:
        return StimulationRecord(
            layer=self.layer,
            units=len(self.mean_activation),
            dormant=self.dormant,
            selective={str(u): UnitFlip(c, s) for u, (c, s) in self.selective.items()},
            flips={str(u): UnitFlip(c, s) for u, (c, s) in self.flips.items()},
            score=self.score,
            flip_threshold=self.flip_threshold,
            dormant_share=self.dormant_share,
            suspected_target=self.suspected_target,
            seconds=self.seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return json_object(self.record())


def last_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The model's last ``nn.Conv2d`` (in registration order) and its name."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError("the model has no nn.Conv2d layer; the dormant-neuron detector needs one")
    return convs[-1]


@torch.no_grad()
def stimulate_units(
    model: nn.Module, images: torch.Tensor, num_classes: int, spec: StimulationSpec | None = None
) -> StimulationResult:
    """Measure the last conv layer's units on clean uint8 ``images`` and stimulate each one."""
    spec = spec or StimulationSpec()
    start = time.perf_counter()
    name, conv = last_conv(model)
    device = next(model.parameters()).device
    x = images[: min(spec.images, max(10, spec.passes // conv.out_channels))].to(device).float().div_(255.0)
    captured: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        clean_pred = model(x).argmax(1)
    finally:
        handle.remove()
    acts = torch.relu(captured[0])
    mean = acts.mean(dim=(0, 2, 3))
    dormant = [int(u) for u in torch.nonzero(mean < spec.dormant_share * mean.max()).flatten()]
    peak = float(acts.amax())
    flips: dict[int, tuple[int, float]] = {}
    for unit in range(len(mean)):

        def stimulate(_m: nn.Module, _i: Any, out: torch.Tensor, unit: int = unit) -> torch.Tensor:
            out = out.clone()
            out[:, unit] = peak
            return out

        handle = conv.register_forward_hook(stimulate)
        try:
            pred = model(x).argmax(1)
        finally:
            handle.remove()
        counts = torch.bincount(pred, minlength=num_classes)
        cls = int(counts.argmax())
        others = clean_pred != cls
        share = float((pred[others] == cls).float().mean()) if others.any() else 0.0
        flips[unit] = (cls, share)
    return StimulationResult(
        name, mean.cpu(), dormant, flips, spec.flip_threshold, spec.dormant_share, time.perf_counter() - start
    )


@dataclass(frozen=True)
class Stimulation:
    """Trigger-selective neurons, found by stimulation, as a model detector (``badnets.defenses.interface``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="dormant_neurons", init=False)

    def detect(self, model: nn.Module, clean: CleanData) -> StimulationResult:
        return stimulate_units(model, clean.images, clean.num_classes)
