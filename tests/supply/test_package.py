# SPDX-License-Identifier: Apache-2.0
"""Model packages: export → load round trip, and everything a tampered or malformed package must be refused for."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from badnets.errors import BadnetsError, IntegrityError, PackageError
from badnets.supply import export_package, load_package
from badnets.supply.package import MANIFEST, METADATA, WEIGHTS
from tests.supply.conftest import write_run_dir


def rewrite_manifest(package: Path, lines: list[str] | None = None) -> Path:
    """Recompute SHA256SUMS for the files present (an attacker who can edit files can edit this too); returns the
    manifest."""
    if lines is None:
        names = sorted(p.name for p in package.iterdir() if p.name not in (MANIFEST, "model.sig"))
        lines = [f"{hashlib.sha256((package / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (package / MANIFEST).write_text("".join(f"{line}\n" for line in lines))
    return package / MANIFEST


def replace_with_link(path: Path, target: str) -> Path:
    path.unlink()
    path.symlink_to(target)
    return path


def test_export_then_load_gives_the_same_network(tmp_path: Path, package: Path) -> None:
    assert sorted(p.name for p in package.iterdir()) == [MANIFEST, METADATA, WEIGHTS]
    loaded = load_package(package)
    saved = load_file(str(tmp_path / "run" / WEIGHTS))
    assert all(torch.equal(v, saved[k]) for k, v in loaded.model.state_dict().items())
    assert loaded.metadata["architecture"]["model"] == "badnet-cnn"
    assert loaded.metadata["metrics"]["clean_accuracy"] == 0.99
    assert not loaded.model.training


def test_manifest_is_sha256sum_format(package: Path) -> None:
    result = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=package, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_export_is_deterministic(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path / "run")
    a, b = export_package(run, tmp_path / "a"), export_package(run, tmp_path / "b")
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in (MANIFEST, METADATA, WEIGHTS))


def test_export_refuses_bad_runs_and_leaves_nothing(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path / "run")
    export_package(run, tmp_path / "pkg")
    with pytest.raises(PackageError, match="already exists"):
        export_package(run, tmp_path / "pkg")
    with pytest.raises(PackageError, match="not a finished"):
        export_package(tmp_path / "nothing", tmp_path / "pkg2")
    (run / "results.json").write_text('{"config": {}, "metrics": {}}')  # a detector run records no architecture
    with pytest.raises(PackageError, match="no recorded architecture"):
        export_package(run, tmp_path / "pkg3")
    other = write_run_dir(tmp_path / "other", model="sign-cnn")  # weights of another network
    (other / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes())
    with pytest.raises(PackageError, match="does not fit"):
        export_package(other, tmp_path / "pkg4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "pkg", "run"]  # no partial or staging dirs


@pytest.mark.parametrize(
    ("tamper", "error", "match"),
    [
        (lambda p: (p / "notes.txt").write_text("hi"), PackageError, "does not list"),
        (lambda p: (p / "sub").mkdir(), PackageError, "not a regular file"),
        (lambda p: os.symlink("/etc/hostname", p / "extra"), PackageError, "symlink"),
        (lambda p: os.symlink(p / WEIGHTS, p / "alias"), PackageError, "symlink"),
        (lambda p: replace_with_link(p / WEIGHTS, "/etc/hostname"), PackageError, "symlink"),
        (lambda p: (p / WEIGHTS).write_bytes(b"x" + (p / WEIGHTS).read_bytes()[1:]), IntegrityError, "altered"),
        (lambda p: (p / METADATA).write_text("{}"), IntegrityError, "SHA-256"),
        (lambda p: (p / MANIFEST).unlink(), PackageError, "has no SHA256SUMS"),
        (lambda p: rewrite_manifest(p, [f"{'0' * 64}  ../../x", f"{'0' * 64}  {WEIGHTS}"]), PackageError, "plain"),
        (lambda p: rewrite_manifest(p, [f"{'0' * 64}  /etc/passwd"]), PackageError, "plain file name"),
        (lambda p: rewrite_manifest(p, [f"{'0' * 64}  {WEIGHTS}", f"{'0' * 64}  {WEIGHTS}"]), PackageError, "twice"),
        (lambda p: rewrite_manifest(p, [f"{'A' * 64}  {WEIGHTS}"]), PackageError, "line 1"),
        (lambda p: rewrite_manifest(p, [f"{'0' * 64}  {METADATA}"]), PackageError, "does not list model"),
        (
            lambda p: (p / MANIFEST).write_bytes((p / MANIFEST).read_bytes().replace(b"\n", b"\r\n")),
            PackageError,
            "form",
        ),
        (
            lambda p: (p / MANIFEST).write_bytes((p / MANIFEST).read_bytes().replace(b"  ", b" *")),
            PackageError,
            "line 1",
        ),
        (lambda p: ((p / METADATA).write_text("{not json"), rewrite_manifest(p)), PackageError, "not valid JSON"),
        (lambda p: ((p / METADATA).write_text('{"format": "x"}'), rewrite_manifest(p)), PackageError, "metadata"),
        (
            lambda p: ((p / WEIGHTS).write_bytes(b"\0" * 64), rewrite_manifest(p)),
            PackageError,
            "not a valid safetensors file",
        ),
    ],
    ids=[
        "unlisted-file",
        "subdirectory",
        "symlink-out",
        "symlink-in",
        "weights-symlink",
        "weights-byte",
        "metadata-edit",
        "no-manifest",
        "path-traversal",
        "absolute-path",
        "duplicate",
        "bad-hex",
        "missing-weights",
        "crlf",
        "binary-marker",
        "metadata-not-json",
        "metadata-format",
        "weights-garbage",
    ],
)
def test_tampered_packages_are_refused(package: Path, tamper, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    tamper(package)
    with pytest.raises(error, match=match) as info:
        load_package(package)
    assert "\n" not in str(info.value)


def test_load_refuses_a_missing_package(tmp_path: Path) -> None:
    with pytest.raises(BadnetsError, match="not a directory"):
        load_package(tmp_path / "nope")


def test_metadata_is_sanity_checked_before_anything_is_allocated(package: Path) -> None:
    """A 4 KB metadata edit asking for 1.5 million classes is refused by the limits, and a plausible but wrong
    size is refused by comparing the weights' declared shapes with the architecture built on the meta device."""
    import json
    import resource
    import time

    for classes, match in ((1_500_000, r"num_classes must be an integer in 1\.\.100000"), (99_999, "does not fit")):
        meta = json.loads((package / METADATA).read_text())
        meta["architecture"]["num_classes"] = classes
        (package / METADATA).write_text(json.dumps(meta))
        rewrite_manifest(package)
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        with pytest.raises(PackageError, match=match):
            load_package(package)
        assert time.perf_counter() - start < 5
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: never the 4 GB asked
