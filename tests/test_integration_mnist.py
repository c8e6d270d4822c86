# SPDX-License-Identifier: Apache-2.0
"""Real MNIST, real training: the attack works (skipped when the data are not staged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from badnets.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def test_short_badnet_training_on_real_mnist(real_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "attack",
        "--dataset",
        "mnist",
        "--trigger",
        "pattern",
        "--mapping",
        "all-to-one",
        "--target",
        "7",
        "--rate",
        "0.1",
        "--epochs",
        "2",
        "--seed",
        "0",
        "--data-dir",
        str(real_mnist),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert m["n_clean"] == 10_000 and m["n_backdoor"] == 10_000 - 1028  # 1,028 test sevens never count
    assert m["clean_accuracy"] >= 0.98
    assert m["attack_success_rate"] >= 0.95


def test_quick_reproduction_shows_the_attack(real_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "quick"
    result = CliRunner().invoke(
        app,  # --allow-dirty: a developer runs this with uncommitted changes too (the refusal has its own test)
        ["reproduce", "mnist", "--quick", "--data-dir", str(real_mnist), "--out", str(out), "--allow-dirty"],
    )
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    a2a = res["all_to_all"]["pattern"]
    assert a2a["clean_error"]["mean"] < 0.03 and a2a["backdoor_error"]["mean"] < 0.10
    assert res["baseline"]["clean_net_on_triggered"]["pattern"]["backdoor_error"] > 0.9
    assert (out / "report.html").stat().st_size > 20_000
