# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
from pathlib import Path

import pytest

from badnets.experiments.mnist import MnistStudySpec, build_jobs, run_mnist_study

TINY = MnistStudySpec(
    sweep_epochs=1,
    triggers=("pattern", "pixel"),
    seeds=1,
    epochs=1,
    pair_epochs=1,
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
    assert spec.triggers == ("pattern",) and spec.seeds == 1 and len(spec.pairs) == 3


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
    assert {t["target"] for t in res["targets"]} >= {"baseline clean error (mean)"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<img" in html and "src='sweep.png'" not in html
    assert summary.results["timing"]["models_trained_now"] == 9
    again = run_mnist_study(TINY, out)  # everything finished: nothing is retrained
    assert again.results["timing"]["models_trained_now"] == 0
    assert json.dumps(again.results["single"]) == json.dumps(summary.results["single"])  # NaN-safe


@pytest.mark.parametrize("bad", [{"seeds": 0}, {"workers": 0}, {"triggers": ("star",)}, {"pairs": ((3, 3),)}])
def test_bad_study_specs(bad: dict[str, object]) -> None:
    from badnets.errors import ConfigError

    with pytest.raises(ConfigError):
        MnistStudySpec(**bad)  # type: ignore[arg-type]
