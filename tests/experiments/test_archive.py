"""The record archive: what it keeps, what it restores, and what it leaves alone."""

from __future__ import annotations

import json
from pathlib import Path

from badnets.experiments._jobs import Job
from badnets.experiments.archive import LEDGER, RecordArchive
from badnets.experiments.run_dir import RUNS


class _NoSpec:
    def run(self, out_dir: Path) -> dict[str, float]:
        raise AssertionError("an archive never runs a job")


def _jobs(*names: str) -> list[Job]:
    return [Job(name, _NoSpec(), dir_name=name) for name in names]


def _write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_keep_archives_finished_records_only_and_never_weights(tmp_path: Path) -> None:
    study = tmp_path / "study"
    for name in ("done", "running"):
        _write(study / RUNS / name / "run.json", {"commit": name})
        (study / RUNS / name / "model.safetensors").write_bytes(b"weights")
    _write(study / RUNS / "done" / "results.json", {"acc": 1})
    _write(study / LEDGER, [{"wall": 1}])
    archive = RecordArchive(tmp_path / "archive")

    assert archive.keep(_jobs("done", "running", "never-started"), study) == 1
    assert archive.keep(_jobs("done"), study) == 0  # kept again: nothing new
    kept = sorted(str(p.relative_to(archive.root)) for p in archive.root.rglob("*") if p.is_file())
    assert kept == ["done/results.json", "done/run.json", LEDGER]


def test_restore_fills_unfinished_run_directories_and_leaves_finished_ones(tmp_path: Path) -> None:
    archive = RecordArchive(tmp_path / "archive")
    for name in ("a", "b", "c"):
        _write(archive.root / name / "run.json", {"commit": "archived"})
        _write(archive.root / name / "results.json", {"from": "archive"})
    _write(archive.root / LEDGER, [{"wall": 1}])
    study = tmp_path / "study"
    _write(study / RUNS / "a" / "results.json", {"from": "here"})  # finished here: its own record stays
    _write(study / RUNS / "b" / "run.json", {"commit": "a crashed attempt"})  # stale manifest, no record

    assert archive.restore(_jobs("a", "b", "c", "d"), study) == 2
    assert json.loads((study / RUNS / "a" / "results.json").read_text()) == {"from": "here"}
    assert json.loads((study / RUNS / "b" / "run.json").read_text()) == {"commit": "archived"}
    assert json.loads((study / RUNS / "c" / "results.json").read_text()) == {"from": "archive"}
    assert not (study / RUNS / "d").exists() and (study / LEDGER).is_file()
    assert archive.restore(_jobs("a", "b", "c"), study) == 0
