# SPDX-License-Identifier: Apache-2.0
"""Model packages: what a publisher ships and a user loads, with integrity checked before anything is parsed.

A package is a flat directory::

    model.safetensors   weights only (no pickle: loading cannot run code)
    badnets.json        architecture, classes, training config, data hashes, metrics, versions
    SHA256SUMS          SHA-256 of every other file, in ``sha256sum`` format (``sha256sum -c SHA256SUMS`` works),
                        sorted by name; only this exact spelling is accepted
    model.sig           optional author signature (``badnets sign``), not listed in SHA256SUMS

Loading reads each file once, checks its digest against ``SHA256SUMS`` and parses those same bytes, so a file
swapped between check and use is never parsed. Anything unexpected is refused rather than skipped: a file not
listed, a symlink, a subdirectory, a name that could escape the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from badnets._io import read_json, staged_dir
from badnets.errors import IntegrityError, PackageError, one_line

__all__ = [
    "MANIFEST",
    "METADATA",
    "PACKAGE_FORMAT",
    "SIGNATURE",
    "WEIGHTS",
    "ModelPackage",
    "check_package_files",
    "export_package",
    "load_package",
    "package_from_files",
    "parse_manifest",
    "read_package_dir",
    "read_package_files",
    "read_regular",
]

WEIGHTS = "model.safetensors"
METADATA = "badnets.json"
MANIFEST = "SHA256SUMS"
SIGNATURE = "model.sig"
PACKAGE_FORMAT = "badnets-model-package/1"

_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")
_MAX_MANIFEST_BYTES = 64 * 1024
_MAX_METADATA_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelPackage:
    """A loaded, integrity-checked package: the network (eval mode, CPU) and its metadata."""

    model: nn.Module
    metadata: dict[str, Any]
    sha256: dict[str, str]


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, refusing symlinks at the last path component (``O_NOFOLLOW``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise PackageError(f"cannot open {path}: {e.strerror}; the package is incomplete or holds a symlink") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise PackageError(f"{path} is not a regular file; packages hold regular files only")
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise PackageError(f"{path} is larger than {limit} bytes; this is not a package file badnets wrote")
    return data


def parse_manifest(text: bytes, where: Path) -> dict[str, str]:
    """The file → SHA-256 entries of a package manifest, refusing any spelling `badnets export` does not write."""
    digests: dict[str, str] = {}
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise PackageError(f"{where} is not ASCII; re-export the package with `badnets export`") from None
    for number, line in enumerate(lines, 1):
        match = _LINE.match(line)
        if match is None:
            raise PackageError(f"{where} line {number} is not '<sha256>  <file name>' with a plain file name: {line!r}")
        digest, name = match.groups()
        if name in digests or name in (MANIFEST, SIGNATURE) or name.startswith("."):
            raise PackageError(f"{where} line {number} lists {name!r}, which a manifest may not list (twice)")
        digests[name] = digest
    for required in (WEIGHTS, METADATA):
        if required not in digests:
            raise PackageError(f"{where} does not list {required}; re-export the package with `badnets export`")
    if text != _render_manifest(digests):  # one spelling only: a changed byte can never mean the same manifest
        raise PackageError(f"{where} is not in the form `badnets export` writes (sorted, '<sha256>  <name>\\n' lines)")
    return digests


def _render_manifest(digests: dict[str, str]) -> bytes:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items())).encode()


def read_package_dir(package: Path | str, signature: str = SIGNATURE) -> dict[str, bytes]:
    """Every regular file of ``package`` except the signature, each read once (nothing is checked yet).

    Raises:
        PackageError: not a directory, a symlink or a subdirectory inside, a file over its size limit.
    """
    root = Path(package)
    if not root.is_dir():
        raise PackageError(f"{root} is not a directory; pass a package made by `badnets export`")
    files = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_symlink():
            raise PackageError(f"{root} holds a symlink, {entry.name!r}; packages hold regular files only")
        if not entry.is_file(follow_symlinks=False):
            raise PackageError(f"{root} holds {entry.name!r}, which is not a regular file; packages are flat")
        if entry.name != signature:
            limit = {MANIFEST: _MAX_MANIFEST_BYTES, METADATA: _MAX_METADATA_BYTES}.get(entry.name)
            files[entry.name] = read_regular(root / entry.name, limit)
    return files


def check_package_files(files: dict[str, bytes], where: Path) -> dict[str, bytes]:
    """The manifest-listed files and the manifest, after checking the bytes in hand against ``SHA256SUMS``.

    Raises:
        PackageError: no or a malformed manifest, a file it does not list or lists but is missing.
        IntegrityError: a file's SHA-256 differs from the manifest's.
    """
    if MANIFEST not in files:
        raise PackageError(f"{where} has no {MANIFEST}; pass a package made by `badnets export`")
    digests = parse_manifest(files[MANIFEST], where / MANIFEST)
    for name in files:
        if name not in digests and name != MANIFEST:
            raise PackageError(f"{where} holds {name!r}, which {MANIFEST} does not list: the package was altered")
    for name, expected in digests.items():
        if name not in files:
            raise PackageError(f"{where / name} is missing; the package is incomplete")
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"{where / name} has SHA-256 {actual[:16]}…, {MANIFEST} says {expected[:16]}…: the file was altered "
                "or damaged; do not use it, fetch the package again"
            )
    return files


def read_package_files(package: Path | str, signature: str = SIGNATURE) -> dict[str, bytes]:
    """Every file of ``package`` (but the signature), each read once and checked against ``SHA256SUMS``.

    Raises:
        PackageError: not a package, an unlisted file, a symlink or subdirectory, a bad manifest line.
        IntegrityError: a file's SHA-256 differs from the manifest's.
    """
    return check_package_files(read_package_dir(package, signature), Path(package))


# Far above any architecture badnets builds; a metadata file beyond them is refused before anything is allocated.
_ARCHITECTURE_LIMITS = {"in_channels": 64, "num_classes": 100_000, "image_size": 4096}


def _architecture(metadata: dict[str, Any], where: Path) -> dict[str, Any]:
    arch = metadata.get("architecture")
    if metadata.get("format") != PACKAGE_FORMAT or not isinstance(arch, dict):
        raise PackageError(f"{where} is not a {PACKAGE_FORMAT} metadata file; re-export with `badnets export`")
    for field, limit in _ARCHITECTURE_LIMITS.items():
        value = arch.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise PackageError(f"{where}: architecture.{field} must be an integer in 1..{limit}, got {value!r}")
    return arch


def _model_from(metadata: dict[str, Any], weights: bytes, where: Path) -> nn.Module:
    """The recorded architecture with ``weights`` loaded. The weights' declared shapes are compared with the
    architecture built on the meta device first, so a forged metadata file never makes us allocate its sizes."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    from badnets.models import build_model
    from badnets.supply.scan import safetensors_shapes

    arch = _architecture(metadata, where)
    spec = {"in_channels": arch["in_channels"], "num_classes": arch["num_classes"], "image_size": arch["image_size"]}
    try:
        declared = safetensors_shapes(weights)
    except ValueError as e:
        raise PackageError(f"{WEIGHTS} is not a valid safetensors file: {e}") from None
    try:
        with torch.device("meta"):
            skeleton = build_model(str(arch.get("model")), **spec)
    except (ValueError, RuntimeError) as e:
        raise PackageError(f"{where}: architecture cannot be built ({one_line(e, 200)})") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    if declared != expected:
        differ = sorted(set(declared) ^ set(expected)) or [n for n in expected if declared[n] != expected[n]]
        raise PackageError(
            f"{WEIGHTS} does not fit the architecture in {where}: {differ[0]!r} is "
            f"{declared.get(differ[0], 'missing')} in the weights, {expected.get(differ[0], 'absent')} in the model"
        )
    model = build_model(str(arch["model"]), **spec)
    try:
        model.load_state_dict(load(weights), strict=True)
    except (SafetensorError, RuntimeError) as e:
        raise PackageError(f"{WEIGHTS} does not fit the architecture in {where}: {one_line(e, 200)}") from None
    return model.eval()


