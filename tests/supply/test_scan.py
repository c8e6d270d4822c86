# SPDX-License-Identifier: Apache-2.0
"""Pickle scanning: malicious pickles are found and never run; what cannot be scanned is a finding, not a pass."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import random
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from badnets.cli import app
from badnets.errors import ConfigError
from badnets.supply import ScanLimits, scan_file, scan_path


class _WritesAFile:
    """Unpickling this runs ``os.system('touch <marker>')``: the side effect the tests look for."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _Execs:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("open('/tmp/badnets-should-not-exist', 'w').write('x')",))


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def malicious_files(root: Path, marker: Path) -> list[Path]:
    """The same payload as a raw pickle, a `.pt` torch zip, a state dict with a payload inside, and a zip."""
    root.mkdir(parents=True, exist_ok=True)
    raw = pickle.dumps(_WritesAFile(marker))
    (root / "evil.pkl").write_bytes(raw)
    (root / "evil.bin").write_bytes(pickle.dumps(_Execs()))
    torch.save({"weights": torch.zeros(2), "payload": _WritesAFile(marker)}, root / "evil.pt")
    with zipfile.ZipFile(root / "evil.zip", "w") as z:
        z.writestr("model/data.pkl", raw)
    (root / "evil.ckpt").write_bytes(raw[:-1] + b"\x85" + raw[-1:])  # a broken tail after the payload
    return sorted(root.iterdir())


def test_malicious_pickles_are_found_and_never_run(tmp_path: Path, marker: Path) -> None:
    files = malicious_files(tmp_path / "m", marker)
    report = scan_path(tmp_path / "m")
    assert [f.verdict for f in report.files] == ["dangerous"] * len(files)
    assert any("system" in f.detail for f in report.files) and any("exec" in f.detail for f in report.files)
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "m")])
    assert result.exit_code == 1 and "must not be loaded" in result.output
    assert not marker.exists() and not Path("/tmp/badnets-should-not-exist").exists()


def test_the_toolkit_never_unpickles_a_checkpoint(tmp_path: Path, marker: Path) -> None:
    """Resuming from a planted checkpoint goes through torch.load(weights_only=True), which refuses the payload."""
    from badnets.train import _load_checkpoint

    torch.save({"epoch": 1, "payload": _WritesAFile(marker)}, tmp_path / "checkpoint.pt")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(tmp_path / "checkpoint.pt", model, optimizer, None)
    assert not marker.exists()


