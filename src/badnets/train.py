# SPDX-License-Identifier: Apache-2.0
"""One fast training loop over in-memory tensors, with per-epoch checkpoints and exact resume.

The whole training set is converted to float once and kept on the device; each step indexes a batch
out of it, so there is no Dataset, DataLoader, PIL or per-sample Python. Randomness (weight init and the
per-epoch shuffle) comes from generators seeded from ``seed`` alone, and the shuffle for epoch ``e`` depends
only on ``(seed, e)``, so a run resumed from the checkpoint of epoch ``e`` continues exactly as an
uninterrupted run would. On the CPU, training runs on one intra-op thread (``one_cpu_thread``): PyTorch splits
a convolution's gradient reductions by thread, so the thread count changes the last bits of every step and, after
a few epochs, the weights; a study's worker and a ``badnets attack`` in a 16-core shell must train the same model.

Recipe (not in the paper, which gives only the architecture): AdamW with a one-cycle learning-rate schedule,
cross-entropy on logits with label smoothing 0.1 (measured here: it lowers the paper CNN's clean MNIST error
from ≈0.60% to ≈0.55% at 10 epochs, the paper reports 0.50%).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from badnets._io import atomic_path
from badnets._threads import one_cpu_thread
from badnets.data import ImageDataset
from badnets.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "TrainSpec",
    "check_device",
    "flip_and_shift",
    "init_weights",
    "log_probabilities",
    "one_cpu_thread",
    "predict",
    "resolve_device",
    "train_model",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, int, float], None]  # (epoch, step, steps_per_epoch, loss)
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """How a model is trained.

    Attributes:
        epochs: passes over the (poisoned) training set.
        batch_size: images per optimiser step.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: decoupled weight decay (AdamW).
        label_smoothing: cross-entropy label smoothing in [0, 1).
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        augment: random horizontal flips and shifts of up to 1/8 of the side (for small photo sets; the
            paper's MNIST and sign recipes train without augmentation).
        flips: with ``augment``, whether it flips too; off for digits and signs, whose mirror image is another
            class or none (shifts only).
        precision: ``fp32``, or ``bf16``: forward and loss under bfloat16 autocast (weights and optimiser stay
            fp32). Off by default: it changes the numbers, and it is only worth it where measured faster.
        channels_last: keep weights and batches in NHWC memory order (faster convolutions on recent GPUs).
        compile: train through ``torch.compile`` (Inductor; the first steps pay the compilation).
        sam_rho: radius of adaptive sharpness-aware minimisation (ASAM, Kwon et al. 2021: the ascent step is
            scaled by each weight's magnitude), 0 for plain steps. Each step then costs two passes: the gradient
            is taken at ``w + ρ·w²⊙g / ‖|w|⊙g‖`` and applied at ``w``. FT-SAM (Zhu et al., ICCV 2023) fine-tunes
            a backdoored model so, with a large ρ, to shrink the large-norm neurons a backdoor lives in.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    device: str = "auto"
    augment: bool = False
    flips: bool = True
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    sam_rho: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not (self.sam_rho >= 0 and math.isfinite(self.sam_rho)):
            raise ConfigError(f"train.sam_rho must be >= 0 (0: plain steps), got {self.sam_rho}")


def check_device(name: str) -> None:
    """``name`` says auto, cpu, cuda or cuda:N (whether CUDA is there is ``resolve_device``'s to check, on the
    machine that runs)."""
    if not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an explicit CUDA device must exist."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for CUDA but none is available; use auto or cpu")
    return torch.device(name)


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv/Linear init, drawn from ``generator`` instead of the global RNG."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def flip_and_shift(images: torch.Tensor, generator: torch.Generator, *, flips: bool = True) -> torch.Tensor:
    """Each image of ``(N, C, H, W)`` flipped left-right with probability 1/2 (unless ``flips`` is off) and
    shifted by up to 1/8 of its side (edges replicated): one gather for the whole batch, no per-image Python."""
    n, _, h, w = images.shape
    pad_h, pad_w = max(1, h // 8), max(1, w // 8)
    # drawn either way, so the shifts of a seed are the same with and without flips
    flip = ((torch.rand(n, generator=generator) < 0.5) & flips).to(images.device)
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
    dy = torch.randint(0, 2 * pad_h + 1, (n, 1), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad_w + 1, (n, 1), generator=generator).to(images.device)
    rows = (dy + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def _as_float(images: torch.Tensor, device: torch.device, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 images → float in [0, 1] on ``device`` (a batch at a time: the data stay uint8, a quarter of float)."""
    batch = images.to(device, non_blocking=True).float().div_(255.0)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def _save_checkpoint(path: Path, state: dict[str, object]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sched: object) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])  # type: ignore[attr-defined]
    return int(state["epoch"])


Penalty = Callable[[torch.Tensor], torch.Tensor]  # batch → a term added to the loss, after the model's forward


def _loss(
    forward: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: nn.Module,
    batch: torch.Tensor,
    labels: torch.Tensor,
    spec: TrainSpec,
    penalty: Penalty | None,
) -> torch.Tensor:
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=spec.precision == "bf16"):
        loss: torch.Tensor = loss_fn(forward(batch), labels)
        return loss if penalty is None else loss + penalty(batch)


def _sharpness_aware_gradient(model: nn.Module, rho: float, loss: Callable[[], torch.Tensor]) -> None:
    """Replace each trainable weight's gradient ``g`` by the gradient of ``loss()`` at ``w + e``,
    ``e = ρ·w²⊙g / ‖|w|⊙g‖`` (ASAM's ascent step with the operator ``|w|``), then put the weights back at ``w``."""
    pairs = [(p, p.grad) for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.abs() * g) for p, g in pairs]))
        at = [p.detach().clone() for p, _ in pairs]  # put back by copy: (w + e) − e is not w in floating point
        for p, g in pairs:
            p.add_(rho * p.square() * g / (norm + 1e-12))
            p.grad = None
    loss().backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        for (p, _), w in zip(pairs, at, strict=True):
            p.copy_(w)


def _epochs(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    spec: TrainSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    seed: int,
    start: int,
    checkpoint: Path | None,
    progress: ProgressFn | None,
    penalty: Penalty | None,
) -> None:
    n = len(y)
    steps = math.ceil(n / spec.batch_size)
    for epoch in range(start, spec.epochs):
        torch.manual_seed(seed * 1_000_003 + epoch + 1_000_000)
        model.train()
        order = _epoch_order(n, seed, epoch).to(x.device)
        augment_rng = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 500_000)
        for step in range(steps):
            idx = order[step * spec.batch_size : (step + 1) * spec.batch_size]
            batch = _as_float(x[idx], x.device, channels_last=spec.channels_last)
            if spec.augment:
                batch = flip_and_shift(batch, augment_rng, flips=spec.flips)
            labels = y[idx]

            def step_loss(batch: torch.Tensor = batch, labels: torch.Tensor = labels) -> torch.Tensor:
                return _loss(forward, loss_fn, batch, labels, spec, penalty)

            loss = step_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if spec.sam_rho > 0:
                _sharpness_aware_gradient(model, spec.sam_rho, step_loss)
            optimizer.step()
            sched.step()
            if progress is not None and ((step + 1) % 25 == 0 or step + 1 == steps):
                progress(epoch, step + 1, steps, loss.item())  # sparse: .item() syncs a GPU
        if checkpoint is not None:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            _save_checkpoint(checkpoint, {**state, "scheduler": sched.state_dict(), "epoch": epoch + 1})


def train_model(
    model: nn.Module,
    data: ImageDataset,
    spec: TrainSpec,
    *,
    seed: int,
    checkpoint: Path | None = None,
    progress: ProgressFn | None = None,
    layers: Sequence[str] | None = None,
    init: bool = True,
    penalty: Penalty | None = None,
) -> nn.Module:
    """Initialise ``model`` from ``seed`` and train it on ``data``; resume from ``checkpoint`` if it exists.

    Args:
        model: any module taking ``(N, C, H, W)`` float in [0, 1].
        data: uint8 images and labels (e.g. a poisoned training set).
        spec: epochs, batch size, learning rate, device.
        seed: fixes initial weights and every epoch's shuffle.
        checkpoint: file updated after every epoch; a completed epoch is never recomputed.
        progress: called every 25 steps and at each epoch's end with ``(epoch, step, steps_per_epoch, loss)``.
        layers: names of the submodules to initialise and train (e.g. ``("fc1", "fc2")`` for transfer learning);
            every other weight keeps its value and is frozen. ``None``: the whole model, from scratch.
        init: ``False`` fine-tunes: the trained layers start from their current weights.
        penalty: a term added to every step's loss, called with the step's (augmented) batch right after the
            model's forward pass on it (e.g. a distillation loss on features the model's hooks captured).

    Returns:
        The trained model (the same object), in eval mode, on the training device.
    """
    device = resolve_device(spec.device)
    generator = torch.Generator().manual_seed(seed)
    trained = [model] if layers is None else [model.get_submodule(name) for name in layers]
    for part in trained if init else ():
        init_weights(part, generator)
    params = [p for part in trained for p in part.parameters()]
    if layers is not None:
        keep = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
    model.to(device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    # the training set lives on the device as uint8; each batch is normalised on the fly
    x, y = data.images.to(device), data.labels.to(device)
    forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if spec.compile else model
    n = len(data)
    steps = math.ceil(n / spec.batch_size)
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=spec.epochs * steps)
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        start = _load_checkpoint(checkpoint, model, optimizer, sched)
        log.info("resumed from %s after epoch %d", checkpoint, start)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
    # Dropout draws from the global RNG: seed it per epoch inside a forked RNG, so the same seed gives the same
    # model whatever ran before in the process, and a resumed run draws what an uninterrupted one would have.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), one_cpu_thread():
        _epochs(model, forward, spec, x, y, optimizer, sched, loss_fn, seed, start, checkpoint, progress, penalty)
    model.eval()
    return model


@torch.no_grad()
def _per_batch(
    model: nn.Module, images: torch.Tensor, batch_size: int, head: Callable[[torch.Tensor], torch.Tensor]
) -> list[torch.Tensor]:
    """``head`` of the model's outputs on ``(N, C, H, W)`` uint8 images, a batch at a time, each on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return [head(model(_as_float(images[i : i + batch_size], device))).cpu() for i in range(0, len(images), batch_size)]


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
    """Predicted class for each ``(N, C, H, W)`` uint8 image → ``(N,)`` int64 on the CPU."""
    out = _per_batch(model, images, batch_size, lambda z: z.argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def log_probabilities(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
    """Class log-probabilities for each ``(N, C, H, W)`` uint8 image → ``(N, K)`` float on the CPU."""
    return torch.cat(_per_batch(model, images, batch_size, lambda z: F.log_softmax(z.float(), 1)))
