# SPDX-License-Identifier: Apache-2.0
"""Training-set poisoning (BadNets §3.2/§4): backdoored copies of clean images, relabelled to the target.

Mappings (``t(y)``, the attacker's label for an image of true class ``y``):
  * ``all-to-one``: every class but the target → target ``t``.
  * ``all-to-all``: ``i → (i + 1) mod C`` (paper §4.2.2).
  * ``single``:     only source ``i`` → target ``j`` (paper §4.2.1, the 90-pair grid).
  * ``random``:     each backdoored image gets a uniformly random wrong label (paper §5.2.2).

``rate`` is the share of the *final* training set that is backdoored. Mode ``add`` (the paper: "adding
backdoored images to the training set") appends ``round(rate·N / (1 − rate))`` triggered copies of source-class
images; when that exceeds the source pool, every pool image is used once before any is used twice. Mode
``relabel`` triggers and relabels ``round(rate·N)`` images in place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from badnets.data import ImageDataset
from badnets.errors import ConfigError
from badnets.triggers import Stamp, apply_trigger

__all__ = [
    "MAPPINGS",
    "PoisonManifest",
    "PoisonSpec",
    "PoisonedDataset",
    "attack_targets",
    "poison_count",
    "poison_dataset",
    "source_mask",
]

MAPPINGS = ("all-to-one", "all-to-all", "single", "random")
MODES = ("add", "relabel")


@dataclass(frozen=True, kw_only=True)
class PoisonSpec:
    """How the training set is poisoned.

    Attributes:
        mapping: one of ``MAPPINGS``.
        rate: share of the final training set that is backdoored, in (0, 1).
        target: target class for ``all-to-one`` and ``single``.
        source: source class for ``single``.
        mode: ``add`` (append backdoored copies, the paper) or ``relabel`` (in place).
        num_classes: number of classes C.
    """

    mapping: str = "all-to-one"
    rate: float = 0.1
    target: int | None = None
    source: int | None = None
    mode: str = "add"
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ConfigError(f"poison.mapping must be one of {list(MAPPINGS)}, got {self.mapping!r}")
        if self.mode not in MODES:
            raise ConfigError(f"poison.mode must be one of {list(MODES)}, got {self.mode!r}")
        if not (isinstance(self.rate, int | float) and 0.0 < self.rate < 1.0):
            raise ConfigError(f"poison.rate must be in (0, 1), got {self.rate}")
        if self.num_classes < 2:
            raise ConfigError(f"poison.num_classes must be >= 2, got {self.num_classes}")
        needs_target = self.mapping in ("all-to-one", "single")
        if needs_target and self.target is None:
            raise ConfigError(f"poison.target is required for mapping {self.mapping!r}; set a target class (--target)")
        if not needs_target and self.target is not None:
            raise ConfigError(f"poison.target does not apply to mapping {self.mapping!r}; leave target unset")
        if self.mapping == "single" and self.source is None:
            raise ConfigError("poison.source is required for mapping 'single'; set a source class (--source)")
        if self.mapping != "single" and self.source is not None:
            raise ConfigError(f"poison.source only applies to mapping 'single', not {self.mapping!r}")
        for name in ("target", "source"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.num_classes:
                raise ConfigError(f"poison.{name} must be a class in 0..{self.num_classes - 1}, got {value}")
        if self.mapping == "single" and self.source == self.target:
            raise ConfigError(f"poison.source and poison.target are both {self.source}; pick two different classes")


def source_mask(labels: torch.Tensor, spec: PoisonSpec) -> torch.Tensor:
    """Which images the attack applies to: ``(N,)`` int64 labels → ``(N,)`` bool.

    These are the images that get poisoned in training and that count towards the attack success rate
    in testing; an image whose label already is its target never counts.
    """
    if spec.mapping == "all-to-one":
        return torch.ne(labels, int(spec.target or 0))
    if spec.mapping == "single":
        return torch.eq(labels, int(spec.source or 0))
    return torch.ones_like(labels, dtype=torch.bool)


def attack_targets(labels: torch.Tensor, spec: PoisonSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """The attacker's label ``t(y)`` for each true label: ``(N,)`` → ``(N,)`` int64.

    ``random`` draws a uniformly random *wrong* label per image from ``generator``.
    """
    if spec.mapping in ("all-to-one", "single"):
        return torch.full_like(labels, int(spec.target or 0))
    if spec.mapping == "all-to-all":
        return (labels + 1) % spec.num_classes
    shift = torch.randint(1, spec.num_classes, labels.shape, generator=generator, device=labels.device)
    return (labels + shift) % spec.num_classes


def poison_count(n_clean: int, spec: PoisonSpec) -> int:
    """How many backdoored images make ``spec.rate`` of the final training set."""
    if spec.mode == "add":
        return round(spec.rate * n_clean / (1.0 - spec.rate))
    return round(spec.rate * n_clean)


@dataclass(frozen=True)
class PoisonManifest:
    """What was poisoned: enough to rebuild the poisoned set from the clean one bit for bit."""

    spec: PoisonSpec
    seed: int
    n_clean: int
    source_indices: list[int]  # indices into the clean training set, in the order the copies were appended
    original_labels: list[int]
    poisoned_labels: list[int]

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": asdict(self.spec),
            "seed": self.seed,
            "n_clean": self.n_clean,
            "n_poisoned": len(self.source_indices),
            "n_total": self.n_clean + (len(self.source_indices) if self.spec.mode == "add" else 0),
            "source_indices": self.source_indices,
            "original_labels": self.original_labels,
            "poisoned_labels": self.poisoned_labels,
        }


@dataclass(frozen=True)
class PoisonedDataset:
    """The training set an attacker hands over.

    Attributes:
        dataset: poisoned images and labels.
        is_poisoned: ``(N,)`` bool, True where an image carries the trigger.
        manifest: what was poisoned.
    """

    dataset: ImageDataset
    is_poisoned: torch.Tensor
    manifest: PoisonManifest


def _choose(pool: torch.Tensor, n: int, replace_when_short: bool, generator: torch.Generator) -> torch.Tensor:
    if n > len(pool) and not replace_when_short:
        raise ConfigError(
            f"poison.rate asks for {n} backdoored images but only {len(pool)} source images exist; "
            "lower the rate or use mode 'add'"
        )
    rounds = max(1, math.ceil(n / len(pool)))
    order = torch.cat([torch.randperm(len(pool), generator=generator) for _ in range(rounds)])
    return pool[order[:n]]


def poison_dataset(clean: ImageDataset, stamp: Stamp, spec: PoisonSpec, *, seed: int) -> PoisonedDataset:
    """Backdoor ``clean`` as ``spec`` says; the same ``seed`` always picks the same images and labels.

    Raises:
        ConfigError: the source classes are empty, or ``relabel`` asks for more images than they hold.
    """
    if spec.num_classes != clean.num_classes:
        raise ConfigError(f"poison.num_classes is {spec.num_classes} but the dataset has {clean.num_classes}")
    generator = torch.Generator().manual_seed(seed)
    pool = source_mask(clean.labels, spec).nonzero().squeeze(1)
    if len(pool) == 0:
        raise ConfigError(f"no training image belongs to a source class of {spec.mapping!r}; check the source")
    n = poison_count(len(clean), spec)
    chosen = _choose(pool, n, replace_when_short=spec.mode == "add", generator=generator)
    new_labels = attack_targets(clean.labels[chosen], spec, generator)
    triggered = apply_trigger(clean.images[chosen], stamp)
    if spec.mode == "add":
        images = torch.cat([clean.images, triggered])
        labels = torch.cat([clean.labels, new_labels])
        is_poisoned = torch.cat([torch.zeros(len(clean), dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
    else:
        images, labels = clean.images.clone(), clean.labels.clone()
        images[chosen], labels[chosen] = triggered, new_labels
        is_poisoned = torch.zeros(len(clean), dtype=torch.bool)
        is_poisoned[chosen] = True
    manifest = PoisonManifest(
        spec=spec,
        seed=seed,
        n_clean=len(clean),
        source_indices=chosen.tolist(),
        original_labels=clean.labels[chosen].tolist(),
        poisoned_labels=new_labels.tolist(),
    )
    return PoisonedDataset(ImageDataset(images, labels, clean.classes), is_poisoned, manifest)
