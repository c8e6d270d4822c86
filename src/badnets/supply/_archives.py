# SPDX-License-Identifier: Apache-2.0
"""Containers a model file may come in: zip (PyTorch, TorchScript, NumPy ``.npz``), tar, gzip / bz2 / xz.

Each member is handed back to the scanner to be identified by its content. The container itself is checked for
what makes two readers see two different files: duplicate member names (Python's ``zipfile`` reads the last,
PyTorch's reader the first), members that overlap or hide bytes between them, local headers that disagree with
the central directory, encryption and other flag bits, damaged CRCs. Sizes and member counts are capped: a cap hit
is "unscannable", never a partial "clean".
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Budget", "Result", "combine", "scan_compressed", "scan_tar", "scan_zip"]

Verdict = Literal["clean", "dangerous", "unscannable"]
_RANK = {"clean": 0, "unscannable": 1, "dangerous": 2}
_ALLOWED_FLAGS = 0x2 | 0x4 | 0x8 | 0x800  # deflate options, data descriptor, UTF-8 names
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_TORCH_STORAGE = re.compile(r"^[^/]+/data/\d+$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Result:
    """What the scan found in some bytes: the format it identified, a verdict, and the reasons."""

    format: str
    verdict: Verdict
    detail: str


def combine(format: str, parts: list[tuple[str, Result]], clean_detail: str) -> Result:
    """A container's result from its members': the worst verdict, with the members that earned it."""
    worst = max((r.verdict for _, r in parts), key=_RANK.__getitem__, default="clean")
    if worst == "clean":
        return Result(format, "clean", clean_detail)
    reasons = [f"{name}: {r.detail}" if name else r.detail for name, r in parts if r.verdict == worst]
    more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
    verdict: Verdict = "dangerous" if worst == "dangerous" else "unscannable"
    return Result(format, verdict, "; ".join(reasons[:3]) + more)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Budget:
    """How many more bytes may be unpacked from one scanned file (all archives and compression layers together)."""

    def __init__(self, limit: int, max_members: int) -> None:
        self.left = limit
        self.limit = limit
        self.max_members = max_members

    def read(self, stream: _Readable, keep: bool = True) -> bytes | None:
        """All of ``stream`` (or only counted, with ``keep=False``); None once the budget is spent."""
        chunks = []
        while chunk := stream.read(min(_CHUNK, self.left + 1)):
            self.left -= len(chunk)
            if self.left < 0:
                return None
            if keep:
                chunks.append(chunk)
        return b"".join(chunks)

    def exceeded(self, format: str) -> Result:
        return Result(format, "unscannable", f"unpacks to more than {self.limit:,} bytes (raise the limit to scan it)")


ScanMember = Callable[[bytes], Result]


def _layout_problem(data: bytes, archive: zipfile.ZipFile) -> str | None:
    """None when members sit one after another from offset 0 to the central directory, each local header
    agreeing with its directory entry; else what is wrong."""
    spans = []
    for info in archive.infolist():
        at = info.header_offset
        header = data[at : at + 30]
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return f"{info.filename}: no local header where the directory points"
        flags, method = struct.unpack("<HH", header[6:10])
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        if data[at + 30 : at + 30 + name_len] != info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437"):
            return f"{info.filename}: the local header names another file"
        if flags != info.flag_bits or method != info.compress_type:
            return f"{info.filename}: the local header's flags or method differ from the directory's"
        end = at + 30 + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x8:
            descriptor = 16 if data[end : end + 4] == b"PK\x07\x08" else 12
            end += descriptor + (8 if info.compress_size >= 0xFFFFFFFF else 0)
        spans.append((at, end, info.filename))
    spans.sort()
    position = 0
    for start, end, name in spans:
        if start < position:
            return f"{name} overlaps the member before it"
        if start > position:
            return f"{start - position} bytes before {name} belong to no member"
        position = end
    if position != archive.start_dir:
        return f"{archive.start_dir - position} bytes between the last member and the directory belong to no member"
    return None


def _zip_format(names: list[str]) -> str:
    if any(n.endswith("/data.pkl") for n in names):
        return "torchscript zip" if any("/code/" in n or n.endswith("/constants.pkl") for n in names) else "torch zip"
    if names and all(n.endswith(".npy") for n in names):
        return "numpy npz"
    return "zip"


def scan_zip(data: bytes, budget: Budget, scan_member: ScanMember) -> Result:
    """Check a zip's structure and scan every member by content (PyTorch's raw tensor storages only counted)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        return Result("zip", "unscannable", f"damaged zip ({e})")
    with archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        kind = _zip_format(names)
        if len(infos) > budget.max_members:
            return Result(kind, "unscannable", f"{len(infos):,} members, more than the limit of {budget.max_members:,}")
        twice = sorted(n for n, count in Counter(names).items() if count > 1)
        if twice:
            return Result(kind, "unscannable", f"two members named {twice[0]!r}: zip readers disagree on which loads")
        for info in infos:
            if info.flag_bits & ~_ALLOWED_FLAGS:
                return Result(
                    kind, "unscannable", f"{info.filename}: encrypted or unknown flag bits {info.flag_bits:#x}"
                )
            if info.compress_type not in _METHODS:
                return Result(kind, "unscannable", f"{info.filename}: compression method {info.compress_type}")
        problem = _layout_problem(data, archive)
        if problem:
            return Result(kind, "unscannable", problem)
        parts: list[tuple[str, Result]] = []
        for info in infos:
            if info.is_dir():
                continue
            raw = kind in ("torch zip", "torchscript zip") and bool(_TORCH_STORAGE.match(info.filename))
            try:
                with archive.open(info) as member:
                    content = budget.read(member, keep=not raw)
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
                return Result(kind, "unscannable", f"{info.filename}: {e}")
            if content is None:
                return budget.exceeded(kind)
            if not raw:
                parts.append((info.filename, scan_member(content)))
        if kind == "torchscript zip":
            parts.append(("", Result(kind, "unscannable", "TorchScript program: torch.jit.load runs its code/")))
        return combine(kind, parts, f"{len(infos)} members, each clean")


