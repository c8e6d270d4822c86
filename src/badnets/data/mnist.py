# SPDX-License-Identifier: Apache-2.0
"""MNIST from the four original idx files (LeCun, Cortes, Burges), gzipped or not.

Files are looked for in ``<data dir>/mnist/`` and in torchvision's layout ``<data dir>/MNIST/raw/``. Each file's
SHA-256 is checked against the published file (gz) or its decompressed content (raw). When files are missing
and ``download`` is set, torchvision's downloader fetches them into ``<data dir>/MNIST/raw/``. Decoded tensors
are cached as safetensors keyed by the files' digests, so later loads skip parsing.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from badnets._io import file_sha256
from badnets.data._dataset import ImageDataset, resolve_data_dir
from badnets.data._images import tensor_cache
from badnets.errors import DataError, IntegrityError

__all__ = ["MNIST_CLASSES", "MNIST_FILES", "load_mnist", "parse_idx"]

log = logging.getLogger(__name__)

MNIST_CLASSES = tuple(str(d) for d in range(10))

# name -> (sha256 of the .gz, sha256 of the decompressed file)
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train-images-idx3-ubyte": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

_IDX_DTYPES = {0x08: torch.uint8}


def parse_idx(data: bytes, *, name: str = "idx file") -> torch.Tensor:
    """Decode an idx file (the MNIST container format) into a uint8 tensor of its declared shape.

    Raises:
        DataError: on a bad magic number, unsupported dtype or a size that does not match the header.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name} is not an idx file (bad magic number); re-download it")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _IDX_DTYPES:
        raise DataError(f"{name} has idx dtype 0x{dtype_code:02x}; only unsigned bytes (0x08) are supported")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated inside its header; re-download it")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(torch.Size(shape).numel())
    if len(data) != expected:
        raise DataError(f"{name} holds {len(data)} bytes but its header promises {expected}; re-download it")
    flat = torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8)
    return flat.reshape(shape)


def _find(root: Path, name: str) -> Path | None:
    for folder in (root / "mnist", root / "MNIST" / "raw", root):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def _locate(root: Path, download: bool) -> dict[str, Path]:
    found = {name: _find(root, name) for name in MNIST_FILES}
    missing = [n for n, p in found.items() if p is None]
    if missing and download:
        _download(root)
        found = {name: _find(root, name) for name in MNIST_FILES}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        raise DataError(
            f"MNIST file {missing[0]}(.gz) not found in {root}/mnist or {root}/MNIST/raw; "
            "set data_dir (or $BADNETS_DATA) to a folder holding the four MNIST files, or allow the download"
        )
    return {n: p for n, p in found.items() if p is not None}


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    log.info("downloading MNIST into %s with torchvision", root)
    try:
        MNIST(str(root), train=True, download=True)
    except Exception as e:  # torchvision raises RuntimeError/URLError/OSError depending on the failure
        raise DataError(
            f"MNIST is not in {root} and the download failed ({type(e).__name__}); "
            "copy the four MNIST .gz files into that folder or point data_dir at them"
        ) from e


def _verify(path: Path, digest: str, digests: tuple[str, str]) -> None:
    expected = digests[0] if path.suffix == ".gz" else digests[1]
    if digest != expected:
        raise IntegrityError(
            f"MNIST file {path} is corrupt: sha256 {digest[:16]}… expected {expected[:16]}…; replace it"
        )


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    try:
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError) as e:
        raise DataError(f"MNIST file {path} is not valid gzip ({e}); replace it") from e


def mnist_file_hashes(data_dir: Path | str | None = None, *, download: bool = True) -> dict[str, str]:
    """SHA-256 of each MNIST file that a load reads (for run manifests); downloads missing files like a load."""
    root = resolve_data_dir(data_dir)
    return {p.name: file_sha256(p) for p in _locate(root, download=download).values()}


@functools.lru_cache(maxsize=4)
def _load_cached(
    root: Path, download: bool, checksums: tuple[tuple[str, tuple[str, str]], ...]
) -> tuple[ImageDataset, ImageDataset]:
    paths = _locate(root, download)
    digests = {n: file_sha256(p) for n, p in paths.items()}
    expected = dict(checksums)
    for name, path in paths.items():
        _verify(path, digests[name], expected[name])
    key = hashlib.sha256("".join(digests[n] for n in sorted(digests)).encode()).hexdigest()
    tensors = tensor_cache(
        "mnist", key, lambda: {name: parse_idx(_read(path), name=str(path)) for name, path in paths.items()}
    )
    return _split(tensors, "train", paths), _split(tensors, "t10k", paths)


def _split(tensors: dict[str, torch.Tensor], prefix: str, paths: dict[str, Path]) -> ImageDataset:
    images = tensors[f"{prefix}-images-idx3-ubyte"]
    labels = tensors[f"{prefix}-labels-idx1-ubyte"]
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST {prefix} files disagree: images {tuple(images.shape)} vs labels {tuple(labels.shape)} "
            f"({paths[f'{prefix}-images-idx3-ubyte']}); replace them"
        )
    if int(labels.max()) > 9:
        raise DataError(f"MNIST {prefix} labels hold {int(labels.max())}; expected 0-9; replace the label file")
    return ImageDataset(images.unsqueeze(1).contiguous(), labels.to(torch.int64), MNIST_CLASSES)


def load_mnist(
    data_dir: Path | str | None = None,
    *,
    download: bool = True,
    checksums: Mapping[str, tuple[str, str]] = MNIST_FILES,
) -> tuple[ImageDataset, ImageDataset]:
    """Load MNIST as ``(train, test)``: 60,000 and 10,000 ``(N, 1, 28, 28)`` uint8 images.

    Args:
        data_dir: folder holding the files (``--data-dir``); defaults to ``$BADNETS_DATA`` or ``~/.cache/badnets``.
        download: fetch missing files with torchvision (needs internet).
        checksums: file name -> (sha256 of .gz, sha256 of raw); the published MNIST files by default.

    Raises:
        DataError: a file is missing (naming it and where it was looked for) or malformed.
        IntegrityError: a file's SHA-256 does not match the published one.
    """
    return _load_cached(resolve_data_dir(data_dir).resolve(), download, tuple(sorted(checksums.items())))
