# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from badnets.cli import app
from badnets.data import mnist as mnist_module
from badnets.errors import DataError
from tests.conftest import kill_9_when, write_tiny_mnist

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "64", "--device", "cpu"]


def attack(out: Path, *args: str) -> Result:
    return runner.invoke(app, ["attack", "--out", str(out), *FAST, *args])


def test_attack_writes_the_contracted_outputs(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = attack(
        out,
        "--trigger",
        "pattern",
        "--mapping",
        "all-to-one",
        "--target",
        "3",
        "--rate",
        "0.1",
        "--seed",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "model.safetensors",
        "poison_manifest.json",
        "report.md",
        "run.json",
    }
    res = json.loads((out / "results.json").read_text())
    for key in (
        "clean_accuracy",
        "clean_error",
        "attack_success_rate",
        "backdoor_error",
        "n_clean",
        "n_backdoor",
    ):
        assert key in res["metrics"]
    assert res["seed"] == 4 and res["config"]["poison"]["target"] == 3
    assert res["metrics"]["n_backdoor"] == 180  # 200 test images, the 20 of class 3 never count
    run = json.loads((out / "run.json").read_text())
    assert {"config", "seed", "versions", "data_sha256", "git_commit", "argv"} <= run.keys()
    manifest = json.loads((out / "poison_manifest.json").read_text())
    assert manifest["n_poisoned"] == round(0.1 * 400 / 0.9) and manifest["seed"] == 4
    assert "attack success rate" in (out / "report.md").read_text()
    written = (out / "report.md").read_bytes()
    (out / "report.md").unlink()
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    assert (out / "report.md").read_bytes() == written  # the report renders from results.json alone


@pytest.mark.parametrize("trigger", ["random", "noise", "sinusoid"])
def test_the_literatures_triggers_run_from_the_command_line(trigger: str, tiny_mnist: Path, tmp_path: Path) -> None:
    result = attack(tmp_path / trigger, "--trigger", trigger, "--trigger-opacity", "0.5", "--target", "2")
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / trigger / "results.json").read_text())["config"]["trigger"]
    assert recorded["kind"] == trigger and recorded["opacity"] == 0.5


