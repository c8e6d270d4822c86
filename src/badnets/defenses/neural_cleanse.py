# SPDX-License-Identifier: Apache-2.0
"""Neural Cleanse (Wang et al., S&P 2019): reverse-engineer the smallest trigger that sends clean images to each
class; a class whose trigger is far smaller than the others' is a backdoor target.

For every class t, optimise a mask m_t ∈ [0, 1]^{H×W} and a pattern p_t ∈ [0, 1]^{C×H×W} so that
``(1 − m_t)·x + m_t·p_t`` is classified t for clean x, with an L1 penalty on m_t whose weight is raised while the
attack succeeds and lowered while it does not (the paper's cost schedule). All classes are optimised together in
one batch of ``classes × images`` inputs, so the model runs once per step instead of once per class.

The outlier test is the paper's, on log norms (see ``mad_anomaly_index``): with the logs of the best masks' L1 norms,
the consistency constant ``1.4826 · median(|log l1 − median(log l1)|)`` and the anomaly index
``(median(log l1) − log l1_t) / consistency``; an index above 2 flags class t. Only unusually *small* triggers count.

Per source (``NeuralCleanseSpec.per_source``), one trigger is optimised for every (source, target) pair, on that
source class's images only, and a class's norm is its smallest over sources. A single-target backdoor (only 1s
with the trigger become 3s) needs a trigger that moves every class in the paper's version, and hides there. With
many classes the pairs are many (1,806 on GTSRB's 43), so ``targets_per_source`` keeps, per source, only the
classes its clean images already lean to most (mean log-probability): K-Arm's pre-screening (Shen et al., ICML
2021), since a backdoor's target gains probability on its source's clean images too. A class that no source
leans to is not searched, and the outlier test runs over the classes that were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.errors import ConfigError
from badnets.records import json_object
from badnets.train import log_probabilities, one_cpu_thread

__all__ = [
    "FEW_CLASSES",
    "NeuralCleanse",
    "NeuralCleanseRecord",
    "NeuralCleanseResult",
    "NeuralCleanseSpec",
    "SourceScan",
    "leaning_targets",
    "mad_anomaly_index",
    "neural_cleanse",
    "recover_triggers",
    "scan_sources",
]


FEW_CLASSES = 5  # below this the MAD test has too few classes to single one out (measured: 3-class LISA)


@dataclass(frozen=True, kw_only=True)
class NeuralCleanseSpec:
    """Attributes:
    steps: optimisation steps (all classes at once).
    images_per_step: clean images per target class and step (per source: shared among its source classes, so
        both modes cost about the same).
    lr: Adam learning rate on the mask and pattern logits.
    init_cost: starting weight of the mask's L1 norm (per class; adapted every ``adjust_every`` steps).
    target_asr: a reverse-engineered trigger counts once it sends this share of images to its class.
    threshold: anomaly index above which a class is flagged (the paper: 2).
    per_source: one trigger per (source, target) pair, each on its source class's images (see ``neural_cleanse``).
    targets_per_source: per source, search only this many targets, those its clean images lean to most (None:
        every other class).
    mask: ``pixels``, the paper's mask (one value per pixel), or ``opacity``, one value for the whole image: the
        pattern is then blended over all of the image, the shape of a blended trigger (``badnets.defenses.
        blend_search``); its L1 norm is the opacity times H·W.
    success_over: ``step``, the paper's rule: a trigger counts once one step's batch reaches ``target_asr``; or
        ``window``: once the ``adjust_every`` steps' batches together reach it, and the window's largest mask then
        counts. A step's batch of a few images is reached by luck often enough to set a class's smallest mask
        (measured on GTSRB-43 blend searches with 4 images a step); a window of ten batches rarely is.
    """

    steps: int = 600
    images_per_step: int = 32
    lr: float = 0.1
    init_cost: float = 1e-3
    cost_factor: float = 1.5
    adjust_every: int = 10
    target_asr: float = 0.99
    threshold: float = 2.0
    per_source: bool = True
    targets_per_source: int | None = None
    mask: Literal["pixels", "opacity"] = "pixels"
    success_over: Literal["step", "window"] = "step"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < self.adjust_every or self.images_per_step < 1 or self.lr <= 0:
            raise ConfigError("Neural Cleanse needs steps >= adjust_every, images_per_step >= 1 and lr > 0")
        if self.targets_per_source is not None and self.targets_per_source < 1:
            raise ConfigError(f"targets_per_source must be >= 1, got {self.targets_per_source}")


@dataclass(frozen=True)
class NeuralCleanseRecord:
    """What an audit records of Neural Cleanse (per class: the smallest trigger's L1 norm, its success rate, its
    anomaly index and, per source class, the source it was found from; per search: its source, target and L1
    norm), and what its report renders."""

    l1: list[float | None]  # None: not searched
    asr: list[float]
    anomaly_index: list[float]
    max_anomaly_index: float
    threshold: float
    flagged: list[int]
    suspected_target: int | None
    sources: list[int | None] | None
    seconds: float
    trial_sources: list[int | None] = field(default_factory=list)
    trial_targets: list[int] = field(default_factory=list)
    trial_l1: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class NeuralCleanseResult:
    l1: torch.Tensor  # (K,) L1 norm of each class's best mask (NaN: not searched)
    asr: torch.Tensor  # (K,) attack success of each class's best trigger on the optimisation images
    masks: torch.Tensor  # (K, 1, H, W)
    patterns: torch.Tensor  # (K, C, H, W)
    anomaly_index: torch.Tensor  # (K,)
    threshold: float
    seconds: float
    # every trigger optimised: (source class or None for all classes, target class), with its mask and pattern
    trials: list[tuple[int | None, int]]
    trial_masks: torch.Tensor  # (T, 1, H, W)
    trial_patterns: torch.Tensor  # (T, C, H, W)
    # per-source mode: the source class of each class's smallest trigger (None: the class was not searched)
    sources: list[int | None] | None = None

    def triggers_for(self, target: int) -> tuple[list[int | None], torch.Tensor, torch.Tensor]:
        """The sources, masks and patterns of every trigger recovered for ``target``."""
        rows = [i for i, (_, t) in enumerate(self.trials) if t == target]
        return [self.trials[i][0] for i in rows], self.trial_masks[rows], self.trial_patterns[rows]

    @property
    def flagged(self) -> list[int]:
        return [int(k) for k in torch.nonzero(self.anomaly_index > self.threshold).flatten()]

    @property
    def smallest(self) -> int:
        """The class with the smallest trigger among those searched."""
        return int(self.l1.nan_to_num(torch.inf).argmin())

    @property
    def suspected_target(self) -> int | None:
        return int(self.anomaly_index.argmax()) if self.flagged else None

    @property
    def score(self) -> float:
        """The largest anomaly index: the most outlying class's."""
        return float(self.anomaly_index.max())

    @property
    def score_name(self) -> str:
        return "anomaly_index"

    def record(self) -> NeuralCleanseRecord:
        return NeuralCleanseRecord(
            l1=[None if math.isnan(v) else v for v in self.l1.tolist()],
            asr=self.asr.tolist(),
            anomaly_index=self.anomaly_index.tolist(),
            max_anomaly_index=float(self.anomaly_index.max()),
            threshold=self.threshold,
            flagged=self.flagged,
            suspected_target=self.suspected_target,
            sources=self.sources,
            seconds=self.seconds,
            trial_sources=[source for source, _ in self.trials],
            trial_targets=[target for _, target in self.trials],
            trial_l1=self.trial_masks.flatten(1).sum(1).tolist(),
        )

    def to_json(self) -> dict[str, Any]:
        return json_object(self.record())


