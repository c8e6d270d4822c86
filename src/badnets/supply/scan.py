# SPDX-License-Identifier: Apache-2.0
"""Scan model files for pickle code before anyone loads them, with picklescan (nothing is ever unpickled).

A pickle can import and call any function when it is loaded (``torch.load`` without ``weights_only``,
``pickle.load``, ``joblib.load``), so a model file is a program. picklescan disassembles the pickle streams in a
file (plain pickles, PyTorch zip and legacy files, zips, ``.npy``) and lists every global they import; in strict
mode anything outside its safe list (tensors, storages, ``collections.OrderedDict`` …) is a finding.

picklescan reports a file it could not parse as clean. Here such a file is a finding ("unscannable"): a
partial or malformed stream may still run code when loaded, and "could not look" is not "looked and found
nothing". Each pickle is also checked to parse completely with ``pickletools`` (a disassembler, which executes
nothing).
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from badnets.errors import ConfigError

__all__ = ["FileScan", "ScanReport", "scan_file", "scan_path"]

Verdict = Literal["clean", "dangerous", "unscannable", "skipped"]

_PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dat", ".data"}
_ZIP_SUFFIXES = {".zip", ".npz"}
_NUMPY_MAGIC = b"\x93NUMPY"
_7Z_MAGIC = b"7z\xbc\xaf\x27\x1c"


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
        return tuple(f for f in self.files if f.verdict in ("dangerous", "unscannable"))

    @property
    def ok(self) -> bool:
        return not self.findings


def _incomplete_pickle(data: bytes) -> str | None:
    """None when ``data`` begins with one complete pickle stream; otherwise why it does not."""
    try:
        for _ in pickletools.genops(io.BytesIO(data)):
            pass
    except Exception as e:  # genops raises ValueError, KeyError, … on malformed streams
        return f"not a complete pickle ({' '.join(str(e).split())[:120]})"
    return None


def _zip_problem(data: bytes) -> str | None:
    """None when every pickle member of the zip decompresses and parses completely; otherwise the first problem."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                member = archive.read(name)
                if name.endswith((".pkl", ".pickle")) or member[:1] == b"\x80":
                    problem = _incomplete_pickle(member)
                    if problem:
                        return f"{name}: {problem}"
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as e:
        return f"damaged or encrypted zip ({e})"
    return None


def _format(path: Path, data: bytes) -> str:
    if data[:4] == b"PK\x03\x04" or path.suffix in _ZIP_SUFFIXES:
        return "zip"
    if data.startswith(_7Z_MAGIC):
        return "7z"
    if data.startswith(_NUMPY_MAGIC) or path.suffix == ".npy":
        return "numpy"
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix in _PICKLE_SUFFIXES or data[:1] == b"\x80":
        return "pickle"
    return "other"


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises SafetensorError and OSError for bad headers
        return f"malformed safetensors ({' '.join(str(e).split())[:120]})"
    return None


def scan_file(path: Path, *, explicit: bool = True) -> FileScan:
    """Scan one file. ``explicit``: the user named it, so a file of no known model format is scanned as a
    pickle (and is unscannable if it is not one) instead of skipped."""
    from picklescan.scanner import scan_bytes

    data = path.read_bytes()
    kind = _format(path, data)
    if kind == "7z":
        return FileScan(str(path), kind, "unscannable", "7z archive: unpack it and scan the files inside")
    if kind == "safetensors":
        problem = _safetensors_problem(path)
        return FileScan(str(path), kind, "unscannable" if problem else "clean", problem or "tensors only, no code")
    if kind == "other" and not explicit:
        return FileScan(str(path), kind, "skipped", "not a model format")
    problem = _zip_problem(data) if kind == "zip" else None if kind == "numpy" else _incomplete_pickle(data)
    try:
        result = scan_bytes(io.BytesIO(data), str(path), path.suffix or None, strict=True)
    except Exception as e:  # picklescan raises on archives it cannot open
        return FileScan(str(path), kind, "unscannable", f"picklescan could not read it ({e})")
    dangerous = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety.value == "dangerous"})
    if dangerous:
        return FileScan(str(path), kind, "dangerous", "imports " + ", ".join(dangerous))
    if problem or result.scan_err:
        return FileScan(str(path), kind, "unscannable", problem or "picklescan could not parse it")
    imports = len({(g.module, g.name) for g in result.globals})
    return FileScan(str(path), kind, "clean", f"{imports} import(s), all on the safe list")


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """Every file under ``root`` with whether it is a symlink (symlinks are reported, never followed)."""
    for base, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs):
            if (Path(base) / name).is_symlink():
                yield Path(base) / name, True
        dirs[:] = sorted(d for d in dirs if not (Path(base) / d).is_symlink())
        for name in sorted(files):
            yield Path(base) / name, (Path(base) / name).is_symlink()


def scan_path(path: Path | str) -> ScanReport:
    """Scan a file, or every file under a directory (symlinks inside are findings: they are not followed).

    Raises:
        ConfigError: ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{root} does not exist; pass a model file or a directory of them")
    if root.is_file():
        return ScanReport((scan_file(root),))
    scans = [
        FileScan(str(p), "symlink", "unscannable", "symlink inside the directory, not followed")
        if is_link
        else scan_file(p, explicit=False)
        for p, is_link in _walk(root)
    ]
    return ScanReport(tuple(scans))
