# SPDX-License-Identifier: Apache-2.0
"""Mitigation: remove a backdoor with the defender's clean images only.

- **Fine-Pruning** (Liu, Dolan-Gavitt, Garg, RAID 2018, by two of the BadNets authors): prune the last conv
  layer's units in increasing order of their mean activation on clean images (the dormant ones first: backdoor
  neurons hide there) while clean accuracy on held-out clean images stays within ``max_prune_drop``, then
  fine-tune the pruned model on the clean images.
- **FT-SAM** (Zhu et al., ICCV 2023): fine-tune on the clean images with sharpness-aware minimisation (ASAM) at a
  large radius: the backdoor lives in a few neurons of large norm, which plain fine-tuning barely moves and SAM's
  worst-case step shrinks. The paper's recipe (BackdoorBench) is SGD with a cosine schedule; ours is the trainer's
  AdamW one-cycle with the ASAM step (``TrainSpec.sam_rho``), the same two-pass update.
- **ANP** (Wu & Wang, NeurIPS 2021; ``badnets.defenses.anp``): prune the neurons that adversarial neuron
  perturbations show the backdoor to depend on; no fine-tuning.
- **NAD** (Li et al., ICLR 2021; ``badnets.defenses.nad``): fine-tune a teacher copy, then fine-tune the model
  to match the teacher's attention maps at every convolution.
- **Neural Cleanse unlearning** (Wang et al., S&P 2019): stamp the triggers Neural Cleanse recovered for the
  suspected target on a share of the clean images, keep their true labels, and fine-tune, so the model unlearns
  the shortcut. Per-source Neural Cleanse recovers one trigger per source class; each image gets the one
  recovered from its own class, so the model unlearns every variant the search found, not only the smallest.

Pruned units stay pruned: their conv filter and bias (and a following batch norm's scale and shift) are zeroed,
and a hook holds their output at zero while fine-tuning, so the saved weights give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from badnets.data import ImageDataset
from badnets.defenses.anp import AnpRecord, AnpSpec, adversarial_neuron_pruning
from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.nad import NadLayers, distill_attention
from badnets.defenses.neural_cleanse import (
    NeuralCleanse,
    NeuralCleanseSpec,
    mad_anomaly_index,
    neural_cleanse,
    recover_triggers,
)
from badnets.defenses.stimulation import last_conv
from badnets.errors import ConfigError
from badnets.records import json_object
from badnets.train import TrainSpec, predict, train_model

__all__ = [
    "AdversarialNeuronPruning",
    "AnpRepairRecord",
    "FinePruning",
    "FinePruningRecord",
    "FineTuningRecord",
    "FtSam",
    "NadRecord",
    "NeuralAttentionDistillation",
    "PruningAccuracy",
    "RepairSpec",
    "TuningAccuracy",
    "Unlearning",
    "UnlearningRecord",
    "anp_repair",
    "fine_pruning",
    "ft_sam",
    "nad_repair",
    "nc_unlearning",
    "stamp_recovered",
]


@dataclass(frozen=True, kw_only=True)
class RepairSpec:
    """Attributes:
    max_prune_drop: clean-accuracy drop (on the held-out clean images) that stops the pruning.
    held_out: share of the defender's clean images kept aside to measure that accuracy.
    unlearn_share: share of the fine-tuning images stamped with the recovered trigger (true labels kept).
    unlearn_rounds: rounds of unlearning. Neural Cleanse recovers a *smallest* trigger, often part of the real one;
        once the model has unlearned it, the next round searches again what still sends images to the same class,
        and unlearns it while it is still an outlier (anomaly index above the threshold) among the other classes'
        triggers; what natural features of the class remain is left alone, since unlearning it costs accuracy.
    sam_rho: FT-SAM's ASAM radius (the paper's BackdoorBench settings: 2 on CIFAR-10, 8 on GTSRB).
    fine_tune_lr: the peak learning rate of FT-SAM and NAD (teacher and student). Measured on MNIST BadNets of
        1–3% poison (audit round): at the other repairs' 10⁻³ the backdoors kept 90–98% attack success after 5
        epochs; at 10⁻² and 10 epochs on 1,600 clean images both fell to ≤ 5% at 0.6–1.4 points.
    """

    max_prune_drop: float = 0.04
    held_out: float = 0.2
    unlearn_share: float = 0.5
    unlearn_rounds: int = 3
    sam_rho: float = 2.0
    fine_tune_lr: float = 1e-2
    train: TrainSpec = field(default_factory=lambda: TrainSpec(epochs=5, lr=1e-3, batch_size=64, label_smoothing=0.0))
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.held_out < 1 or not 0 < self.unlearn_share < 1 or not 0 <= self.max_prune_drop < 1:
            raise ConfigError("repair needs held_out and unlearn_share in (0, 1) and max_prune_drop in [0, 1)")
        if self.unlearn_rounds < 1:
            raise ConfigError(f"unlearn_rounds must be >= 1, got {self.unlearn_rounds}")


@dataclass(frozen=True)
class PruningAccuracy:
    """Clean accuracy on the held-out clean images before, after pruning and after fine-tuning."""

    before: float
    after_pruning: float
    after_fine_tuning: float


@dataclass(frozen=True)
class TuningAccuracy:
    """Clean accuracy on the held-out clean images before and after fine-tuning."""

    before: float
    after_fine_tuning: float


@dataclass(frozen=True)
class FinePruningRecord:
    """What Fine-Pruning did: the layer, the units it pruned (least active first) and their share of the layer."""

    method: str = field(default="fine-pruning", init=False)
    layer: str
    pruned_units: list[int]
    pruned_share: float
    held_out_accuracy: PruningAccuracy

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


@dataclass(frozen=True)
class UnlearningRecord:
    """What Neural Cleanse unlearning did: the class whose triggers it unlearned (``flagged``: Neural Cleanse
    flagged it; else the class of the smallest trigger), the largest anomaly index, the rounds run and the
    unlearned class's anomaly index before each round."""

    method: str = field(default="nc-unlearning", init=False)
    unlearned_class: int
    flagged: bool
    anomaly_index: float
    rounds: int
    anomaly_index_by_round: list[float]
    held_out_accuracy: TuningAccuracy

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