def test_clean_model_files(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3)}, tmp_path / "state.pt")
    torch.save({"w": torch.ones(3)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"lr": 0.1, "layers": [1, 2]}))
    save_file({"w": torch.ones(3)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "README.md").write_text("# a model")
    report = scan_path(tmp_path)
    verdicts = {Path(f.path).name: f.verdict for f in report.files}
    assert verdicts == {
        "state.pt": "clean",
        "legacy.pth": "clean",
        "plain.pkl": "clean",
        "model.safetensors": "clean",
        "README.md": "clean",
    }
    assert report.ok
    assert CliRunner().invoke(app, ["scan", str(tmp_path)]).exit_code == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("random.pt", random.Random(0).randbytes(300)),  # seeded: 1.5% of random files start like a pickle
        ("truncated.pkl", pickle.dumps({"a": list(range(100))})[:40]),
        ("empty.pkl", b""),
        ("not-a-zip.pt", b"PK\x03\x04" + b"\0" * 60),
        ("archive.7z", b"7z\xbc\xaf\x27\x1c" + b"\0" * 40),
        ("model.safetensors", b"\xff" * 16),
    ],
)
def test_unscannable_files_are_findings(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    scanned = scan_file(tmp_path / name)
    assert scanned.verdict == "unscannable", scanned
    result = CliRunner().invoke(app, ["scan", str(tmp_path / name)])
    assert result.exit_code == 1


def test_random_bytes_are_never_clean(tmp_path: Path) -> None:
    """Junk is a finding: unscannable, or dangerous when its first bytes happen to read as a pickle import."""
    verdicts = set()
    for seed in range(300):
        (tmp_path / "junk.pt").write_bytes(random.Random(seed).randbytes(300))
        verdicts.add(scan_file(tmp_path / "junk.pt").verdict)
    assert verdicts <= {"unscannable", "dangerous"} and "unscannable" in verdicts


def test_truncated_torch_zip_is_a_finding(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(100)}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    assert scan_file(tmp_path / "half.pt").verdict == "unscannable"


def test_symlinks_are_reported_not_followed(tmp_path: Path, marker: Path) -> None:
    outside = malicious_files(tmp_path / "outside", marker)[0]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model.pkl").symlink_to(outside)
    (tmp_path / "d" / "more").symlink_to(tmp_path / "outside")
    report = scan_path(tmp_path / "d")
    assert [(Path(f.path).name, f.verdict) for f in report.files] == [
        ("more", "unscannable"),
        ("model.pkl", "unscannable"),
    ]


def test_formats_are_told_by_content_not_by_name(tmp_path: Path, marker: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "weights.model").write_bytes(pickle.dumps(_WritesAFile(marker)))
    (tmp_path / "model.pkl.gz").write_bytes(gzip.compress(pickle.dumps(_WritesAFile(marker))))
    (tmp_path / "random.npy").write_bytes(random.Random(0).randbytes(256))
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['touch x']\n")
    verdicts = {Path(f.path).name: (f.format, f.verdict) for f in scan_path(tmp_path).files}
    assert verdicts["notes.txt"] == ("text", "clean") and verdicts["config.json"] == ("text", "clean")
    assert verdicts["weights.model"] == ("pickle", "dangerous")
    assert verdicts["model.pkl.gz"] == ("gzip(pickle)", "dangerous")
    assert verdicts["random.npy"][1] != "clean"  # some random bytes read as a pickle's first opcodes: "dangerous"
    assert verdicts["evil.yaml"] == ("yaml", "dangerous")
    with pytest.raises(ConfigError, match="does not exist"):
        scan_path(tmp_path / "missing")
    assert CliRunner().invoke(app, ["scan", str(tmp_path / "missing")]).exit_code == 2


def test_fifos_and_devices_are_reported_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.pt")  # opening it for reading would block forever
    (tmp_path / "ok.json").write_text("{}")
    report = scan_path(tmp_path)
    assert [(Path(f.path).name, f.format, f.verdict) for f in report.files] == [
        ("ok.json", "text", "clean"),
        ("pipe.pt", "special", "unscannable"),
    ]
    assert scan_file(tmp_path / "pipe.pt").verdict == "unscannable"


def test_limits_make_a_zip_bomb_unscannable_not_clean(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.json", b" " * 20_000_000)
    assert (tmp_path / "bomb.zip").stat().st_size < 100_000
    limits = ScanLimits(max_unpacked_bytes=1_000_000)
    scanned = scan_file(tmp_path / "bomb.zip", limits=limits)
    assert scanned.verdict == "unscannable" and "more than 1,000,000 bytes" in scanned.detail
    assert scan_file(tmp_path / "bomb.zip").verdict == "clean"  # within the default budget it is only text
    with pytest.raises(ConfigError, match="max_depth"):
        ScanLimits(max_depth=0)


def test_a_reviewed_global_can_be_allowed(tmp_path: Path) -> None:
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(zipfile.ZipInfo("x")))
    assert scan_file(tmp_path / "c.pkl").verdict == "dangerous"
    assert scan_file(tmp_path / "c.pkl", allow=["zipfile.ZipInfo"]).verdict == "clean"
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "c.pkl"), "--allow", "zipfile.ZipInfo"])
    assert result.exit_code == 0, result.output


def test_rich_markup_in_file_names_is_printed_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "[bold]x[red].json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # a short path, so the table does not wrap the name (pytest's tmp paths vary in length)
    result = CliRunner().invoke(app, ["scan", "."])
    assert result.exit_code == 0 and "[bold]x[red].json" in result.output.replace("\n", "")


def test_json_output(tmp_path: Path, marker: Path) -> None:
    malicious_files(tmp_path / "m", marker)
    result = CliRunner().invoke(app, ["scan", "--json", str(tmp_path / "m" / "evil.pkl")])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert rows[0]["verdict"] == "dangerous" and "system" in rows[0]["detail"]
