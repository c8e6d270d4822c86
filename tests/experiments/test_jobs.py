# SPDX-License-Identifier: Apache-2.0
"""The job runner reuses finished runs only when their recorded config is the job's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs, run_jobs


@dataclass(frozen=True, kw_only=True)
class CountingJob:
    """Writes its config to ``results.json`` and counts its runs in a file beside the run directories."""

    value: int
    counter: str

    def run(self, out_dir: Path) -> dict[str, float]:
        out_dir.mkdir(parents=True, exist_ok=True)
        counter = Path(self.counter)
        counter.write_text(str(int(counter.read_text() or "0") + 1) if counter.exists() else "1")
        (out_dir / "results.json").write_text(json.dumps({"config": asdict(self), "timing": {"job_seconds": 0.0}}))
        return {"job_seconds": 0.0}


def test_finished_runs_are_reused_only_for_the_same_config(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    jobs = dedupe_jobs([Job(name, CountingJob(value=v, counter=counter)) for name, v in (("a", 1), ("b", 2))])
    first = run_jobs(jobs, tmp_path / "runs", workers=1)
    again = run_jobs(jobs, tmp_path / "runs", workers=1)
    assert (first.models_trained_now, again.models_trained_now) == (2, 0)
    assert Path(counter).read_text() == "2"
    changed = dedupe_jobs([Job("a", CountingJob(value=3, counter=counter))])
    with pytest.raises(ConfigError, match=r"runs/a holds a finished run of another config than job 'a'"):
        run_jobs(changed, tmp_path / "runs", workers=1)
    assert Path(counter).read_text() == "2"
