# SPDX-License-Identifier: Apache-2.0
"""Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021): prune the neurons whose perturbation most easily collapses
the model, learned on a few clean images and without knowing the trigger.

A backdoored network is unusually sensitive to small perturbations of its neurons: nudging them sends clean images
to the target class. ANP gives every neuron k a mask m_k ∈ [0, 1] on its weight and solves

    min_m  α · L(m ⊙ w, b) + (1 − α) · max_{δ, ξ ∈ [−ε, ε]}  L((m + δ) ⊙ w, (1 + ξ) ⊙ b)

on the clean images: each iteration draws δ, ξ uniformly in [−ε, ε], takes one signed gradient-ascent step of size
ε on them, then one SGD step on the masks (clipped to [0, 1]). The neurons whose mask ends below ``threshold`` are
pruned: their weights are zeroed and their biases kept, as the paper does. The model's weights never change
otherwise, and there is no fine-tuning.

A neuron is what carries one channel: the paper's ResNet-18 masks its batch-norm channels; our CNNs have no batch
norm, so a neuron here is a convolution's output channel (its filter and bias) or a hidden fully connected unit
(its weights and bias). The classifier's output units are never pruned (that would delete a class).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from badnets.errors import ConfigError
from badnets.records import json_object
from badnets.train import one_cpu_thread

__all__ = ["AnpRecord", "AnpSpec", "adversarial_neuron_pruning", "neuron_layers"]


@dataclass(frozen=True, kw_only=True)
class AnpSpec:
    """The paper's settings (its §4.1): ε = 0.4, α = 0.2, SGD at learning rate 0.2 with momentum 0.9, batches of
    128, 2,000 iterations, pruning threshold 0.2.

    Attributes:
        eps: the neuron perturbation budget ε (0: no perturbation, masks learned on the clean loss alone).
        alpha: weight α of the unperturbed loss against the perturbed one.
        iterations: mask updates (each costs three forward and backward passes of a batch).
        threshold: masks below it are pruned.
    """

    eps: float = 0.4
    alpha: float = 0.2
    lr: float = 0.2
    momentum: float = 0.9
    batch_size: int = 128
    iterations: int = 2000
    threshold: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.eps >= 0 and 0 <= self.alpha <= 1 and 0 < self.threshold < 1):
            raise ConfigError("ANP needs eps >= 0, alpha in [0, 1] and a threshold in (0, 1)")
        if self.iterations < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("ANP needs iterations >= 1, batch_size >= 1 and lr > 0")


@dataclass(frozen=True)
class AnpRecord:
    """What ANP did: per layer, the neurons it pruned; how many of all neurons; the masks' quantiles."""

    method: str = field(default="anp", init=False)
    pruned: dict[str, list[int]]
    pruned_neurons: int
    neurons: int
    mask_quantiles: dict[str, float]
    spec: AnpSpec

    def to_json(self) -> dict[str, Any]:
        return json_object(self)


def neuron_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """The layers whose output units ANP masks: every convolution and every fully connected layer but the last
    (the classifier)."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if layers and isinstance(layers[-1][1], nn.Linear):
        layers = layers[:-1]
    if not layers:
        raise ConfigError("ANP needs a model with convolutions or hidden fully connected layers")
    return layers


class _NeuronMasks:
    """Per layer: the masks m and the perturbations δ (on the weight) and ξ (on the bias) of its output units."""

    def __init__(self, layers: list[tuple[str, nn.Conv2d | nn.Linear]], device: torch.device) -> None:
        self.layers = layers
        sizes = [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for _, m in layers]
        self.masks = [torch.ones(n, device=device, requires_grad=True) for n in sizes]
        self.weight_noise = [torch.zeros(n, device=device, requires_grad=True) for n in sizes]
        self.bias_noise = [torch.zeros(n, device=device, requires_grad=True) for n in sizes]
        self.perturbed = False

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model's units compute ``(m + δ) · (W x) + (1 + ξ) · b`` (δ = ξ = 0 unless
        ``perturbed``)."""
        handles = [module.register_forward_hook(self._hook(i, module)) for i, (_, module) in enumerate(self.layers)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, i: int, module: nn.Conv2d | nn.Linear) -> Any:
        def scale(_m: nn.Module, _inputs: Any, out: torch.Tensor) -> torch.Tensor:
            shape = (1, -1) + (1,) * (out.dim() - 2)
            gain = self.masks[i] + self.weight_noise[i] if self.perturbed else self.masks[i]
            bias = module.bias
            if bias is None:
                return out * gain.view(shape)
            weighted = out - bias.view(shape)
            bias_gain = 1 + self.bias_noise[i] if self.perturbed else torch.ones_like(bias)
            return weighted * gain.view(shape) + (bias * bias_gain).view(shape)

        return scale


@one_cpu_thread()
def adversarial_neuron_pruning(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AnpSpec | None = None
) -> AnpRecord:
    """Learn ANP's neuron masks on the clean uint8 ``images`` and prune ``model`` (in place) by them."""
    spec = spec or AnpSpec()
    device = next(model.parameters()).device
    layers = neuron_layers(model)
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    units = _NeuronMasks(layers, device)
    optimizer = torch.optim.SGD(units.masks, lr=spec.lr, momentum=spec.momentum)
    generator = torch.Generator().manual_seed(spec.seed)
    noise = units.weight_noise + units.bias_noise
    try:
        with units.applied():
            for _ in range(spec.iterations):
                pick = torch.randint(len(images), (min(spec.batch_size, len(images)),), generator=generator)
                x = images[pick].to(device).float().div_(255.0)
                y = labels[pick].to(device)
                if spec.eps > 0:  # one signed ascent step from a uniform start: the worst neuron perturbation
                    with torch.no_grad():
                        for n in noise:
                            n.copy_((torch.rand(n.shape, generator=generator) * 2 - 1).mul_(spec.eps))
                    units.perturbed = True
                    grads = torch.autograd.grad(F.cross_entropy(model(x), y), noise)
                    with torch.no_grad():
                        for n, g in zip(noise, grads, strict=True):
                            n.add_(spec.eps * g.sign()).clamp_(-spec.eps, spec.eps)
                units.perturbed = False
                loss = spec.alpha * F.cross_entropy(model(x), y)
                if spec.eps > 0:
                    units.perturbed = True
                    loss = loss + (1 - spec.alpha) * F.cross_entropy(model(x), y)
                    units.perturbed = False
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                with torch.no_grad():
                    for m in units.masks:
                        m.clamp_(0, 1)
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    masks = torch.cat([m.detach().cpu() for m in units.masks])
    pruned = {}
    with torch.no_grad():
        for (name, module), m in zip(layers, units.masks, strict=True):
            cut = torch.nonzero(m.detach() < spec.threshold).flatten()
            module.weight[cut] = 0  # the bias stays: a pruned unit outputs its bias, as in the paper
            pruned[name] = cut.tolist()
    levels = {"min": 0.0, "q10": 0.1, "median": 0.5, "max": 1.0}
    quantiles = {name: float(masks.quantile(q)) for name, q in levels.items()}
    return AnpRecord(
        pruned=pruned,
        pruned_neurons=sum(len(v) for v in pruned.values()),
        neurons=len(masks),
        mask_quantiles=quantiles,
        spec=spec,
    )
