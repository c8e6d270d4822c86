# SPDX-License-Identifier: Apache-2.0
"""The defense scoreboard end to end on tiny generated MNIST (few steps): every model evaluated, the report written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.records import from_json, to_json
from badnets.studies.defenses import DefenseStudySpec, run_defense_study


def test_bad_spec() -> None:
    with pytest.raises(ConfigError, match="clean seed"):
        DefenseStudySpec(clean_seeds=0)


@pytest.mark.slow  # 204 s in a suite run that shared the 2 cores
def test_tiny_scoreboard(tiny_mnist: Path, tmp_path: Path) -> None:
    spec = DefenseStudySpec(
        quick=True,
        clean_seeds=1,
        mnist_epochs=1,
        traffic=False,
        clean_images=100,
        nc_steps=20,
        repair_epochs=1,
        workers=1,
        data_dir=str(tiny_mnist),
    )
    summary = run_defense_study(spec, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["models"]) == 7  # 1 clean + 6 BadNets
    assert json.dumps(to_json(summary.results)) == json.dumps(results)  # the file is the typed results
    first = results["models"][0]
    for part in ("audit", "strip", "training_data"):
        assert part in first
    assert {t["target"] for t in results["targets"]} >= {"audit FPR on clean models"}
    assert all("repair" in m for m in results["models"] if m["kind"] != "clean")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Model-level detection" in md and "Every model" in md and "Mitigation" in md
    assert summary.console_table() is not None
    again = run_defense_study(spec, tmp_path / "out")  # resumes: nothing retrained or re-evaluated
    assert json.dumps(to_json(again.results.models)) == json.dumps(results["models"])


def test_the_lisa_random_target_badnet_records_the_lisa_class_count(tmp_path: Path) -> None:
    """The scoreboard's random-target sign BadNet once recorded num_classes=4 for the 3-class LISA model."""
    from badnets.data import LISA_CLASSES
    from badnets.studies.defenses import build_jobs

    jobs = build_jobs(DefenseStudySpec.preset(quick=False), tmp_path)
    random = [j.spec for j in jobs if j.name == "lisa/flower-random"]
    assert len(random) == 1 and random[0].poison.num_classes == len(LISA_CLASSES) == 3  # type: ignore[attr-defined]


def test_a_negative_seed_is_refused_when_the_spec_is_built() -> None:
    from badnets.experiments.attack import AttackSpec

    with pytest.raises(ConfigError, match="seed must be >= 0"):
        AttackSpec(dataset="mnist", seed=-1)


def test_interval_ends_stay_within_what_the_value_can_be() -> None:
    # the committed scoreboard's STRIP AUROCs (mean 0.979 over 10 models) have a t-interval that reaches past 1
    from badnets.studies.defenses.analysis import judge
    from badnets.studies.defenses.results import DefenseResults

    committed = Path(__file__).parents[2] / "docs" / "results" / "defenses" / "results.json"
    data = json.loads(committed.read_text())
    targets = judge(from_json(DefenseResults, {**data, "targets": [], "targets_judged": None}))
    strip = next(t for t in targets if t.target.startswith("STRIP AUROC"))
    low, high = (float(v) for v in str(strip.ours).split("[")[1].split("]")[0].split(", "))
    assert 0.9 < low <= high <= 1.0
