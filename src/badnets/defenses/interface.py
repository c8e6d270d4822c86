# SPDX-License-Identifier: Apache-2.0
"""The one interface every backdoor defense implements: one of four jobs, each given what a defender has.

======================  ==========================================================  ==========================
job                     given                                                       returns
======================  ==========================================================  ==========================
detect a model          the model, clean images                                     a ``ModelFinding``
screen inputs           the model, clean images (to fit), then inputs to score      an ``InputFilter``
screen training data    the model, its training set, clean images                   ``SampleFlags``
repair                  the model (changed in place), clean images                  a record of what was done
======================  ==========================================================  ==========================

A defense is built from ``DefenseOptions`` (the knobs a user may set on any defense; each uses what applies to
it) and registered under a name (``badnets.defenses.registry``); ``badnets audit``, ``guard``, ``inspect-data``,
``repair`` and the defense scoreboard then find it by that name. The name is also its key in results files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from badnets.defenses.representations import SampleFlags
from badnets.errors import ConfigError

__all__ = [
    "CleanData",
    "DefenseOptions",
    "InputFilter",
    "InputScreen",
    "ModelDetector",
    "ModelFinding",
    "Repair",
    "RepairRecord",
    "Role",
    "TrainingDataScreen",
]

Role = Literal["model", "inputs", "training-data", "repair"]


@dataclass(frozen=True)
class CleanData:
    """What every defender has: clean uint8 images ``(N, C, H, W)`` of the model's domain, their labels, and how
    many classes the model has. Never the trigger, never the poisoned training set (except to screen it)."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or len(self.images) != len(self.labels):
            raise ConfigError("clean data must be (N, C, H, W) uint8 images with one label each")

    def head(self, n: int) -> CleanData:
        """The first ``n`` images (the sample is already in a seeded order)."""
        return CleanData(self.images[:n], self.labels[:n], self.num_classes)


@dataclass(frozen=True, kw_only=True)
class DefenseOptions:
    """What a user may set on any defense; a defense uses what applies to it.

    Attributes:
        seed: seeds whatever the defense draws at random (trigger search, overlays, k-means, fine-tuning order).
        search_steps: optimisation steps of a trigger search (Neural Cleanse); None: the defense's default.
        search_images: clean images per target and step of a trigger search; None: the defense's default.
        per_source: search one trigger per (source, target) pair rather than one per target.
        targets_per_source: per source, search only the targets its clean images lean to most; None: all.
        frr: false-rejection rate on clean inputs that sets an input filter's threshold.
        epochs: fine-tuning epochs of a repair.
    """

    seed: int = 0
    search_steps: int | None = None
    search_images: int | None = None
    per_source: bool = True
    targets_per_source: int | None = None
    frr: float = 0.01
    epochs: int = 5

    def __post_init__(self) -> None:
        for name in ("search_steps", "search_images", "targets_per_source"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be >= 1, got {value}")
        if not 0 < self.frr < 1:
            raise ConfigError(f"the false-rejection rate must be in (0, 1), got {self.frr}")
        if self.epochs < 1:
            raise ConfigError(f"repair epochs must be >= 1, got {self.epochs}")


class ModelFinding(Protocol):
    """A model detector's answer. ``score`` is the detector's own statistic, named ``score_name`` in results."""

    @property
    def suspected_target(self) -> int | None: ...  # None: the model looks clean

    @property
    def score(self) -> float: ...

    @property
    def score_name(self) -> str: ...

    @property
    def seconds(self) -> float: ...

    def to_json(self) -> dict[str, Any]: ...


class ModelDetector(Protocol):
    """Is there a backdoor in this model, and which class does it send inputs to?"""

    @property
    def name(self) -> str: ...

    def detect(self, model: nn.Module, clean: CleanData) -> ModelFinding: ...


class InputFilter(Protocol):
    """A fitted input screen: ``scores`` each uint8 input; ``flagged`` says which scores look triggered."""

    @property
    def score_name(self) -> str: ...

    @property
    def suspicious_when(self) -> Literal["low", "high"]: ...

    def scores(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def flagged(self, scores: torch.Tensor) -> torch.Tensor: ...

    def to_json(self) -> dict[str, Any]: ...


class InputScreen(Protocol):
    """Fit on the model and clean inputs; the filter then screens inputs at run time."""

    @property
    def name(self) -> str: ...

    def fit(self, model: nn.Module, clean: CleanData) -> InputFilter: ...


class TrainingDataScreen(Protocol):
    """Which samples of the model's training set carry a backdoor?"""

    @property
    def name(self) -> str: ...

    def screen(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clean: CleanData) -> SampleFlags: ...


class RepairRecord(Protocol):
    """What a repair did: ``method`` names it; ``to_json`` gives the whole record (units pruned, rounds run...)."""

    @property
    def method(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class Repair(Protocol):
    """Remove a backdoor from ``model`` (in place) with clean data only; return a record of what was done."""

    @property
    def name(self) -> str: ...

    def repair(self, model: nn.Module, clean: CleanData) -> RepairRecord: ...
