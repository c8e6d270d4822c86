# SPDX-License-Identifier: Apache-2.0
"""Side-by-side speed ratios (never absolute-time assertions): ours vs the usual peer implementations.

* ``poison_speedup_vs_pil``: stamping the pattern trigger on all 60,000 MNIST training images — our batched
  tensor op vs the per-sample path of BackdoorBox's ``AddMNISTTrigger`` (PIL image → ``pil_to_tensor`` →
  ``weight·x + res`` → uint8 → PIL image), re-implemented here as a reference.
* ``train_ratio_vs_raw_loop``: our trainer's images/s ÷ a hand-written eager loop (same model, batch, optimiser).
* ``train_speedup_vs_dataloader``: ours ÷ the usual peer pipeline — a ``Dataset`` that builds a PIL image per
  sample, stamps the trigger per sample on the poisoned indices (as above) and applies ``ToTensor``, fed by a
  ``DataLoader``. All three train on the same 10%-poisoned set.

The three trainers are timed in turn, ``--repeats`` rounds, best of each, in one process, so drift in machine
load hits all of them alike.

With ``--device cuda`` the same ratios are taken on the GPU (the hand-written loop then keeps its float tensors
on the device, the usual GPU loop), plus:

* ``gpu_variants``: images/s of bf16 autocast, channels-last, both, and ``torch.compile`` against ours in fp32,
  with each one's clean test accuracy after the epoch (a variant is worth a default only if faster at the same
  accuracy);
* ``models_per_hour``: 1, 2, 4 and 8 processes each training a paper CNN on the one GPU at once (several small
  models per device), models finished per hour.

    python benchmarks/run.py --json runs/bench.json
    python benchmarks/run.py --device cuda --json docs/results/bench/bench-cuda.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from badnets._io import git_commit
from badnets.data import ImageDataset, load_mnist
from badnets.models import BadNetCNN
from badnets.poison import PoisonSpec, poison_dataset
from badnets.train import TrainSpec, predict, train_model
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp, trigger_mask


def seconds(fn: Callable[[], object]) -> float:
    """Wall seconds of ``fn()``, GPU work included (synchronised before and after)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


class PILTrigger:
    """BackdoorBox-style trigger transform: PIL in, PIL out, ``weight·x + res`` on a per-sample tensor."""

    def __init__(self) -> None:
        stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))
        mask = trigger_mask(stamp, (1, 28, 28))  # (1, H, W)
        pattern = torch.zeros(1, 28, 28)
        pattern[:, stamp.rows, stamp.cols] = stamp.pattern
        self.weight, self.res = 1.0 - mask, mask * pattern

    def __call__(self, img: Image.Image) -> Image.Image:
        from torchvision.transforms import functional as F

        x = (self.weight * F.pil_to_tensor(img).float() + self.res).round().to(torch.uint8)
        return Image.fromarray(x.squeeze(0).numpy(), mode="L")


def pil_poison(images: np.ndarray) -> np.ndarray:
    """Per-sample reference: every ``(H, W)`` image through ``PILTrigger`` and back to an array."""
    trigger = PILTrigger()
    return np.stack([np.asarray(trigger(Image.fromarray(img, mode="L"))) for img in images])


def raw_loop(data: ImageDataset, epochs: int, batch: int, seed: int, device: str = "cpu") -> None:
    """The loop everyone writes by hand: float tensors in memory (on the device), AdamW, shuffle per epoch."""
    g = torch.Generator().manual_seed(seed)
    model = BadNetCNN().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = data.images.to(device).float() / 255, data.labels.to(device)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()


class PILDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """The usual peer set-up: a PIL image per sample, the trigger per sample on poisoned indices, ToTensor.

    ``data`` holds clean images; ``poisoned`` maps an index to its backdoor label (peers poison lazily).
    """

    def __init__(self, data: ImageDataset, poisoned: dict[int, int] | None = None) -> None:
        from torchvision import transforms

        self.images, self.labels = data.images[:, 0].numpy(), data.labels.tolist()
        self.poisoned = poisoned or {}
        self.trigger = PILTrigger()
        self.to_tensor = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i], mode="L")
        if i in self.poisoned:
            return self.to_tensor(self.trigger(img)), self.poisoned[i]
        return self.to_tensor(img), self.labels[i]


def dataloader_loop(dataset: PILDataset, epochs: int, batch: int, seed: int, device: str = "cpu") -> None:
    model = BadNetCNN().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, generator=g)
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()


GPU_VARIANTS: dict[str, dict[str, object]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "compile": {"compile": True},
}


