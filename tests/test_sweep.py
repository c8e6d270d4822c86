# SPDX-License-Identifier: Apache-2.0
"""``badnets sweep``: specs checked before anything runs, one run directory per cell, a summary, resume, and the
same metrics on the local pool, a local Ray and a two-node Ray cluster that loses a node mid-sweep."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from badnets.cli import app
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, LocalBackend, dedupe_jobs, run_jobs
from badnets.sweep import load_sweep_spec, run_sweep
from badnets.sweep.results import SUMMARY_METRICS
from tests.data.test_image_folder import write_photo_folder
from tests.experiments.test_jobs import FailingJob

runner = CliRunner()
SCORES = [m for m in SUMMARY_METRICS if m != "seconds"]


def write_spec(path: Path, photos: Path, *, epochs: int = 2, seeds: tuple[int, ...] = (0, 1), extra: str = "") -> Path:
    path.write_text(
        f'[base]\ndataset = "{photos}"\nepochs = {epochs}\ntarget = "cat"\nrate = 0.2\n'
        f'[grid]\ntrigger = ["pixel", "pattern"]\nseed = {list(seeds)}\n{extra}'
    )
    return path


def scores(out: Path) -> dict[str, list[str]]:
    with (out / "summary.csv").open() as f:
        return {row["cell"]: [row[m] for m in SCORES] for row in csv.DictReader(f)}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return write_photo_folder(tmp_path / "photos", per_class=20)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[base]\nepochs = 1\n[grids]\nseed = [0]\n", "unknown table 'grids'"),
        ("[base]\nepoch = 1\n", "[base]: unknown option 'epoch'; known: dataset, model"),
        ("[grid]\nseed = []\n", "grid.seed must be a non-empty list"),
        ("[grid]\nseed = [0, 0]\n", "grid.seed lists a value twice"),
        ("[base]\nepochs = 'two'\n", "cell 'base': epochs must be an integer, got 'two'"),
        ("[grid]\ntrigger = ['pixel', 'nope']\n[base]\ntarget = 0\n", "cell 'trigger=nope': "),
        ("[grid]\nrate = [0.1, 1.5]\n[base]\ntarget = 0\n", "poison.rate must be in (0, 1), got 1.5"),
        ("[base]\ntarget = 0\n[grid]\nseed = [0]\n[[cells]]\nseed = 0\n", "cell 'seed=0' appears twice"),
        ("[base\n", "is not valid TOML"),
    ],
)
def test_a_bad_spec_fails_in_one_line_and_leaves_nothing(tmp_path: Path, text: str, error: str) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_cells_are_named_by_their_values_and_checked_up_front(tmp_path: Path, photos: Path) -> None:
    spec = load_sweep_spec(write_spec(tmp_path / "s.toml", photos, extra='[[cells]]\ntrigger = "flower"\n'))
    cells = spec.expand()
    assert [c.name for c in cells] == [
        "trigger=pixel__seed=0",
        "trigger=pixel__seed=1",
        "trigger=pattern__seed=0",
        "trigger=pattern__seed=1",
        "trigger=flower",
    ]
    assert spec.axes == ["trigger", "seed"] and cells[1].attack.seed == 1 and cells[4].attack.seed == 0
    assert cells[2].attack.trigger.kind == "pattern" and cells[2].attack.poison.target == 0
    with pytest.raises(ConfigError, match=r"missing\.toml does not exist"):
        load_sweep_spec(tmp_path / "missing.toml")


def test_local_sweep_writes_a_summary_and_resumes_without_rerunning(tmp_path: Path, photos: Path) -> None:
    spec_path = write_spec(tmp_path / "s.toml", photos, seeds=(0,))
    out = tmp_path / "sweep"
    first = run_sweep(load_sweep_spec(spec_path), out, backend=LocalBackend(2), allow_dirty=True)
    assert first.timing is not None and first.timing.models_trained_now == 2 and not first.failed
    with (out / "summary.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["cell", "trigger", "seed", *SUMMARY_METRICS]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["cell"] for row in summary["rows"]] == ["trigger=pixel__seed=0", "trigger=pattern__seed=0"]
    run = json.loads((out / "runs" / "trigger=pixel__seed=0" / "results.json").read_text())
    assert summary["rows"][0]["attack_success_rate"] == run["metrics"]["attack_success_rate"]
    report = (out / "report.md").read_text()
    assert report.count("| trigger=") == 2 and (out / "sweep.png").is_file()
    (out / "report.md").unlink()
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0  # from results.json alone
    assert (out / "report.md").read_text() == report

    grown = run_sweep(load_sweep_spec(write_spec(spec_path, photos)), out, backend=LocalBackend(1), allow_dirty=True)
    assert grown.timing is not None and (grown.timing.models_trained_now, grown.timing.models) == (2, 4)
    assert scores(out)["trigger=pixel__seed=0"] == [str(summary["rows"][0][m]) for m in SCORES]

    changed = write_spec(tmp_path / "changed.toml", photos, epochs=3)
    result = runner.invoke(app, ["sweep", str(changed), "--out", str(out), "--allow-dirty"])
    assert result.exit_code == 2 and "another config than job 'trigger=pixel__seed=0'" in result.stderr


def test_an_address_needs_the_ray_backend(tmp_path: Path, photos: Path) -> None:
    spec = write_spec(tmp_path / "s.toml", photos)
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:1"])
    assert result.exit_code == 2 and "--address names a Ray cluster; add --backend ray" in result.stderr


def needs_ray() -> None:
    pytest.importorskip("ray", reason="the Ray backend needs the [ray] extra: pip install 'badnets[ray]'")


@pytest.mark.slow
def test_a_local_ray_gives_the_local_pools_metrics_and_reports_failed_jobs(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_ray()
    import ray

    from badnets.experiments.ray_backend import RayBackend

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("HOME", str(tmp_path))  # the token a new local Ray generates goes to ~/.ray/auth_token
    spec = load_sweep_spec(write_spec(tmp_path / "s.toml", photos))
    run_sweep(spec, tmp_path / "local", backend=LocalBackend(2), allow_dirty=True)
    on_ray = run_sweep(spec, tmp_path / "ray", backend=RayBackend(workers=2), backend_name="ray", allow_dirty=True)
    assert scores(tmp_path / "ray") == scores(tmp_path / "local") and len(on_ray.rows) == 4
    local_files = sorted(p.name for p in (tmp_path / "local" / "runs" / "trigger=pixel__seed=1").iterdir())
    ray_files = sorted(p.name for p in (tmp_path / "ray" / "runs" / "trigger=pixel__seed=1").iterdir())
    assert ray_files == local_files and not list((tmp_path / "ray" / "runs").glob(".*partial*"))
    assert not ray.is_initialized()  # the Ray it started is stopped

    # any job spec runs there (a study's too), and a job's own exception is that job's failure, not a retry
    counter = str(tmp_path / "count")
    jobs = dedupe_jobs([Job(n, FailingJob(value=v, fail=n == "b", counter=counter)) for v, n in enumerate("abc")])
    failures: dict[str, str] = {}
    timing = run_jobs(jobs, tmp_path / "jobs", backend=RayBackend(workers=2), keep_going=True, failures=failures)
    assert failures == {"b": "ValueError: this job was told to fail"} and timing.models_trained_now == 2
    assert Path(counter).read_text() == "2" and (tmp_path / "jobs" / "c" / "results.json").is_file()


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="needs a private network namespace (unshare --net; root in CI)")
def test_a_two_node_cluster_finishes_the_sweep_after_losing_a_node(tmp_path: Path, photos: Path) -> None:
    """Head and worker node as separate processes on loopback in a private network namespace; the worker node is
    killed (-9) once a cell finished, while it runs another; every cell still appears once, with the local pool's
    metrics."""
    needs_ray()
    spec = write_spec(tmp_path / "s.toml", photos, epochs=4, seeds=(0, 1, 2))
    run_sweep(load_sweep_spec(spec), tmp_path / "local", backend=LocalBackend(2), allow_dirty=True)
    script = Path(__file__).with_name("ray_cluster_sweep.py")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        ["unshare", "--net", sys.executable, str(script), str(spec), str(tmp_path / "cluster")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["killed_worker_node"] and report["killed_mid_cell"] and report["left_over_processes"] == 0, report
    cluster = scores(tmp_path / "cluster")
    assert len(cluster) == 6 and cluster == scores(tmp_path / "local")


def test_the_documented_specs_expand(tmp_path: Path) -> None:
    """The example spec and the one in docs/scaling.md are valid (the MNIST files are not needed to expand)."""
    root = Path(__file__).parents[1]
    example = load_sweep_spec(root / "examples" / "sweep-mnist-triggers.toml").expand()
    assert len(example) == 18 and example[0].name == "trigger=pixel__rate=0.01__seed=0"
    doc = (root / "docs" / "scaling.md").read_text()
    (tmp_path / "doc.toml").write_text(doc.split("```toml\n", 1)[1].split("```", 1)[0])
    cells = load_sweep_spec(tmp_path / "doc.toml").expand()
    assert len(cells) == 19 and cells[-1].attack.trigger.opacity == 0.5