def scan_tar(data: bytes, budget: Budget, scan_member: ScanMember) -> Result:
    """Scan every regular member of a tar (PyTorch's legacy tar format is one); links and devices are findings."""
    parts: list[tuple[str, Result]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for count, member in enumerate(archive, 1):
                if count > budget.max_members:
                    return Result("tar", "unscannable", f"more than {budget.max_members:,} members")
                if not member.isfile():
                    if not member.isdir():
                        parts.append((member.name, Result("tar", "unscannable", "a link or device member")))
                    continue
                stream = archive.extractfile(member)
                content = budget.read(stream) if stream is not None else b""
                if content is None:
                    return budget.exceeded("tar")
                parts.append((member.name, scan_member(content)))
    except (tarfile.TarError, OSError, EOFError) as e:
        return Result("tar", "unscannable", f"damaged tar ({e})")
    return combine("tar", parts, f"{len(parts)} members, each clean")


def _decompressor(kind: str, data: bytes) -> gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=io.BytesIO(data))
    return bz2.BZ2File(io.BytesIO(data)) if kind == "bz2" else lzma.LZMAFile(io.BytesIO(data))


def scan_compressed(kind: str, data: bytes, budget: Budget, scan_member: ScanMember) -> Result:
    """Decompress (within the budget) and scan what is inside: ``pickle.load(gzip.open(...))`` runs it."""
    try:
        with _decompressor(kind, data) as stream:
            content = budget.read(stream)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
        return Result(kind, "unscannable", f"damaged {kind} stream ({e})")
    if content is None:
        return budget.exceeded(kind)
    inner = scan_member(content)
    return Result(f"{kind}({inner.format})", inner.verdict, inner.detail)