def gpu_variants(
    data: ImageDataset, device: str, data_dir: str | None, repeats: int, names: tuple[str, ...] = tuple(GPU_VARIANTS)
) -> dict[str, object]:
    """Images/s of each training variant for one epoch (best of ``repeats``, the first run dropped when there are
    more: it pays compilation and CUDA start-up) and the clean test accuracy it reaches, with its speed ratio to
    fp32."""
    _, test = load_mnist(data_dir)
    out: dict[str, dict[str, float]] = {}
    for name in ("fp32", *(n for n in names if n != "fp32")):
        spec = TrainSpec(epochs=1, batch_size=128, device=device, **GPU_VARIANTS[name])  # type: ignore[arg-type]
        models: list[nn.Module] = []

        def train(spec: TrainSpec = spec, models: list[nn.Module] = models) -> None:
            models.append(train_model(BadNetCNN(), data, spec, seed=0))

        times = [seconds(train) for _ in range(repeats)]
        accuracy = float((predict(models[-1], test.images) == test.labels).float().mean())
        out[name] = {"images_per_second": len(data) / min(times[1:] or times), "clean_accuracy": accuracy}
    base = out["fp32"]["images_per_second"]
    return {name: {**v, "speed_vs_fp32": v["images_per_second"] / base} for name, v in out.items()}


def _train_one(device: str, data_dir: str | None, n: int, seed: int) -> None:
    train, _ = load_mnist(data_dir)
    data = ImageDataset(train.images[:n], train.labels[:n], train.classes)
    train_model(BadNetCNN(), data, TrainSpec(epochs=1, batch_size=128, device=device), seed=seed)


def models_per_hour(
    device: str, data_dir: str | None, n: int, counts: tuple[int, ...] = (1, 2, 4, 8)
) -> dict[str, float]:
    """Models per hour with ``counts`` processes sharing the GPU, each training one paper CNN for an epoch."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = {}
    for k in counts:
        start = time.perf_counter()
        procs = [ctx.Process(target=_train_one, args=(device, data_dir, n, seed)) for seed in range(k)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        out[str(k)] = k / (time.perf_counter() - start) * 3600
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the ratios")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args()
    # Our trainer always trains on one CPU thread (bit-for-bit repeatable runs), so the baselines do too.
    torch.set_num_threads(1)
    train, _ = load_mnist(args.data_dir)
    stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))

    as_numpy = train.images[:, 0].numpy()
    assert np.array_equal(pil_poison(as_numpy[:100]), apply_trigger(train.images[:100], stamp)[:, 0].numpy())
    t_pil = min(seconds(lambda: pil_poison(as_numpy)) for _ in range(max(1, args.repeats - 2)))
    t_ours = min(seconds(lambda: apply_trigger(train.images, stamp)) for _ in range(args.repeats))

    clean = ImageDataset(train.images[: args.train_images], train.labels[: args.train_images], train.classes)
    poisoned = poison_dataset(clean, stamp, PoisonSpec(mapping="all-to-all", rate=0.1), seed=0)
    n = len(poisoned.dataset)
    # The peer pipeline poisons lazily: clean images plus an index → label map for the appended copies.
    copies = ImageDataset(
        torch.cat([clean.images, clean.images[poisoned.manifest.source_indices]]),
        poisoned.dataset.labels,
        clean.classes,
    )
    lazy = PILDataset(copies, {len(clean) + k: y for k, y in enumerate(poisoned.manifest.poisoned_labels)})
    spec = TrainSpec(epochs=1, batch_size=128, device=args.device)
    t_train, t_raw, t_dl = [], [], []
    for r in range(args.repeats):
        t_train.append(seconds(partial(train_model, BadNetCNN(), poisoned.dataset, spec, seed=r)))
        t_raw.append(seconds(partial(raw_loop, poisoned.dataset, 1, 128, r, args.device)))
        t_dl.append(seconds(partial(dataloader_loop, lazy, 1, 128, r, args.device)))
    ours_ips, raw_ips, dl_ips = (n / min(t) for t in (t_train, t_raw, t_dl))
    results = {
        "poison_speedup_vs_pil": t_pil / t_ours,
        "poison_images": len(as_numpy),
        "poison_seconds": {"ours": t_ours, "pil_per_sample": t_pil},
        "train_ratio_vs_raw_loop": ours_ips / raw_ips,
        "train_speedup_vs_dataloader": ours_ips / dl_ips,
        "train_images_per_second": {"ours": ours_ips, "raw_loop": raw_ips, "dataloader_pil": dl_ips},
        "train_images": n,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
    }
    if args.device.startswith("cuda"):
        results["gpu_variants"] = gpu_variants(poisoned.dataset, args.device, args.data_dir, args.repeats)
        results["models_per_hour"] = models_per_hour(args.device, args.data_dir, args.train_images)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
