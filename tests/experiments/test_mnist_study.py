# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from badnets.records import to_json
from badnets.studies.mnist import MnistStudySpec, build_jobs, run_mnist_study

TINY = MnistStudySpec(
    sweep_epochs=1,
    triggers=("pattern", "pixel"),
    seeds=1,
    epochs=1,
    pair_epochs=(("pattern", 1), ("pixel", 1)),
    sweep_rates=(0.1, 0.3),
    pairs=((4, 9), (1, 2)),
    batch_size=64,
    workers=1,
    device="cpu",
)


def test_full_study_has_every_model_of_the_paper() -> None:
    jobs = build_jobs(MnistStudySpec())
    names = [j.name for j in jobs]
    assert sum(n.startswith("single/") for n in names) == 180
    assert sum(n.startswith("baseline/") for n in names) == 3
    assert sum(n.startswith("all-to-all/") for n in names) == 6
    assert sum(n.startswith("sweep/") for n in names) == 36
    # the sweep's 10% point is the all-to-all headline run when their epochs match
    unique = {j.dir_name for j in jobs}
    shared = 6 if MnistStudySpec().sweep_epochs == MnistStudySpec().epochs else 0
    assert len(unique) == len(jobs) - shared


def test_quick_preset_is_small() -> None:
    spec = MnistStudySpec.preset(quick=True)
    assert spec.triggers == ("pattern",) and spec.seeds == 1 and len(spec.pairs) == 2 and spec.quick


def test_tiny_study_end_to_end(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    summary = run_mnist_study(TINY, out)
    assert {
        "results.json",
        "report.md",
        "report.html",
        "sweep.png",
        "conv1_filters.png",
        "triggers.png",
        "single_target_pattern.png",
        "single_target_pixel.png",
        "run.json",
    } <= {p.name for p in out.iterdir()}
    res = json.loads((out / "results.json").read_text())
    assert res["single"]["pattern"]["n_pairs"] == 2
    assert len(res["sweep"]["pixel"]) == 2 and res["timing"]["models"] == 1 + 2 * (
        1 + 2 + 2 - 1
    )  # the 10% sweep point is the all-to-all run
    assert {t["target"] for t in res["targets"]} >= {"baseline clean error (mean over seeds)"}
    sweep_rows = [t for t in res["targets"] if t["target"].startswith("sweep")]
    assert len(sweep_rows) == 4 and all(t["met"] is None for t in sweep_rows)  # 2 models: too few for a slope
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<img" in html and "src='sweep.png'" not in html
    assert json.dumps(to_json(summary.results)) == json.dumps(res)  # the file is the typed results
    assert summary.results.timing and summary.results.timing.models_trained_now == 9
    again = run_mnist_study(TINY, out)  # everything finished: nothing is retrained
    assert again.results.timing and again.results.timing.models_trained_now == 0
    assert [i.models_trained for i in again.results.timing.invocations] == [9]
    assert "Recorded invocations: 1, running 9 jobs" in (out / "report.md").read_text()
    assert json.dumps(to_json(again.results.single)) == json.dumps(to_json(summary.results.single))  # NaN-safe


@pytest.mark.parametrize("bad", [{"seeds": 0}, {"workers": 0}, {"triggers": ("star",)}, {"pairs": ((3, 3),)}])
def test_bad_study_specs(bad: dict[str, object]) -> None:
    from badnets.errors import ConfigError

    with pytest.raises(ConfigError):
        MnistStudySpec(**bad)  # type: ignore[arg-type]


STUDY_RUNNER = """
import json, sys
from pathlib import Path
import badnets.data.mnist as m
m.MNIST_FILES.update({k: tuple(v) for k, v in json.loads(Path(sys.argv[1]).read_text()).items()})

if __name__ == "__main__":
    from badnets.studies.mnist import MnistStudySpec, run_mnist_study
    spec = MnistStudySpec(triggers=("pattern",), seeds=1, epochs=4, pair_epochs=(("pattern", 4),), sweep_epochs=4,
                          sweep_rates=(0.1,), pairs=((4, 9), (1, 2)), batch_size=32, workers=2, device="cpu")
    run_mnist_study(spec, Path(sys.argv[2]))
"""


@pytest.mark.slow  # 100 s in a suite run that shared the 2 cores
def test_kill_9_during_reproduce_then_rerun_gives_the_uninterrupted_results(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import kill_9_when, write_tiny_mnist

    sums = write_tiny_mnist(tmp_path / "data", n_train=2000, n_test=200)
    (tmp_path / "sums.json").write_text(json.dumps(sums))
    (tmp_path / "runner.py").write_text(STUDY_RUNNER)
    env = {**os.environ, "BADNETS_DATA": str(tmp_path / "data")}

    def study(out: Path) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "sums.json"), str(out)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    runs = tmp_path / "resumed" / "runs"
    kill_9_when(
        study(tmp_path / "resumed"),
        lambda: (tmp_path / "resumed" / "invocations.json").is_file() and bool(list(runs.glob("*/checkpoint.pt"))),
    )
    time.sleep(0.5)  # workers die with the parent (PR_SET_PDEATHSIG)
    finished_before = {p.parent.name for p in runs.glob("*/results.json")}
    assert 0 < len(finished_before) < 4
    for proc in (study(tmp_path / "resumed"), study(tmp_path / "straight")):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    got, want = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("resumed", "straight"))
    for key in ("baseline", "all_to_all", "single", "sweep", "conv1"):
        assert json.dumps(got[key]) == json.dumps(want[key]), key
    assert got["timing"]["models_trained_now"] == 4 - len(finished_before)
    # the killed invocation's finished models are on the ledger, so the report's wall time spans both commands
    ledger = got["timing"]["invocations"]
    # (a model the parent had not yet heard of when it died is on disk but not on the ledger)
    assert len(ledger) == 2 and 1 <= ledger[0]["models_trained"] <= len(finished_before)
    assert ledger[1]["models_trained"] == 4 - len(finished_before)
    assert all(i["wall_seconds"] > 0 for i in ledger) and len(want["timing"]["invocations"]) == 1


