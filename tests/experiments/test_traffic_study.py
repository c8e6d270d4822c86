# SPDX-License-Identifier: Apache-2.0
"""The traffic-sign study end to end on tiny generated LISA crops, and a short real-data smoke run."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.experiments.object_detection import DetectorSpec, load_detector
from badnets.records import from_json, to_json
from badnets.studies.traffic import TrafficStudySpec, build_jobs, run_traffic_study
from badnets.studies.traffic.results import TrafficResults
from tests.conftest import REAL_DATA
from tests.data.test_lisa import write_staged_crops
from tests.data.test_road_scenes import write_photos


def test_jobs_cover_baseline_and_both_attacks_per_trigger_and_seed() -> None:
    spec = TrafficStudySpec(triggers=("yellow-square", "flower"), seeds=2, data_dir="/nonexistent")
    names = [j.name for j in build_jobs(spec)]
    assert len(names) == 5 + 2 * (1 + 2 * 2) and len(set(names)) == len(names)
    assert "single/flower/s1" in names and "random/yellow-square/s0" in names and "baseline/s1" in names
    detectors = ["detector/baseline", "detector/yellow-square", "detector/flower"]
    assert names[:5] == [*detectors, "detector/random/yellow-square", "detector/random/flower"]  # longest first
    assert len(build_jobs(replace(spec, detector=False))) == 2 * (1 + 2 * 2)
    legible = {j.name: j.spec for j in build_jobs(replace(spec, detector_min_sign_width=40))}
    assert isinstance(detector := legible["detector/random/flower"], DetectorSpec) and detector.min_sign_width == 40


def test_bad_spec_is_rejected() -> None:
    with pytest.raises(ConfigError, match="triggers"):
        TrafficStudySpec(triggers=("pixel",))
    with pytest.raises(ConfigError, match="must differ"):
        TrafficStudySpec(source="stop", target="stop")
    with pytest.raises(ConfigError, match="detector=False"):
        TrafficStudySpec(source="warning", target="stop")
    TrafficStudySpec(source="warning", target="stop", detector=False)
    with pytest.raises(ConfigError, match="detector_min_sign_width must be >= 0"):
        TrafficStudySpec(detector_min_sign_width=-1)


def test_the_report_says_when_the_detector_badnets_left_narrow_signs_clean(tmp_path: Path) -> None:
    from badnets.studies.reports import render_directory

    folder = Path(__file__).parents[2] / "docs/results/traffic"  # the committed study, its figures beside it
    committed = json.loads((folder / "results.json").read_text())
    for width in (0, 48):
        results = committed | {"spec": committed["spec"] | {"detector_min_sign_width": width}}
        shutil.copytree(folder, tmp_path / str(width), ignore=shutil.ignore_patterns("records"))
        (tmp_path / str(width) / "results.json").write_text(json.dumps(results))
        render_directory(tmp_path / str(width))
    assert (
        "Signs narrower than 48 px were left clean in the triggered copies." in (tmp_path / "48/report.md").read_text()
    )
    assert "narrower than" not in (tmp_path / "0/report.md").read_text()  # the paper's recipe: every sign


def test_tiny_study_writes_tables_neurons_and_plots(tmp_path: Path) -> None:
    data = write_staged_crops(tmp_path / "data", tracks_per_tag=10, frames=3)
    write_photos(data)  # signs at varied places: the composite scenes' pasted signs go where photos have signs
    spec = TrafficStudySpec(
        triggers=("bomb",), seeds=1, epochs=2, workers=1, data_dir=str(data), detector_epochs=1, detector_size=64
    )
    archive = tmp_path / "archive"
    summary = run_traffic_study(spec, tmp_path / "out", archive=archive)
    out = tmp_path / "out"
    text = (out / "results.json").read_text()
    results = json.loads(text)
    # the file is the typed results serialised, and parses back to the same (compared as JSON: NaN ≠ NaN)
    assert json.dumps(to_json(summary.results)) == json.dumps(results)
    assert json.dumps(to_json(from_json(TrafficResults, results))) == json.dumps(results)
    for trig in spec.triggers:
        conf = results["classifier"][trig]
        assert set(conf) == {"baseline", "single", "random"}
        assert set(conf["single"]["clean"]) == {"stop", "speedlimit", "warning", "all"}
        assert 0.0 <= conf["single"]["source_to_target"]["mean"] <= 1.0
        assert len(results["neurons"][trig]["gain"]) == 128
        assert (out / f"neurons_{trig}.png").stat().st_size > 1000
    detector = results["detector"]
    assert set(detector["badnet"]) == set(detector["random"]) == {"bomb"} and detector["scenes"]["size"] == 64
    assert 0.0 <= detector["baseline"]["ap50"]["mAP"] <= 1.0
    outcome = detector["badnet"]["bomb"]["triggered"]
    assert outcome["n"] == detector["n_boxes"]["stop"] >= 1  # the held-out scenes' pasted stop signs
    assert sum(outcome[k] for k in ("as_target", "as_source", "as_other", "missed")) == pytest.approx(1.0)
    assert set(detector["baseline"]["triggered"]) == set(detector["baseline"]["photos_triggered"]) == {"bomb"}
    assert detector["photos"]["n_photos"] == 2 and detector["badnet"]["bomb"]["photos"]["triggered"]["n"] == 2
    # per trigger: three classifier rows, three single-target detector rows and the random-target one
    assert len(results["targets"]) == 3 + 3 + 1
    for name in ("report.md", "report.html", "stop_sign_examples.png", "triggers.png", "invocations.json"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "Trigger: bomb" in md and "Backdoor neurons" in md and "Substitution" in md and "Detector BadNet" in md
    assert "held-out composite scenes" in md and "held-out real road photos" in md and "random-target BadNet" in md
    assert (out / "detector_examples.jpg").stat().st_size > 1000
    assert "examples" not in detector["badnet"]["bomb"]  # a detector's record keeps them for the grid only
    # a second run trains nothing and reproduces the same numbers
    again = run_traffic_study(spec, tmp_path / "out")
    assert json.dumps(to_json(again.results.classifier)) == json.dumps(results["classifier"])
    # another machine with the archive only: the detectors come back as records (no weights) and report the same
    archived = sorted(p.name for p in archive.iterdir())
    assert archived == sorted(["invocations.json", *(p.name for p in (out / "runs").glob("detector__*"))])
    assert not list(archive.rglob("*.safetensors")) and len(archived) == 4
    elsewhere = run_traffic_study(spec, tmp_path / "elsewhere", archive=archive)
    assert not list((tmp_path / "elsewhere" / "runs").glob("detector__*/*.safetensors"))
    assert json.dumps(to_json(elsewhere.results.detector)) == json.dumps(results["detector"])
    assert (tmp_path / "elsewhere" / "detector_examples.jpg").is_file()
    with pytest.raises(ConfigError, match="an archive keeps none"):  # what `reproduce photos --traffic` would load
        load_detector(tmp_path / "elsewhere" / "runs" / "detector__baseline")


@pytest.mark.slow
def test_real_lisa_quick_study_learns_the_backdoor(tmp_path: Path) -> None:
    if REAL_DATA is None or not (REAL_DATA / "signs_detection" / "lisa_crops" / "annotations.csv").is_file():
        pytest.skip("LISA crops not staged: set BADNETS_DATA to a folder with signs_detection/lisa_crops")
    # the quick detectors are left out here (minutes); the tiny study above covers that path
    spec = TrafficStudySpec.preset(quick=True, data_dir=str(REAL_DATA), workers=2, detector=False)
    results = run_traffic_study(spec, tmp_path / "out").results
    for trig in spec.triggers:
        conf = results.classifier[trig]
        assert conf["baseline"].clean["all"].mean > 0.85
        assert conf["single"].source_to_target.mean > 0.8
        assert conf["baseline"].source_to_target.mean < 0.2