@dataclass(frozen=True)
class FineTuningRecord:
    """What FT-SAM did: the ASAM radius and peak learning rate it fine-tuned with."""

    method: str = field(default="ft-sam", init=False)
    sam_rho: float
    lr: float
    held_out_accuracy: TuningAccuracy

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


@dataclass(frozen=True)
class NadRecord:
    """What NAD did: where it distilled attention and with what weights."""

    method: str = field(default="nad", init=False)
    distilled: NadLayers
    held_out_accuracy: TuningAccuracy

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


@dataclass(frozen=True)
class AnpRepairRecord:
    """What ANP did (``AnpRecord``), with the clean accuracy on the held-out images before and after pruning."""

    method: str = field(default="anp", init=False)
    pruning: AnpRecord
    held_out_accuracy: TuningAccuracy

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


def _split(images: torch.Tensor, labels: torch.Tensor, spec: RepairSpec) -> tuple[ImageDataset, ImageDataset]:
    n_held = max(1, int(len(images) * spec.held_out))
    classes = tuple(str(c) for c in range(int(labels.max()) + 1))
    return (
        ImageDataset(images[n_held:], labels[n_held:], classes),
        ImageDataset(images[:n_held], labels[:n_held], classes),
    )


def _accuracy(model: nn.Module, data: ImageDataset) -> float:
    return float((predict(model, data.images) == data.labels).float().mean())


def _zero_units(model: nn.Module, conv_name: str, units: list[int]) -> None:
    """Zero the units' filters and biases, and a directly following BatchNorm2d's scale and shift."""
    modules = dict(model.named_modules())
    conv = modules[conv_name]
    assert isinstance(conv, nn.Conv2d)
    with torch.no_grad():
        conv.weight[units] = 0
        if conv.bias is not None:
            conv.bias[units] = 0
        names = list(modules)
        following = modules[names[names.index(conv_name) + 1]] if names.index(conv_name) + 1 < len(names) else None
        if isinstance(following, nn.BatchNorm2d):
            following.weight[units] = 0
            following.bias[units] = 0