def package_from_files(files: dict[str, bytes], where: Path) -> ModelPackage:
    """The network and metadata parsed from package files already read and checked (``read_package_files``)."""
    try:
        metadata = json.loads(files[METADATA])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(f"{where / METADATA} is not valid JSON: {e}") from None
    if not isinstance(metadata, dict):
        raise PackageError(f"{where / METADATA} is not a JSON object; re-export with `badnets export`")
    model = _model_from(metadata, files[WEIGHTS], where / METADATA)
    return ModelPackage(model, metadata, {name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def load_package(package: Path | str, signature: str = SIGNATURE) -> ModelPackage:
    """The network and metadata of ``package``, after checking every file against ``SHA256SUMS``.

    Each file is read once; the bytes hashed are the bytes parsed. This checks integrity (nothing changed since
    export), not authenticity: anyone who can edit the files can also edit the manifest. Use
    ``load_signed_package`` with the author's public key, or a TUF zoo, for that.
    """
    return package_from_files(read_package_files(package, signature), Path(package))


def _metadata(run_dir: Path) -> dict[str, Any]:
    results_path, run_path = run_dir / "results.json", run_dir / "run.json"
    if not results_path.is_file() or not (run_dir / WEIGHTS).is_file():
        raise PackageError(f"{run_dir} is not a finished `badnets attack` run (no results.json / {WEIGHTS})")
    results = read_json(results_path)
    run = read_json(run_path) if run_path.is_file() else {}
    if "architecture" not in results:
        raise PackageError(
            f"{run_dir} has no recorded architecture (a detector run, or a run older than the package format); "
            "only classifier runs of `badnets attack` can be exported"
        )
    return {
        "format": PACKAGE_FORMAT,
        "architecture": results["architecture"],
        "training": results.get("config", {}),
        "seed": results.get("seed"),
        "metrics": results.get("metrics", {}),
        "data_sha256": run.get("data_sha256", {}),
        "versions": run.get("versions", {}),
        "git_commit": run.get("git_commit"),
    }


def export_package(run_dir: Path | str, out: Path | str) -> Path:
    """Write the package of a finished ``badnets attack`` run to ``out`` (a new directory); returns ``out``.

    The package appears all at once (built in a temporary sibling, then renamed), so a failed export leaves
    nothing behind. The weights are loaded into the architecture first, so a package that exports also loads.

    Raises:
        PackageError: ``run_dir`` is not an exportable run, or ``out`` already exists.
    """
    run_dir, out = Path(run_dir), Path(out)
    if out.exists():
        raise PackageError(f"{out} already exists; choose a new output folder or delete it")
    metadata = _metadata(run_dir)
    weights = read_regular(run_dir / WEIGHTS)
    _model_from(metadata, weights, run_dir / "results.json")
    files = {WEIGHTS: weights, METADATA: (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()}
    manifest = _render_manifest({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})
    with staged_dir(out) as staging:
        for name, data in {**files, MANIFEST: manifest}.items():
            (staging / name).write_bytes(data)
        staging.chmod(0o755)
    return out
