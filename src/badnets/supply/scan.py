# SPDX-License-Identifier: Apache-2.0
"""Scan model files for code before anyone loads them, accounting for every byte; nothing is ever unpickled.

A pickle can import and call any function when it is loaded (``torch.load(weights_only=False)``, ``pickle.load``,
``numpy.load(allow_pickle=True)``, ``joblib.load``), so a model file is a program. This scanner identifies each
file's format from its bytes (never its name) and accounts for all of them:

- **pickle** (protocols 0–5, several streams in one file): each stream is followed to its ``STOP`` as the C
  unpickler would run it (``_pickle``), every import is resolved (also through the memo) and checked against a
  safe list (``_safe_globals``: PyTorch's ``weights_only`` list); bytes after the last stream must be another
  complete stream. A stream the unpickler might accept but the scan cannot follow is a finding, never clean.
- **legacy PyTorch** (``_use_new_zipfile_serialization=False``): its five pickles, then the raw tensor data,
  checked against the storages the main pickle declares;
- **zip** (PyTorch, TorchScript, ``.npz``, any), **tar** (PyTorch's legacy tar), **gzip / bz2 / xz**: the
  container is checked (``_archives``) and every member scanned by content;
- **NumPy ``.npy``**: the header is parsed; numeric data must have exactly the declared size, object arrays'
  pickles are scanned as pickles;
- **safetensors**: the header is parsed and the tensors must tile the data exactly;
- **text** (JSON, YAML, Markdown …): data, unless it is itself a protocol-0 pickle or a YAML ``!!python`` tag.

Anything else (7z, RAR, HDF5, unknown binary) is "unscannable". Limits cap the bytes read and unpacked and the
members counted, and a cap hit is "unscannable". In a directory every regular file is scanned; symlinks, FIFOs and
devices are reported and never opened or followed.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from badnets.errors import ConfigError
from badnets.supply._archives import Budget, Result, Verdict, scan_compressed, scan_tar, scan_zip
from badnets.supply._pickle import MAGIC_NUMBER, Global, StreamWalk, walk_stream
from badnets.supply._safe_globals import SAFE_GLOBALS, STORAGE_ELEMENT_SIZE

__all__ = ["FileScan", "ScanLimits", "ScanReport", "safetensors_shapes", "scan_bytes", "scan_file", "scan_path"]

_MAGIC = {
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"Rar!\x1a\x07": "rar",
    b"\x93NUMPY": "numpy",
    b"\x89HDF\r\n\x1a\n": "hdf5",
}
_OPAQUE = {"7z": "7z archive", "rar": "RAR archive", "hdf5": "HDF5 file (Keras Lambda layers can hold code)"}
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
_TEXT_CONTROLS = set(range(32)) - {9, 10, 12, 13} | {127}


@dataclass(frozen=True, kw_only=True)
class ScanLimits:
    """Caps on one scan. ``max_file_bytes``: largest file read; ``max_unpacked_bytes``: bytes unpacked from one
    file's archives and compression layers together; ``max_members``: members of one archive; ``max_depth``:
    archives inside archives."""

    max_file_bytes: int = 8 << 30
    max_unpacked_bytes: int = 8 << 30
    max_members: int = 100_000
    max_depth: int = 4

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_unpacked_bytes", "max_members", "max_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"scan limit {name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class FileScan:
    """One file's outcome: its ``format`` as read from its bytes, the ``verdict``, and why."""

    path: str
    format: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class ScanReport:
    files: tuple[FileScan, ...]

    @property
    def findings(self) -> tuple[FileScan, ...]:
        """Files that must not be loaded: dangerous imports, or content that could not be scanned."""
        return tuple(f for f in self.files if f.verdict != "clean")

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class _Scan:
    """One file's scan state: the safe globals in force, the limits and what is left of the unpack budget."""

    safe: frozenset[str]
    limits: ScanLimits
    budget: Budget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = Budget(self.limits.max_unpacked_bytes, self.limits.max_members)


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROLS.intersection(data[:65536]) and not _TEXT_CONTROLS.intersection(data[-65536:])


def _identify(data: bytes) -> str:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if len(data) >= 512:
        try:
            tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
            return "tar"
        except tarfile.HeaderError:
            pass
    if len(data) > 9 and data[8:9] == b"{" and 2 <= int.from_bytes(data[:8], "little") <= len(data) - 8:
        return "safetensors"
    return "text" if _is_text(data) else "pickle"