def mad_anomaly_index(l1: torch.Tensor) -> torch.Tensor:
    """Per class: how many robust standard deviations its trigger norm lies *below* the median (0 above it).

    The paper's median-absolute-deviation test, taken on log norms: on raw norms the index can never exceed
    ``median / (1.4826 · MAD)``, so on a model whose classes need triggers of 14 to 80 pixels even a one-pixel
    backdoor scores barely 2. On the log scale a trigger k times smaller than the typical one counts the same
    whatever the norms' spread, and the index does not change when every norm is scaled. A NaN norm (a class
    not searched) gets index 0 and does not count.
    """
    searched = ~l1.isnan()
    log = l1[searched].clamp_min(1e-6).log()
    median = log.quantile(0.5)  # the midpoint of the two middle values for an even count, as numpy's median
    consistency = 1.4826 * (log - median).abs().quantile(0.5)
    index = torch.zeros_like(l1)
    index[searched] = ((median - log) / consistency.clamp_min(1e-12)).clamp_min(0.0)
    return index


def neural_cleanse(
    model: nn.Module,
    images: torch.Tensor,
    num_classes: int,
    spec: NeuralCleanseSpec | None = None,
    labels: torch.Tensor | None = None,
) -> NeuralCleanseResult:
    """Reverse-engineer a trigger for every class of ``model`` from clean uint8 ``images`` (N, C, H, W).

    With ``spec.per_source`` (needs ``labels``), one trigger per (source, target) pair is optimised on the source
    class's images, and a class's norm is its smallest over sources: a backdoor that only works on one source
    class (single-target BadNets) then shows as clearly as one that works on all.
    """
    spec = spec or NeuralCleanseSpec()
    start = time.perf_counter()
    k = num_classes
    leaning = None
    if spec.per_source and spec.targets_per_source is not None and labels is not None:
        leaning = leaning_targets(model, images, labels, num_classes, spec.targets_per_source)
    trials, pools, per_trial = _plan(images, labels, num_classes, range(k), spec, leaning)
    trial_targets = torch.tensor([t for _, t in trials])
    found = _reverse_triggers(model, images, pools, trial_targets, per_trial, spec)
    l1 = torch.full((k,), float("inf"))
    trial_of = torch.zeros(k, dtype=torch.long)
    for trial, t in enumerate(trial_targets.tolist()):  # the smallest trigger per target, over its trials
        if found.l1[trial] < l1[t]:
            l1[t], trial_of[t] = found.l1[trial], trial
    searched = torch.isfinite(l1)
    l1 = torch.where(searched, l1, torch.nan)  # a class no source leans to was not searched
    sources: list[int | None] = [trials[int(i)][0] if searched[c] else None for c, i in enumerate(trial_of)]
    return NeuralCleanseResult(
        l1=l1,
        asr=torch.where(searched, found.asr[trial_of], 0.0),
        masks=found.masks[trial_of] * searched.view(-1, 1, 1, 1),
        patterns=found.patterns[trial_of] * searched.view(-1, 1, 1, 1),
        anomaly_index=mad_anomaly_index(l1),
        threshold=spec.threshold,
        seconds=time.perf_counter() - start,
        sources=sources if spec.per_source else None,
        trials=trials,
        trial_masks=found.masks,
        trial_patterns=found.patterns,
    )


