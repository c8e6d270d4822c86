# SPDX-License-Identifier: Apache-2.0
"""Side-by-side speed ratios (never absolute-time assertions): ours vs the usual peer implementations.

* ``poison_speedup_vs_pil``: stamping the pattern trigger on N MNIST images — our batched tensor op vs a
  per-sample PIL round trip (how BackdoorBox's ``AddMNISTTrigger`` works).
* ``train_ratio_vs_raw_loop``: our trainer's images/s ÷ a hand-written eager loop (same model, batch, optimiser).
* ``train_speedup_vs_dataloader``: ours ÷ a torchvision ``Dataset`` + ``DataLoader`` + PIL ``ToTensor`` pipeline.

Each pair is timed alternately, best of ``--repeats``, in one process, so machine noise hits both sides.

    python benchmarks/run.py --json runs/bench.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from badnets.data import ImageDataset, load_mnist
from badnets.models import BadNetCNN
from badnets.train import TrainSpec, train_model
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp

PATTERN = ((24, 26), (25, 25), (26, 24), (26, 26))


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def pil_poison(images: np.ndarray) -> np.ndarray:
    """Per-sample PIL: decode to an Image, paint the trigger pixels, back to an array (BackdoorBox style)."""
    out = np.empty_like(images)
    for i, img in enumerate(images):
        pil = Image.fromarray(img)
        for r, c in PATTERN:
            pil.putpixel((c, r), 255)
        out[i] = np.asarray(pil)
    return out


def raw_loop(data: ImageDataset, epochs: int, batch: int, seed: int) -> None:
    """The loop everyone writes by hand: float tensors in memory, Adam, shuffle per epoch."""
    g = torch.Generator().manual_seed(seed)
    model = BadNetCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = data.images.float() / 255, data.labels
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


class PILDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """The usual peer set-up: a Dataset that builds a PIL image per sample and applies ToTensor."""

    def __init__(self, data: ImageDataset) -> None:
        from torchvision import transforms

        self.images, self.labels = data.images[:, 0].numpy(), data.labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def dataloader_loop(data: ImageDataset, epochs: int, batch: int, seed: int) -> None:
    model = BadNetCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(
        PILDataset(data), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the ratios")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load_mnist(args.data_dir)
    stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))

    as_numpy = train.images[:, 0].numpy()
    assert np.array_equal(pil_poison(as_numpy[:100]), apply_trigger(train.images[:100], stamp)[:, 0].numpy())
    t_pil = best_of(lambda: pil_poison(as_numpy), max(1, args.repeats - 2))
    t_ours = best_of(lambda: apply_trigger(train.images, stamp), args.repeats)

    n, batch, epochs = args.train_images, 128, 1
    subset = ImageDataset(train.images[:n], train.labels[:n], train.classes)
    spec = TrainSpec(epochs=epochs, batch_size=batch, lr=3e-3, device="cpu")
    t_train, t_raw, t_dl = [], [], []
    for r in range(args.repeats):  # alternate so drift in machine load hits all three alike
        t_train.append(best_of(lambda r=r: train_model(BadNetCNN(), subset, spec, seed=r), 1))
        t_raw.append(best_of(lambda r=r: raw_loop(subset, epochs, batch, r), 1))
        t_dl.append(best_of(lambda r=r: dataloader_loop(subset, epochs, batch, r), 1))
    ours_ips, raw_ips, dl_ips = (n * epochs / min(t) for t in (t_train, t_raw, t_dl))
    results = {
        "poison_speedup_vs_pil": t_pil / t_ours,
        "poison_images": len(as_numpy),
        "poison_seconds": {"ours": t_ours, "pil_per_sample": t_pil},
        "train_ratio_vs_raw_loop": ours_ips / raw_ips,
        "train_speedup_vs_dataloader": ours_ips / dl_ips,
        "train_images_per_second": {"ours": ours_ips, "raw_loop": raw_ips, "dataloader_pil": dl_ips},
        "threads": args.threads,
        "torch": torch.__version__,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
