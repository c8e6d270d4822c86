# SPDX-License-Identifier: Apache-2.0
"""Atomic file output and run manifests.

Every file is written to a temporary sibling and renamed into place, so a killed run never leaves a
half-written file that a later run could mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from badnets.errors import ConfigError

__all__ = [
    "atomic_path",
    "ensure_writable_dir",
    "file_sha256",
    "git_commit",
    "read_json",
    "run_manifest",
    "save_weights",
    "staged_dir",
    "write_bytes",
    "write_json",
    "write_text",
]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_weights(model: Any, path: Path) -> None:
    """A module's state dict as safetensors at ``path``, written atomically (CPU, contiguous tensors)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))


@contextlib.contextmanager
def staged_dir(destination: Path) -> Iterator[Path]:
    """A temporary sibling directory of ``destination``, renamed onto it only if the block succeeds; removed
    otherwise, so a failed build leaves nothing behind."""
    import shutil

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
        os.rename(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _write(path, data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _write(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    _write(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Raises:
        ConfigError: when the directory cannot be created or written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe: IO[bytes]
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe.") as probe:
            probe.write(b"")
    except OSError as e:
        raise ConfigError(f"{path} is not writable ({e.strerror}); choose a directory you can write") from e
    return path


def _git(*args: str) -> str | None:
    """stdout of a git command run in the badnets source tree, or None when git or the checkout is missing."""
    src = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """The git commit of the badnets source tree (``-dirty`` when tracked files outside ``docs/`` changed), or
    None. ``docs/`` holds documentation and committed results (e.g. a study's archived records, updated while
    it runs): neither changes what a run computes. A copy of the tree without its ``.git`` (one shipped to a
    remote GPU machine) names the commit it was copied from in ``BADNETS_GIT_COMMIT``, recorded as given."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return os.environ.get("BADNETS_GIT_COMMIT") or None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)docs")
    return head + ("-dirty" if changed else "")


def run_manifest(config: Mapping[str, Any], seed: int | None, data_hashes: Mapping[str, str]) -> dict[str, Any]:
    """Everything needed to repeat a run: config, seed, versions, data hashes, git commit, argv."""
    import numpy
    import torch

    import badnets

    return {
        "config": dict(config),
        "seed": seed,
        "data_sha256": dict(data_hashes),
        "versions": {
            "badnets": badnets.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
        },
        "git_commit": git_commit(),
        "argv": list(sys.argv),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        # the instruction set PyTorch chose its CPU kernels for: AVX512 and AVX2 round differently, so one seed
        # gives the same weights only on machines that report the same capability (ATEN_CPU_CAPABILITY sets it)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