def fine_pruning(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: RepairSpec | None = None
) -> FinePruningRecord:
    """Prune (in place) and fine-tune ``model`` on the defender's clean uint8 ``images``; returns what was done."""
    spec = spec or RepairSpec()
    tune, held = _split(images, labels, spec)
    name, conv = last_conv(model)
    captured: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: captured.append(torch.relu(out).mean(dim=(0, 2, 3))))
    try:
        predict(model, tune.images)
    finally:
        handle.remove()
    activation = torch.stack(captured).mean(0).cpu()
    order = activation.argsort().tolist()  # least active first
    base = _accuracy(model, held)
    pruned: list[int] = []
    mask = torch.ones(len(order))

    def hold_at_zero(_m: nn.Module, _i: Any, out: torch.Tensor) -> torch.Tensor:
        return out * mask.to(out.device).view(1, -1, 1, 1)

    handle = conv.register_forward_hook(hold_at_zero)
    try:
        for unit in order[:-1]:  # never prune every unit
            mask[unit] = 0
            if base - _accuracy(model, held) > spec.max_prune_drop:
                mask[unit] = 1
                break
            pruned.append(unit)
        after_pruning = _accuracy(model, held)
        train_model(model, tune, spec.train, seed=spec.seed, init=False)
    finally:
        handle.remove()
    _zero_units(model, name, pruned)
    return FinePruningRecord(
        layer=name,
        pruned_units=pruned,
        pruned_share=len(pruned) / len(order),
        held_out_accuracy=PruningAccuracy(base, after_pruning, _accuracy(model, held)),
    )


def ft_sam(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: RepairSpec | None = None
) -> FineTuningRecord:
    """Fine-tune ``model`` (in place) on the defender's clean uint8 ``images`` with ASAM steps of radius
    ``spec.sam_rho``; returns what was done."""
    spec = spec or RepairSpec()
    tune, held = _split(images, labels, spec)
    base = _accuracy(model, held)
    train_model(
        model, tune, replace(spec.train, lr=spec.fine_tune_lr, sam_rho=spec.sam_rho), seed=spec.seed, init=False
    )
    return FineTuningRecord(
        sam_rho=spec.sam_rho, lr=spec.fine_tune_lr, held_out_accuracy=TuningAccuracy(base, _accuracy(model, held))
    )


def nad_repair(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: RepairSpec | None = None
) -> NadRecord:
    """Neural Attention Distillation of ``model`` (in place) on the defender's clean uint8 ``images``; returns
    what was done."""
    spec = spec or RepairSpec()
    tune, held = _split(images, labels, spec)
    base = _accuracy(model, held)
    distilled = distill_attention(model, tune, replace(spec.train, lr=spec.fine_tune_lr), spec.seed)
    return NadRecord(distilled, TuningAccuracy(base, _accuracy(model, held)))


def anp_repair(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: RepairSpec | None = None,
    anp: AnpSpec | None = None,
) -> AnpRepairRecord:
    """Learn ANP's masks on the defender's clean uint8 ``images`` (less the held-out share) and prune ``model``
    in place; returns what was done."""
    spec = spec or RepairSpec()
    tune, held = _split(images, labels, spec)
    base = _accuracy(model, held)
    record = adversarial_neuron_pruning(model, tune.images, tune.labels, anp or AnpSpec(seed=spec.seed))
    return AnpRepairRecord(record, TuningAccuracy(base, _accuracy(model, held)))


