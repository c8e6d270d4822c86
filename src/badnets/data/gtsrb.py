# SPDX-License-Identifier: Apache-2.0
"""GTSRB, the German Traffic Sign Recognition Benchmark (Stallkamp et al., 2012): the transfer attack's target domain.

BadNets §5.3 retrains a US sign net on Swedish signs grouped into information / mandatory / prohibitory /
warning / other. No Swedish set is reachable, so the European target domain is GTSRB, grouped into the
categories of the German benchmark (GTSDB) that match the Swedish ones: prohibitory, mandatory, warning
("danger") and other. GTSRB has no information signs.

Two layouts are read:

* ``<data dir>/gtsrb/{train,test}.npz`` (arrays ``x`` (N, H, W, 3) uint8 and ``y`` int64, as staged in
  ``../shared/data``);
* torchvision's ``GTSRB`` folder ``<data dir>/gtsrb/GTSRB/…``, downloaded when missing and allowed; its
  variable-size crops are decoded once, resized to ``size × size`` and cached.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from badnets._io import file_sha256
from badnets.data._dataset import ImageDataset, resolve_data_dir
from badnets.data._images import resize_square, tensor_cache
from badnets.errors import ConfigError, DataError

__all__ = ["GTSRB_CATEGORIES", "GTSRB_CATEGORY_OF", "GTSRB_CLASSES", "gtsrb_file_hashes", "load_gtsrb"]

log = logging.getLogger(__name__)

GTSRB_CATEGORIES = ("prohibitory", "mandatory", "warning", "other")

# GTSDB's category of each of the 43 GTSRB classes (Houben et al., IJCNN 2013).
_PROHIBITORY = (0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16)
_MANDATORY = (33, 34, 35, 36, 37, 38, 39, 40)
_WARNING = (11, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)
GTSRB_CATEGORY_OF: tuple[int, ...] = tuple(
    0 if c in _PROHIBITORY else 1 if c in _MANDATORY else 2 if c in _WARNING else 3 for c in range(43)
)
GTSRB_CLASSES = tuple(f"class{c:02d}" for c in range(43))


def _npz_paths(root: Path) -> dict[str, Path] | None:
    folder = root / "gtsrb"
    paths = {split: folder / f"{split}.npz" for split in ("train", "test")}
    return paths if all(p.is_file() for p in paths.values()) else None


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    """``x`` (N, 3, H, W) uint8, ``y`` int64 and, when the file has ``roi`` and ``orig_size``, the sign's ``box``
    scaled from the original crop to the stored image."""
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
            roi, orig = (z["roi"], z["orig_size"]) if {"roi", "orig_size"} <= set(z.files) else (None, None)
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"GTSRB file {path} is unreadable or lacks arrays x/y ({e}); replace it") from e
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8 or y.shape != (x.shape[0],):
        raise DataError(f"GTSRB file {path} holds x {x.shape} {x.dtype}, y {y.shape}; expected (N, H, W, 3) uint8")
    if y.size and not 0 <= int(y.min()) <= int(y.max()) <= 42:
        raise DataError(f"GTSRB file {path} has labels outside 0..42; replace it")
    out = {"x": torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), "y": torch.from_numpy(y.astype(np.int64))}
    if roi is not None and orig is not None and roi.shape == (len(y), 4) and orig.shape == (len(y), 2):
        scale = np.array([x.shape[2], x.shape[1]], dtype=np.float64) / np.maximum(orig, 1)  # (N, 2): sx, sy
        out["box"] = torch.from_numpy(np.rint(roi * np.tile(scale, 2)).astype(np.int64))
    return out


def _torchvision_split(root: Path, split: str, size: int, download: bool) -> dict[str, torch.Tensor]:
    from torchvision.datasets import GTSRB

    try:
        ds = GTSRB(str(root / "gtsrb"), split=split, download=download)
    except Exception as e:  # torchvision raises RuntimeError/URLError/OSError depending on the failure
        raise DataError(
            f"GTSRB is not in {root}/gtsrb (neither train.npz/test.npz nor torchvision's GTSRB folder) and could "
            f"not be fetched ({type(e).__name__}: {e}); set data_dir (or $BADNETS_DATA), or allow the download"
        ) from e
    log.info("decoding %d GTSRB %s images once (cached afterwards)", len(ds), split)
    images = torch.empty(len(ds), 3, size, size, dtype=torch.uint8)
    labels = torch.empty(len(ds), dtype=torch.int64)
    for i in range(len(ds)):
        pil, label = ds[i]
        rgb = torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        images[i], labels[i] = resize_square(rgb, size), label
    return {"x": images, "y": labels}


def gtsrb_file_hashes(data_dir: Path | str | None = None) -> dict[str, str]:
    """SHA-256 of the staged npz files (for manifests); empty for torchvision's folder, which it verifies itself."""
    paths = _npz_paths(resolve_data_dir(data_dir))
    return {f"gtsrb/{p.name}": file_sha256(p) for p in paths.values()} if paths else {}


@functools.lru_cache(maxsize=4)
def _load_cached(root: Path, size: int, grouped: bool, download: bool) -> tuple[ImageDataset, ImageDataset]:
    paths = _npz_paths(root)
    category = torch.tensor(GTSRB_CATEGORY_OF, dtype=torch.int64)
    classes = GTSRB_CATEGORIES if grouped else GTSRB_CLASSES
    splits = []
    for split in ("train", "test"):
        if paths is not None:
            t = _read_npz(paths[split])
            side = t["x"].shape[-1]
            if side != size:
                key = hashlib.sha256(f"{file_sha256(paths[split])}{size}".encode()).hexdigest()
                t["x"] = tensor_cache(f"gtsrb-{split}", key, functools.partial(_resize_all, t["x"], size))["x"]
                if "box" in t:
                    t["box"] = (t["box"].double() * size / side).round().long()
        else:
            build = functools.partial(_torchvision_split, root, split, size, download)
            t = tensor_cache(f"gtsrb-tv-{split}", str(size), build)
        y = category[t["y"]] if grouped else t["y"]
        splits.append(ImageDataset(t["x"], y, classes, boxes=t.get("box")))
    return splits[0], splits[1]


def _resize_all(x: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    return {"x": torch.stack([resize_square(img, size) for img in x]) if len(x) else x.new_empty(0, 3, size, size)}


def load_gtsrb(
    data_dir: Path | str | None = None, *, size: int = 32, grouped: bool = True, download: bool = True
) -> tuple[ImageDataset, ImageDataset]:
    """GTSRB as ``(train, test)`` ``(N, 3, size, size)`` uint8 images (the official train/test split).

    Args:
        data_dir: folder holding ``gtsrb/`` (``--data-dir``); defaults to ``$BADNETS_DATA`` or ``~/.cache/badnets``.
        size: side of the images.
        grouped: label by category (``GTSRB_CATEGORIES``, the transfer attack's classes) instead of the 43 classes.
        download: when no files are present, fetch the official set with torchvision (needs internet).

    Raises:
        ConfigError: a bad size.
        DataError: the files are missing or malformed (naming the file and the fix).
    """
    if not 8 <= size <= 512:
        raise ConfigError(f"GTSRB image size must be in [8, 512], got {size}")
    return _load_cached(resolve_data_dir(data_dir).resolve(), size, grouped, download)