def leaning_targets(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_source: int
) -> dict[int, list[int]]:
    """Per source class among ``labels``: the ``per_source`` other classes its clean ``images`` lean to most (the
    highest mean log-probability), most likely first."""
    logp = log_probabilities(model, images)
    out = {}
    for source in sorted(set(labels.tolist())):
        mean = logp[labels == source].mean(0)
        mean[source] = -torch.inf
        out[int(source)] = mean.topk(min(per_source, num_classes - 1)).indices.tolist()
    return out


@dataclass(frozen=True)
class SourceScan:
    """For every source class present: the smallest trigger that moves its images to any other class (its L1
    norm and success), and the class most of them reach with it.

    A backdoor gives its source classes a short route to its target: an all-to-one backdoor caps every source's
    smallest trigger near the real one and sends many sources to one class; a single-target backdoor gives one
    source an unusually small trigger; an all-to-all backdoor gives every source a small trigger to its own target.
    It costs one search per class, where the per-source Neural Cleanse costs one per (source, target) pair.
    """

    sources: list[int]
    l1: torch.Tensor  # (S,)
    asr: torch.Tensor  # (S,)
    reached: list[int]  # per source: the class its trigger sends most of its images to (-1: none moved)
    seconds: float


def scan_sources(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    spec: NeuralCleanseSpec | None = None,
) -> SourceScan:
    """The smallest trigger moving each source class of the clean ``images`` out of its class (``SourceScan``);
    ``spec.images_per_step`` images of each source per step.

    Raises:
        ConfigError: fewer than two classes among ``labels``.
    """
    spec = spec or NeuralCleanseSpec()
    start = time.perf_counter()
    sources, pools = _source_pools(labels, num_classes, "a source scan")
    found = _reverse_triggers(model, images, pools, torch.tensor(sources), spec.images_per_step, spec, away=True)
    reached = []
    with torch.no_grad():
        model.eval()
        device = next(model.parameters()).device
        for i, source in enumerate(sources):
            x = images[pools[i]].to(device).float().div_(255.0)
            mask, pattern = found.masks[i].to(device), found.patterns[i].to(device)
            predicted = model((1 - mask) * x + mask * pattern).argmax(1).cpu()
            moved = predicted[predicted != source]
            reached.append(int(moved.mode().values) if len(moved) else -1)
    return SourceScan(sources, found.l1, found.asr, reached, time.perf_counter() - start)