@pytest.mark.realdata
def test_a_failing_job_stops_the_study_at_once(real_mnist: Path, tmp_path: Path) -> None:
    """One bad job among long ones: the error surfaces in seconds, not after the long jobs have run."""
    from badnets.errors import ConfigError
    from badnets.experiments._jobs import Job, dedupe_jobs, run_jobs
    from badnets.experiments.attack import AttackSpec
    from badnets.poison import PoisonSpec
    from badnets.train import TrainSpec
    from badnets.triggers import TriggerSpec

    def job(name: str, **trigger: object) -> Job:
        spec = AttackSpec(
            data_dir=str(real_mnist),
            trigger=TriggerSpec(kind="pattern", **trigger),  # type: ignore[arg-type]
            poison=PoisonSpec(mapping="all-to-all"),
            train=TrainSpec(epochs=30, device="cpu"),
            seed=len(name),
        )
        return Job(name, spec)

    jobs = dedupe_jobs([job("slow-a"), job("bad", position=(27, 27)), job("slow-bb"), job("slow-ccc")])
    started = time.monotonic()
    with pytest.raises(ConfigError, match="outside the 28×28 image"):
        run_jobs(jobs, tmp_path / "runs", workers=2)
    assert time.monotonic() - started < 90, "30-epoch jobs take many minutes; the failure must not wait for them"
    assert not list((tmp_path / "runs").glob("*/results.json"))


def test_a_study_refuses_a_dirty_tree_unless_allowed_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import asdict

    from typer.testing import CliRunner

    from badnets.cli import app
    from badnets.errors import ConfigError
    from badnets.experiments import _study

    monkeypatch.setattr(_study, "git_commit", lambda: "0123abc-dirty")
    result = CliRunner().invoke(app, ["reproduce", "mnist", "--quick", "--out", str(tmp_path / "study")])
    assert result.exit_code == 2 and "uncommitted changes (0123abc-dirty)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "study").exists()
    with pytest.raises(ConfigError, match="--allow-dirty"):
        _study.check_clean_tree(allow_dirty=False)
    _study.check_clean_tree(allow_dirty=True)
    assert asdict(MnistStudySpec.preset(quick=True, allow_dirty=True))["allow_dirty"] is True
    monkeypatch.setattr(_study, "git_commit", lambda: None)  # an installed wheel: no tree to be dirty
    _study.check_clean_tree(allow_dirty=False)


def test_only_changes_outside_docs_make_the_tree_dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study that archives its records under docs/ while it runs (the audit round) keeps naming a clean commit;
    a changed source file still makes it ``-dirty``."""
    import subprocess

    from badnets import _io

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "records.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "first")

    def in_tmp_repo(*args: str) -> str | None:
        out = subprocess.run(["git", "-C", str(tmp_path / "src"), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None

    monkeypatch.setattr(_io, "_git", in_tmp_repo)
    (tmp_path / "docs" / "records.json").write_text('{"chunk": 1}\n')
    (tmp_path / "docs" / "new.json").write_text("{}\n")
    commit = _io.git_commit()
    assert commit is not None and len(commit) == 40  # clean
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    assert _io.git_commit() == f"{commit}-dirty"
    monkeypatch.setattr(_io, "_git", lambda *args: None)  # a copy without .git (shipped to a GPU machine)
    assert _io.git_commit() is None
    monkeypatch.setenv("BADNETS_GIT_COMMIT", commit)
    assert _io.git_commit() == commit