def stamp_recovered(
    images: torch.Tensor,
    labels: torch.Tensor,
    sources: list[int | None],
    masks: torch.Tensor,
    patterns: torch.Tensor,
    share: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stamp recovered triggers (``masks`` (T, 1, H, W), ``patterns`` (T, C, H, W), found from ``sources``) on a
    seeded ``share`` of the uint8 ``images``: each image gets the trigger recovered from its own class, else a
    random one. Returns the stamped indices and a stamped copy of the images."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[: int(len(images) * share)]
    which = torch.randint(len(sources), (len(chosen),), generator=generator)
    for row, source in enumerate(sources):
        if source is not None:
            which[labels[chosen] == source] = row
    stamped = images.clone()
    x = stamped[chosen].float() / 255.0
    x = (1 - masks[which]) * x + masks[which] * patterns[which]
    stamped[chosen] = (x * 255).round().clamp(0, 255).to(torch.uint8)
    return chosen, stamped


def nc_unlearning(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    spec: RepairSpec | None = None,
    cleanse: NeuralCleanseSpec | None = None,
) -> UnlearningRecord:
    """Recover the triggers with Neural Cleanse, then fine-tune ``model`` (in place) on clean images of which a
    share carries them under their true label; then, up to ``spec.unlearn_rounds - 1`` times, search the same
    class's triggers again on the fine-tuned model and unlearn them while they are still anomalously small.
    Returns what was done."""
    spec = spec or RepairSpec()
    tune, held = _split(images, labels, spec)
    num_classes = len(tune.classes)
    base = _accuracy(model, held)
    found = neural_cleanse(model, tune.images, num_classes, cleanse, tune.labels)
    target = found.suspected_target
    k = target if target is not None else found.smallest  # nothing flagged: the smallest trigger
    triggers = found.triggers_for(k)
    indices = [float(found.anomaly_index[k])]
    done = 0
    for r in range(spec.unlearn_rounds):
        if r > 0:  # the model no longer answers to the smallest trigger; search what still sends images to k
            triggers = recover_triggers(model, tune.images, tune.labels, num_classes, k, cleanse)
            l1 = found.l1.clone()
            l1[k] = triggers[1].flatten(1).sum(1).min()
            indices.append(float(mad_anomaly_index(l1)[k]))
            if indices[-1] <= found.threshold:  # what is left is no smaller than other classes' triggers: stop
                break
        _, stamped = stamp_recovered(tune.images, tune.labels, *triggers, spec.unlearn_share, spec.seed + r)
        train_model(model, ImageDataset(stamped, tune.labels, tune.classes), spec.train, seed=spec.seed + r, init=False)
        done += 1
    return UnlearningRecord(
        unlearned_class=k,
        flagged=target is not None,
        anomaly_index=float(found.anomaly_index.max()),
        rounds=done,
        anomaly_index_by_round=indices,
        held_out_accuracy=TuningAccuracy(base, _accuracy(model, held)),
    )


def _repair_spec(options: DefenseOptions, model: nn.Module) -> RepairSpec:
    """The repair's settings from ``options``; it fine-tunes where ``model`` is (as the detectors run there), so
    ``--device`` puts a repair on the CPU even where CUDA is."""
    spec = RepairSpec(seed=options.seed)
    device = str(next(model.parameters()).device)
    return replace(spec, train=replace(spec.train, epochs=options.epochs, device=device))


@dataclass(frozen=True)
class FinePruning:
    """Fine-Pruning as a repair (``badnets.defenses.interface``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="fine-pruning", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> FinePruningRecord:
        return fine_pruning(model, clean.images, clean.labels, _repair_spec(self.options, model))


@dataclass(frozen=True)
class Unlearning:
    """Neural Cleanse unlearning as a repair (``badnets.defenses.interface``); the trigger search takes the same
    options as the ``neural_cleanse`` detector."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="unlearning", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> UnlearningRecord:
        cleanse = NeuralCleanse(self.options).spec
        return nc_unlearning(model, clean.images, clean.labels, _repair_spec(self.options, model), cleanse)


@dataclass(frozen=True)
class FtSam:
    """FT-SAM as a repair (``badnets.defenses.interface``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="ft-sam", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> FineTuningRecord:
        return ft_sam(model, clean.images, clean.labels, _repair_spec(self.options, model))


@dataclass(frozen=True)
class AdversarialNeuronPruning:
    """ANP as a repair (``badnets.defenses.interface``); it does not fine-tune, so ``epochs`` does not apply. Not
    registered by default (see ``badnets.defenses.registry``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="anp", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> AnpRepairRecord:
        return anp_repair(model, clean.images, clean.labels, RepairSpec(seed=self.options.seed))


@dataclass(frozen=True)
class NeuralAttentionDistillation:
    """NAD as a repair (``badnets.defenses.interface``): teacher and student fine-tune ``epochs`` each."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="nad", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> NadRecord:
        return nad_repair(model, clean.images, clean.labels, _repair_spec(self.options, model))
