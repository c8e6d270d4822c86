# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: tiny MNIST-format files generated per test, and the real data when staged."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from badnets.data import mnist as mnist_module

REAL_DATA = Path(os.environ["BADNETS_DATA"]) if os.environ.get("BADNETS_DATA") else None


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """Encode a uint8 tensor in the idx format (big-endian dims after a 0x00 0x00 0x08 ndim magic)."""
    header = bytes([0, 0, 0x08, tensor.ndim]) + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.contiguous().numpy().tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake digits: class c is a bright bar at row 2 + 2c plus noise, (n, 28, 28) uint8."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    for c in range(10):
        images[labels == c, 2 + 2 * c : 4 + 2 * c, 4:20] = 220
    return images, labels.to(torch.uint8)


def write_tiny_mnist(
    folder: Path, n_train: int = 400, n_test: int = 200, gz: bool = True
) -> dict[str, tuple[str, str]]:
    """Write the four MNIST files (tiny, synthetic) into ``folder/mnist`` and return their checksums."""
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(n_train, 0)
    test_x, test_y = synthetic_digits(n_test, 1)
    files = {
        "train-images-idx3-ubyte": train_x,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    sums = {}
    for name, tensor in files.items():
        raw = idx_bytes(tensor)
        data = gzip.compress(raw, mtime=0) if gz else raw
        (folder / "mnist" / (name + (".gz" if gz else ""))).write_bytes(data)
        sums[name] = (
            hashlib.sha256(gzip.compress(raw, mtime=0)).hexdigest(),
            hashlib.sha256(raw).hexdigest(),
        )
    return sums


def kill_9_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 180) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session caches decoded tensors in its own temp folder, never in the user's home."""
    if "BADNETS_CACHE" not in os.environ:
        monkeypatch.setenv("BADNETS_CACHE", str(tmp_path_factory.getbasetemp() / "tensor-cache"))


@pytest.fixture
def tiny_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with tiny synthetic MNIST files whose checksums the loader is told to expect."""
    sums = write_tiny_mnist(tmp_path / "data")
    for name, digests in sums.items():
        monkeypatch.setitem(mnist_module.MNIST_FILES, name, digests)
    monkeypatch.setenv("BADNETS_DATA", str(tmp_path / "data"))
    mnist_module._load_cached.cache_clear()
    return tmp_path / "data"


@pytest.fixture
def real_mnist() -> Path:
    if REAL_DATA is None or not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real MNIST not staged: set BADNETS_DATA to a folder with mnist/*.gz (e.g. ../shared/data)")
    return REAL_DATA
