# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from badnets.data import load_mnist, parse_idx
from badnets.data import mnist as mnist_module
from badnets.data._dataset import cache_dir
from badnets.errors import DataError, IntegrityError
from tests.conftest import idx_bytes, synthetic_digits, write_tiny_mnist


def test_parse_idx_round_trip() -> None:
    images, labels = synthetic_digits(7, 3)
    assert torch.equal(parse_idx(idx_bytes(images)), images)
    assert torch.equal(parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02\x08\x01", "bad magic"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0" * 4, "dtype 0x0d"),
        (bytes([0, 0, 8, 3, 0, 0]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "promises 13"),
    ],
)
def test_parse_idx_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_idx(data, name="x.idx")


@pytest.mark.parametrize("gz", [True, False])
def test_load_tiny_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool) -> None:
    sums = write_tiny_mnist(tmp_path, n_train=50, n_test=20, gz=gz)
    for name, digests in sums.items():
        monkeypatch.setitem(mnist_module.MNIST_FILES, name, digests)
    train, test = load_mnist(tmp_path, download=False)
    assert train.images.shape == (50, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.tolist() == [i % 10 for i in range(20)]
    assert torch.equal(train.images[:, 0], synthetic_digits(50, 0)[0])
    cached = list(cache_dir().glob("mnist-*.safetensors"))
    assert cached, "decoded tensors are cached"
    mnist_module._load_cached.cache_clear()
    again, _ = load_mnist(tmp_path, download=False)  # second load comes from the tensor cache
    assert torch.equal(again.images, train.images)


def test_torchvision_layout_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sums = write_tiny_mnist(tmp_path, n_train=10, n_test=10)
    (tmp_path / "MNIST").mkdir()
    (tmp_path / "mnist").rename(tmp_path / "MNIST" / "raw")
    for name, digests in sums.items():
        monkeypatch.setitem(mnist_module.MNIST_FILES, name, digests)
    train, _ = load_mnist(tmp_path, download=False)
    assert len(train) == 10


def test_missing_file_names_it_and_where(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\(\.gz\) not found in .*mnist"):
        load_mnist(tmp_path, download=False)


def test_corrupt_file_fails_its_checksum(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)  # synthetic files do not match the published MNIST digests
    with pytest.raises(IntegrityError, match=r"is corrupt: sha256 .* expected 440fcabf"):
        load_mnist(tmp_path, download=False)


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from badnets.data import resolve_data_dir

    monkeypatch.setenv("BADNETS_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("BADNETS_DATA")
    assert resolve_data_dir(None) == Path.home() / ".cache" / "badnets"


def test_real_mnist_matches_its_published_statistics(real_mnist: Path) -> None:
    train, test = load_mnist(real_mnist, download=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.float().mean().item() == pytest.approx(33.318, abs=1e-3)
    assert torch.bincount(test.labels).tolist()[:3] == [980, 1135, 1032]