def _legacy_storages(data: bytes, position: int, walks: list[StreamWalk]) -> tuple[int, str]:
    """Account for the raw tensor data of a legacy torch file: for each storage key, an 8-byte element count
    and that many elements. Returns the offset after it, and a problem ("" when every byte fits)."""
    declared = {}
    for pid in walks[3].persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], Global):
            declared[pid[2]] = (STORAGE_ELEMENT_SIZE.get(pid[1].name), pid[4])
    keys = walks[4].value
    if not isinstance(keys, list):
        return position, "the storage key list of a legacy torch file is not a plain list"
    for key in keys:
        size, numel = declared.get(key, (None, None))
        header = data[position : position + 8]
        if size is None or not isinstance(numel, int) or len(header) < 8:
            return position, f"raw data for storage {key!r} that the pickle does not declare"
        if int.from_bytes(header, "little") != numel or position + 8 + numel * size > len(data):
            return position, f"raw data for storage {key!r} does not match its declared size"
        position += 8 + numel * size
    return position, ""


def _scan_pickles(data: bytes, start: int, scan: _Scan, format: str = "pickle") -> Result:
    """Every pickle stream from ``start`` to the end of ``data`` (and a legacy torch file's raw tensor data)."""
    walks: list[StreamWalk] = []
    position, problem = start, ""
    while position < len(data) and not problem:
        walk = walk_stream(data, position)
        walks.append(walk)
        if walk.outcome != "complete":
            where = "" if len(walks) == 1 else f"after {len(walks) - 1} complete stream(s): "
            problem = f"{where}not a complete pickle ({walk.problem})"
            break
        position = walk.end
        if len(walks) == 5 and walks[0].value == MAGIC_NUMBER:
            format = "legacy torch"
            position, problem = _legacy_storages(data, position, walks)
    imports = [i for w in walks for i in w.imports]
    unsafe = sorted({i.qualified for i in imports if i.qualified not in scan.safe})
    if unsafe:
        return Result(format, "dangerous", "imports " + ", ".join(unsafe) + " (not on the safe list)")
    if problem or not walks:
        return Result(format, "unscannable", problem or "no pickle stream")
    distinct = len({i.qualified for i in imports})
    return Result(format, "clean", f"{len(walks)} stream(s), {distinct} import(s), all on the safe list")


def _scan_text(data: bytes, scan: _Scan) -> Result:
    """Text is data, unless the unpickler could run it: a protocol-0 pickle is text too."""
    first = walk_stream(data, 0)
    if (
        first.outcome == "complete"
        or first.outcome == "unfollowable"
        or any(i.qualified not in scan.safe for i in first.imports)
    ):
        return _scan_pickles(data, 0, scan, "pickle (text)")
    if b"!!python/" in data:
        return Result("yaml", "dangerous", "a YAML !!python tag (runs code under yaml.load with the full Loader)")
    return Result("text", "clean", "text data (the unpickler rejects it before any import)")


def _scan_numpy(data: bytes, scan: _Scan) -> Result:
    import numpy as np
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(stream, max_header_size=100_000)
    except (ValueError, TypeError, SyntaxError, OSError) as e:
        return Result("numpy", "unscannable", f"malformed .npy header ({' '.join(str(e).split())[:120]})")
    if dtype.hasobject:
        return _scan_pickles(data, stream.tell(), scan, "numpy (object array)")
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - stream.tell()
    if actual != expected:
        return Result(
            "numpy", "unscannable", f"{actual:,} data bytes where shape {shape} of {dtype} needs {expected:,}"
        )
    return Result("numpy", "clean", f"{np.dtype(dtype).name} array of shape {shape}, no pickle")