def recover_triggers(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    target: int,
    spec: NeuralCleanseSpec | None = None,
) -> tuple[list[int | None], torch.Tensor, torch.Tensor]:
    """The search of ``neural_cleanse`` for one ``target`` class only: the sources, masks and patterns of its
    triggers (one per source class, or one for all in the paper's mode)."""
    spec = spec or NeuralCleanseSpec()
    trials, pools, per_trial = _plan(images, labels, num_classes, [target], spec)
    found = _reverse_triggers(model, images, pools, torch.tensor([t for _, t in trials]), per_trial, spec)
    return [s for s, _ in trials], found.masks, found.patterns


def _source_pools(labels: torch.Tensor, num_classes: int, who: str) -> tuple[list[int], list[torch.Tensor]]:
    """The classes present among ``labels`` and each one's image indices.

    Raises:
        ConfigError: fewer than two classes are present (``who`` names the search in the message).
    """
    present = [s for s in range(num_classes) if bool((labels == s).any())]
    if len(present) < 2:
        raise ConfigError(f"{who} needs clean images of at least two classes")
    return present, [torch.nonzero(labels == s).flatten() for s in present]


def _plan(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    num_classes: int,
    targets: Iterable[int],
    spec: NeuralCleanseSpec,
    leaning: dict[int, list[int]] | None = None,
) -> tuple[list[tuple[int | None, int]], list[torch.Tensor], int]:
    """The searches to run for ``targets``: (source or None, target) trials, each trial's image pool, and the
    images per trial and step; per source, only the targets ``leaning`` names for it, where given."""
    if not spec.per_source:
        trials: list[tuple[int | None, int]] = [(None, t) for t in targets]
        return trials, [torch.arange(len(images))] * len(trials), spec.images_per_step
    if labels is None:
        raise ConfigError("per-source Neural Cleanse needs the clean images' labels")
    present, source_pools = _source_pools(labels, num_classes, "per-source Neural Cleanse")
    pool_of = dict(zip(present, source_pools, strict=True))
    pairs = [(s, t) for t in targets for s in present if s != t and (leaning is None or t in leaning[s])]
    trials = [(s, t) for s, t in pairs]
    pools = [pool_of[s] for s, _ in pairs]
    per_source = len(present) - 1 if leaning is None else max(len(v) for v in leaning.values())
    return trials, pools, -(-spec.images_per_step // per_source)


@dataclass(frozen=True)
class _Triggers:
    l1: torch.Tensor
    asr: torch.Tensor
    masks: torch.Tensor
    patterns: torch.Tensor


@one_cpu_thread()
def _reverse_triggers(
    model: nn.Module,
    images: torch.Tensor,
    pools: list[torch.Tensor],
    targets: torch.Tensor,
    per_trial: int,
    spec: NeuralCleanseSpec,
    *,
    away: bool = False,
) -> _Triggers:
    """Optimise one (mask, pattern) per trial at once: trial i sends ``per_trial`` images a step, drawn from
    ``pools[i]``, to ``targets[i]`` — or, ``away``, to any class but ``targets[i]`` (its success is then the share
    of images that leave that class)."""
    device = next(model.parameters()).device
    model.eval()
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(spec.seed)
    k, b, (c, h, w) = len(pools), per_trial, images.shape[1:]
    sizes = torch.tensor([len(pool) for pool in pools])
    offsets, flat_pools = torch.cumsum(sizes, 0) - sizes, torch.cat(pools)
    mask_size = (h, w) if spec.mask == "pixels" else (1, 1)
    mask_logit = torch.full((k, 1, *mask_size), -2.0, device=device, requires_grad=True)  # start from small masks
    pattern_logit = torch.zeros((k, c, h, w), device=device, requires_grad=True)
    optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=spec.lr, betas=(0.5, 0.9))
    cost = torch.full((k,), spec.init_cost, device=device)
    step_targets = targets.to(device).repeat_interleave(b)
    best_l1 = torch.full((k,), float("inf"), device=device)
    best_asr = torch.zeros(k, device=device)
    best_mask = torch.zeros((k, 1, h, w), device=device)
    best_pattern = torch.zeros((k, c, h, w), device=device)
    hits = torch.zeros(k, device=device)
    # success is judged per window: one step (the paper's rule) or the cost schedule's adjust_every steps; a
    # successful window offers its largest mask
    window = spec.adjust_every if spec.success_over == "window" else 1
    window_hits, window_l1 = torch.zeros(k, device=device), torch.zeros(k, device=device)
    window_mask, window_pattern = torch.zeros_like(best_mask), torch.zeros_like(best_pattern)
    try:
        for step in range(spec.steps):
            # b images per trial, each from the trial's own pool, in one draw
            pick = (torch.rand((k, b), generator=generator) * sizes[:, None]).long()
            x = images[flat_pools[offsets[:, None] + pick]].to(device).float().div_(255.0)  # (K, B, C, H, W)
            mask, pattern = torch.sigmoid(mask_logit).expand(k, 1, h, w), torch.sigmoid(pattern_logit)
            stamped = (1 - mask[:, None]) * x + mask[:, None] * pattern[:, None]
            logits = model(stamped.reshape(k * b, c, h, w))
            if away:  # −log P(not the class): pushes the images out of it, to whichever class is nearest
                own = F.log_softmax(logits, 1).gather(1, step_targets[:, None]).squeeze(1)
                ce = -torch.log1p(-own.exp().clamp(max=1 - 1e-6)).view(k, -1).mean(1)
            else:
                ce = F.cross_entropy(logits, step_targets, reduction="none").view(k, -1).mean(1)
            l1 = mask.flatten(1).sum(1)
            loss = (ce + cost * l1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            with torch.no_grad():
                asr = ((logits.argmax(1) == step_targets) != away).float().view(k, -1).mean(1)
                hits += asr
                window_hits += asr
                larger = l1 > window_l1
                window_l1 = torch.where(larger, l1, window_l1)
                window_mask[larger], window_pattern[larger] = mask[larger], pattern[larger]
                if (step + 1) % window == 0:
                    window_asr = window_hits / window
                    better = (window_asr >= spec.target_asr) & (window_l1 < best_l1)
                    best_l1 = torch.where(better, window_l1, best_l1)
                    best_asr = torch.where(better, window_asr, best_asr)
                    best_mask[better], best_pattern[better] = window_mask[better], window_pattern[better]
                    window_hits.zero_()
                    window_l1.zero_()
                if (step + 1) % spec.adjust_every == 0:
                    succeeding = hits / spec.adjust_every >= spec.target_asr
                    cost = torch.where(succeeding, cost * spec.cost_factor, cost / spec.cost_factor)
                    hits.zero_()
        with torch.no_grad():  # a trial that never reached the target keeps its last (large) mask
            never = torch.isinf(best_l1)
            mask, pattern = torch.sigmoid(mask_logit).expand(k, 1, h, w), torch.sigmoid(pattern_logit)
            best_l1 = torch.where(never, mask.flatten(1).sum(1), best_l1)
            best_mask[never], best_pattern[never] = mask[never], pattern[never]
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    return _Triggers(best_l1.cpu(), best_asr.cpu(), best_mask.cpu(), best_pattern.cpu())


@dataclass(frozen=True)
class NeuralCleanse:
    """Neural Cleanse as a model detector (``badnets.defenses.interface``)."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="neural_cleanse", init=False)

    @property
    def spec(self) -> NeuralCleanseSpec:
        given, default = self.options, NeuralCleanseSpec()
        return NeuralCleanseSpec(
            seed=given.seed,
            per_source=given.per_source,
            steps=default.steps if given.search_steps is None else given.search_steps,
            images_per_step=default.images_per_step if given.search_images is None else given.search_images,
            targets_per_source=given.targets_per_source,
        )

    def detect(self, model: nn.Module, clean: CleanData) -> NeuralCleanseResult:
        return neural_cleanse(model, clean.images, clean.num_classes, self.spec, clean.labels)