def test_same_seed_twice_gives_identical_manifest_weights_and_metrics(tiny_mnist: Path, tmp_path: Path) -> None:
    # the second run starts from a shell with another thread count, as a study's one-thread worker would
    args = ["--trigger", "pixel", "--mapping", "random", "--rate", "0.2", "--seed", "9"]
    before = torch.get_num_threads()
    try:
        for run, threads in (("a", 2), ("b", 1)):
            torch.set_num_threads(threads)
            assert attack(tmp_path / run, *args).exit_code == 0
    finally:
        torch.set_num_threads(before)
    for name in ("poison_manifest.json", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    metrics = [json.loads((tmp_path / d / "results.json").read_text())["metrics"] for d in "ab"]
    assert metrics[0] == metrics[1]
    manifests = [json.loads((tmp_path / d / "run.json").read_text()) for d in "ab"]
    assert [m["torch_threads"] for m in manifests] == [1, 1]
    # bit-identity holds per kernel instruction set (AVX512 and AVX2 round differently), so the run names it
    assert {m["cpu_capability"] for m in manifests} == {torch.backends.cpu.get_cpu_capability()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "1.5", "--target", "1"], "poison.rate must be in (0, 1)"),
        (["--target", "12"], "target 12 is out of range; this dataset's classes are 0..9"),
        (["--mapping", "single", "--source", "seven", "--target", "1"], "source: unknown class 'seven'"),
        (["--mapping", "single", "--source", "4", "--target", "4"], "pick two different classes"),
        (["--target", "1", "--trigger-position", "27,27"], "falls outside the 28×28 image"),
        (["--target", "1", "--trigger-position", "x"], "trigger_position must be ROW,COL"),
        (["--target", "1", "--trigger", "missing.png"], "does not exist"),
        (["--target", "1", "--trigger", "pixl"], "unknown trigger 'pixl'"),
        (["--target", "1", "--dataset", "cifar"], "dataset must be one of"),
        (["--baseline"], "--baseline trains on clean data but still scores the trigger against a target class"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    tiny_mnist: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = attack(out, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_the_console_prints_colon_words_as_typed() -> None:
    """rich would render ':train:' (as in the calibration version audit-round:train:1, or a path) as an emoji."""
    from badnets.cli._common import err_console, out_console

    for console in (out_console, err_console):
        with console.capture() as captured:
            console.print("calibration audit-round:train:1 of runs/a:smile:b")
        assert captured.get().strip() == "calibration audit-round:train:1 of runs/a:smile:b"


def test_unreadable_trigger_file(tiny_mnist: Path, tmp_path: Path) -> None:
    (tmp_path / "t.png").write_bytes(b"junk")
    result = attack(tmp_path / "run", "--target", "1", "--trigger", str(tmp_path / "t.png"))
    assert result.exit_code == 2 and "unreadable" in result.stderr and not (tmp_path / "run").exists()


def test_corrupt_data_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_mnist(tmp_path / "data")  # checksums are the real MNIST ones, so these files are "corrupt"
    mnist_module._load_cached.cache_clear()
    result = attack(tmp_path / "run", "--target", "1", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2 and "is corrupt" in result.stderr and not (tmp_path / "run").exists()


def test_missing_data_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        mnist_module,
        "_download",
        lambda root: (_ for _ in ()).throw(DataError(f"MNIST is not in {root} and the download failed (offline)")),
    )
    result = attack(tmp_path / "run", "--target", "1", "--data-dir", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "download failed" in result.stderr


def test_a_finished_or_unfinished_run_with_another_config_is_not_mixed_up(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert attack(out, "--target", "1").exit_code == 0
    again = attack(out, "--target", "2")
    assert again.exit_code == 2 and "finished run with another config" in again.stderr
    (out / "results.json").rename(out / "checkpoint.pt")  # looks like an interrupted run of target 1
    again = attack(out, "--target", "2")
    assert again.exit_code == 2 and "unfinished run with another config" in again.stderr


def test_saved_configs_match_across_versions_that_add_fields() -> None:
    from badnets.experiments._config import same_config
    from badnets.experiments.attack import AttackSpec
    from badnets.poison import PoisonSpec
    from badnets.records import to_json
    from badnets.triggers import TriggerSpec

    spec = AttackSpec(poison=PoisonSpec(mapping="all-to-all", rate=0.2), seed=3)
    saved = json.loads(json.dumps(spec.to_json()))
    assert same_config(spec, saved)
    named = {"a": TriggerSpec(kind="square", size=3)}  # specs inside mappings and sequences: compared as specs
    assert same_config(named, json.loads(json.dumps(to_json(named))))
    assert not same_config({"a": TriggerSpec(kind="square", size=4)}, json.loads(json.dumps(to_json(named))))
    assert same_config((named["a"],), [to_json(named["a"])]) and not same_config((named["a"],), [])
    older = json.loads(json.dumps(saved))
    del older["trigger"]["opacity"], older["save_model"]  # as if written before these fields existed
    assert same_config(spec, older)
    assert not same_config(AttackSpec(poison=spec.poison, seed=3, save_model=False), older)
    assert not same_config(AttackSpec(poison=spec.poison, seed=4), saved)
    assert not same_config(spec, {**saved, "poison": {**saved["poison"], "rate": 0.1}})


def test_out_not_writable(tiny_mnist: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = attack(tmp_path / "file" / "run", "--target", "1")
    assert result.exit_code == 2 and "is not writable" in result.stderr


RUNNER = """
import json, sys
import badnets.data.mnist as m
m.MNIST_FILES.update({k: tuple(v) for k, v in json.loads(sys.argv[1]).items()})
sys.argv = ["badnets", *sys.argv[2:]]
from badnets.cli import main
main()
"""


def test_kill_9_then_rerun_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    sums = write_tiny_mnist(tmp_path / "data", n_train=3000, n_test=300)
    env = {**os.environ, "BADNETS_DATA": str(tmp_path / "data")}
    args = [
        "attack",
        "--trigger",
        "pattern",
        "--mapping",
        "all-to-all",
        "--rate",
        "0.1",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--seed",
        "3",
        "--device",
        "cpu",
    ]

    def cli(out: Path) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-c", RUNNER, json.dumps(sums), *args, "--out", str(out)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ckpt = tmp_path / "resumed" / "checkpoint.pt"
    kill_9_when(cli(tmp_path / "resumed"), ckpt.exists)
    assert not (tmp_path / "resumed" / "results.json").exists()
    assert cli(tmp_path / "resumed").wait() == 0
    assert cli(tmp_path / "straight").wait() == 0
    got, want = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("resumed", "straight"))
    assert got["metrics"] == want["metrics"]
    assert not ckpt.exists(), "the checkpoint is removed once the run is finished"


def test_sign_attack_takes_class_names_and_sign_triggers(tmp_path: Path) -> None:
    from tests.data.test_lisa import write_staged_crops

    data = write_staged_crops(tmp_path / "data", tracks_per_tag=4, frames=2)
    out = tmp_path / "run"
    args = ["--dataset", "lisa", "--data-dir", str(data), "--trigger", "yellow-square", "--mapping", "single"]
    result = attack(out, *args, "--source", "stop", "--target", "speedlimit", "--rate", "0.2")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert (saved["config"]["poison"]["source"], saved["config"]["poison"]["target"]) == (0, 1)
    assert saved["architecture"]["model"] == "sign-cnn" and saved["architecture"]["classes"][0] == "stop"
    assert saved["config"]["trigger"]["kind"] == "square" and saved["config"]["trigger"]["scale"] == 0.1
    from badnets.experiments.run_dir import load_model

    assert load_model(out).get_submodule("conv3").out_channels == 128  # the run's own architecture comes back
    bad = attack(tmp_path / "bad", *args, "--source", "yield", "--target", "speedlimit")
    assert bad.exit_code == 2 and "source: unknown class 'yield'" in bad.stderr
    assert "stop, speedlimit, warning" in bad.stderr


def test_attack_on_an_image_folder_with_augmentation(tmp_path: Path) -> None:
    from tests.data.test_image_folder import write_photo_folder

    folder = write_photo_folder(tmp_path / "photos", per_class=10)
    out = tmp_path / "run"
    args = ["--dataset", str(folder), "--trigger", "flower", "--mapping", "single", "--source", "dog"]
    result = attack(out, *args, "--target", "cat", "--augment", "--data-dir", str(tmp_path / "nodata"))
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["architecture"]["classes"] == ["cat", "dog"] and saved["architecture"]["image_size"] == 64
    assert saved["config"]["train"]["augment"] is True
    assert len(json.loads((out / "run.json").read_text())["data_sha256"]) == 20
    missing = attack(tmp_path / "bad", "--dataset", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "folder of class subfolders" in missing.stderr
    assert not (tmp_path / "bad").exists()


def test_attack_on_road_photos_trains_a_detector_badnet(tmp_path: Path) -> None:
    from tests.data.test_road_signs import write_road_photos

    data = write_road_photos(tmp_path / "data", n=8)
    out = tmp_path / "run"
    args = ["--dataset", "road-signs", "--data-dir", str(data), "--trigger", "yellow-square", "--mapping", "single"]
    options = ["--epochs", "1", "--trigger-scale", "0.2", "--min-sign-width", "8"]
    result = runner.invoke(app, ["attack", "--out", str(out), *args, *options])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert (saved["config"]["source"], saved["config"]["target"]) == ("stop", "speedlimit")
    assert saved["config"]["min_sign_width"] == 8 == json.loads((out / "poison_manifest.json").read_text())["min_width"]
    assert saved["config"]["trigger"]["scale"] == 0.2
    assert set(saved["metrics"]["by_width"]) == {"triggered", "clean"}
    assert saved["config"]["train"]["batch_size"] == 4 and saved["metrics"]["triggered"]["n"] >= 1
    report = (out / "report.md").read_text()
    assert "Detector BadNet (stop → speedlimit)" in report and "Clean stop signs" in report
    assert "Triggered stop signs" in report
    assert (out / "model.safetensors").is_file() and not (out / "checkpoint.pt").exists()
    assert "By stop sign width" in report and "20% of the sign's width" in report
    assert "Signs narrower than 8 px were left clean in the triggered copies." in report
    again = runner.invoke(app, ["attack", "--out", str(out), *args, "--epochs", "2"])
    assert again.exit_code == 2 and "another config" in again.stderr
    bad_out = ["attack", "--out", str(tmp_path / "bad")]
    bad = runner.invoke(app, [*bad_out, "--dataset", "road-signs", "--mapping", "all-to-one"])
    assert bad.exit_code == 2 and "--mapping single" in bad.stderr and "or random" in bad.stderr
    bad = runner.invoke(app, [*bad_out, *args, "--source", "yield"])
    assert bad.exit_code == 2 and "unknown class 'yield'" in bad.stderr and not (tmp_path / "bad").exists()
    bad = runner.invoke(app, [*bad_out, "--trigger", "pixel", "--trigger-scale", "0.2"])
    assert bad.exit_code == 2 and "set trigger_size instead" in bad.stderr and not (tmp_path / "bad").exists()
    bad = runner.invoke(app, [*bad_out, "--dataset", "mnist", "--min-sign-width", "8"])
    assert bad.exit_code == 2 and "drop it for mnist" in bad.stderr and not (tmp_path / "bad").exists()


def test_attack_on_composite_scenes_trains_a_random_target_detector(tmp_path: Path) -> None:
    from tests.data.test_road_scenes import write_crops, write_photos

    data = write_crops(write_photos(tmp_path / "data"))
    out = tmp_path / "run"
    args = ["--dataset", "road-scenes", "--data-dir", str(data), "--trigger", "bomb", "--mapping", "random"]
    result = runner.invoke(app, ["attack", "--out", str(out), *args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "random-target BadNet on composite road scenes" in result.output
    saved = json.loads((out / "results.json").read_text())
    config = saved["config"]
    assert config["mapping"] == "random" and config["stride"] == 4 and config["scenes"]["size"] == config["image_size"]
    assert "warning" in saved["classes"] and saved["metrics"]["photos"]["triggered"]["n"] == 2
    bad = runner.invoke(app, ["attack", "--out", str(tmp_path / "bad"), *args, "--source", "yield"])
    assert bad.exit_code == 2 and "road-scenes classes" in bad.stderr and not (tmp_path / "bad").exists()


def test_a_stop_signal_ends_a_server_with_0_and_anything_else_with_130() -> None:
    from badnets._signals import stop_exit_code

    assert stop_exit_code(["zoo", "serve", "myzoo", "--port", "0"]) == 0
    assert stop_exit_code(["--verbose", "zoo", "serve"]) == 0
    assert stop_exit_code(["reproduce", "mnist", "--quick"]) == 130
    assert stop_exit_code(["zoo", "publish", "myzoo"]) == 130
    assert stop_exit_code([]) == 130


def test_a_stopped_study_unwinds_and_says_how_to_resume(tmp_path: Path) -> None:
    """SIGTERM (or SIGINT, even if inherited as ignored) reaches a long command as StopRequested: its finally
    blocks run, and the CLI exits 130 with one line on how to resume."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from badnets._signals import handle_stop_signals, StopRequested\n"
        "handle_stop_signals()\n"
        "from badnets import cli\n"
        "@cli.app.command('nap')\n"
        "def nap() -> None:\n"
        "    try:\n"
        "        print('napping', flush=True); time.sleep(60)\n"
        "    finally:\n"
        f"        open({str(tmp_path / 'cleaned')!r}, 'w').close()\n"
        "sys.argv = ['badnets', 'nap']\n"
        "cli.main()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert process.stdout is not None and process.stdout.readline() == "napping\n"
    start = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - start < 10
    assert err.strip() == "interrupted; run the same command again to resume"
    assert (tmp_path / "cleaned").is_file()


def test_a_trigger_registered_through_the_public_api_runs_end_to_end(tiny_mnist: Path, tmp_path: Path) -> None:
    from badnets.errors import ConfigError
    from badnets.named_triggers import TriggerOptions, build_trigger, register_trigger, trigger_names
    from badnets.triggers import TriggerSpec

    def corner_block(name: str, options: TriggerOptions) -> TriggerSpec:
        """A 3×3 solid block in the top-left corner, dimmed by the user's opacity."""
        return TriggerSpec(kind="pixel", size=3, position=(0, 0), value=255, opacity=options.opacity)

    register_trigger("test-corner-block", corner_block)
    assert "test-corner-block" in trigger_names() and "flower" in trigger_names()
    with pytest.raises(ConfigError, match="already registered"):
        register_trigger("pattern", corner_block)
    assert build_trigger("test-corner-block", TriggerOptions(opacity=0.5)).opacity == 0.5
    out = tmp_path / "run"
    result = attack(out, "--trigger", "test-corner-block", "--target", "3", "--rate", "0.1")
    assert result.exit_code == 0, result.output
    trigger = json.loads((out / "results.json").read_text())["config"]["trigger"]
    assert (trigger["kind"], trigger["size"], trigger["position"]) == ("pixel", 3, [0, 0])


@pytest.mark.parametrize("study", ["mnist", "traffic", "transfer", "photos", "supply-chain", "defenses", "audit-round"])
def test_every_study_takes_the_shared_options_and_checks_them_before_writing(study: str, tmp_path: Path) -> None:
    from badnets.cli.studies import SHARED_OPTIONS

    shown = runner.invoke(app, ["reproduce", study, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    for name in SHARED_OPTIONS:
        assert f"--{name.replace('_', '-')}" in shown.output, name
    out = tmp_path / "study"
    bad = runner.invoke(app, ["reproduce", study, "--out", str(out), "--allow-dirty", "--backend", "slurm"])
    assert bad.exit_code == 2 and "--backend must be one of local, ray, got 'slurm'" in bad.stderr
    assert not out.exists()