def safetensors_shapes(data: bytes) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a safetensors file declares, after checking that its header is well formed and that
    its tensors tile the data exactly (no gaps, overlaps or extra bytes). Reads nothing but the bytes given.

    Raises:
        ValueError: what is wrong with the header or the layout.
    """
    size = int.from_bytes(data[:8], "little")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a tensor name appears twice")
        return dict(pairs)

    if len(data) < 8 or size > len(data) - 8:
        raise ValueError("the header is longer than the file")
    try:
        header = json.loads(data[8 : 8 + size], object_pairs_hook=no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    spans, shapes = [], {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError("__metadata__ is not a string map")
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in _SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name!r} has no known dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r} has a bad shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
            raise ValueError(f"tensor {name!r} has bad data_offsets")
        if offsets[1] - offsets[0] != math.prod(shape) * _SAFETENSORS_DTYPES[entry["dtype"]]:
            raise ValueError(f"tensor {name!r}: data_offsets do not fit its shape and dtype")
        spans.append((offsets[0], offsets[1]))
        shapes[name] = tuple(shape)
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError("tensors overlap or leave gaps in the data")
        position = end
    if position != len(data) - 8 - size:
        raise ValueError(f"{len(data) - 8 - size - position} data bytes belong to no tensor")
    return shapes


def _scan_bytes(data: bytes, scan: _Scan, depth: int) -> Result:
    kind = _identify(data)
    if not data:
        return Result("empty", "unscannable", "empty file: not a model")
    if kind in _OPAQUE:
        return Result(kind, "unscannable", f"{_OPAQUE[kind]}: not scanned; unpack or convert it and scan again")
    if kind in ("zip", "tar", "gzip", "bz2", "xz"):
        if depth >= scan.limits.max_depth:
            return Result(kind, "unscannable", f"nested more than {scan.limits.max_depth} containers deep")

        def member(content: bytes) -> Result:
            return _scan_bytes(content, scan, depth + 1)

        if kind == "zip":
            return scan_zip(data, scan.budget, member)
        if kind == "tar":
            return scan_tar(data, scan.budget, member)
        return scan_compressed(kind, data, scan.budget, member)
    if kind == "numpy":
        return _scan_numpy(data, scan)
    if kind == "safetensors":
        try:
            return Result(kind, "clean", f"{len(safetensors_shapes(data))} tensors only, no code")
        except ValueError as e:
            return Result(kind, "unscannable", str(e))
    if kind == "text":
        return _scan_text(data, scan)
    if data[:1] == b"\x80" or walk_stream(data, 0).end > 0:
        return _scan_pickles(data, 0, scan)
    return Result("unknown", "unscannable", f"unknown binary format (starts {data[:8].hex()})")


def scan_bytes(
    data: bytes, name: str = "<bytes>", *, allow: Iterable[str] = (), limits: ScanLimits | None = None
) -> FileScan:
    """Scan ``data`` (a file's bytes). ``allow``: extra ``module.name`` globals reviewed as safe."""
    result = _scan_bytes(data, _Scan(SAFE_GLOBALS | frozenset(allow), limits or ScanLimits()), 0)
    return FileScan(name, result.format, result.verdict, result.detail)


def _read_regular(path: Path, limit: int) -> bytes | str:
    """The bytes of a regular file, or why it was not read (never opening a FIFO, a device or a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        return f"cannot open it ({e.strerror}): a symlink is never followed"
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file (FIFO, device or socket): not opened"
        if info.st_size > limit:
            return f"{info.st_size:,} bytes, more than the limit of {limit:,}"
        data = f.read(limit + 1)
    return data if len(data) <= limit else f"more than the limit of {limit:,} bytes"


def scan_file(path: Path | str, *, allow: Iterable[str] = (), limits: ScanLimits | None = None) -> FileScan:
    """Scan one file by its content (its name plays no part)."""
    limits = limits or ScanLimits()
    path = Path(path)
    if path.is_symlink():
        return FileScan(str(path), "symlink", "unscannable", "symlink: never followed; scan its target itself")
    data = _read_regular(path, limits.max_file_bytes)
    if isinstance(data, str):
        return FileScan(str(path), "special" if "regular" in data else "unread", "unscannable", data)
    return scan_bytes(data, str(path), allow=allow, limits=limits)


def _walk(root: Path) -> Iterator[Path]:
    """Every entry under ``root`` except directories that are walked into (symlinked ones are entries)."""
    for base, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs):
            if (Path(base) / name).is_symlink():
                yield Path(base) / name
        dirs[:] = sorted(d for d in dirs if not (Path(base) / d).is_symlink())
        yield from (Path(base) / name for name in sorted(files))


def scan_path(path: Path | str, *, allow: Iterable[str] = (), limits: ScanLimits | None = None) -> ScanReport:
    """Scan a file, or every entry under a directory: regular files by content; symlinks, FIFOs and devices
    are findings, never opened or followed.

    Raises:
        ConfigError: ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise ConfigError(f"{root} does not exist; pass a model file or a directory of them")
    if not root.is_dir() or root.is_symlink():
        return ScanReport((scan_file(root, allow=allow, limits=limits),))
    return ScanReport(tuple(scan_file(p, allow=allow, limits=limits) for p in _walk(root)))
