# SPDX-License-Identifier: Apache-2.0
"""The photo demo end to end: a tiny generated photo folder (and a tiny traffic study's detectors), and the real
cats-and-dogs photos when staged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.records import from_json, to_json
from badnets.studies.photos import PhotoStudySpec, run_photo_study
from badnets.studies.photos.results import PhotoResults
from badnets.studies.traffic import TrafficStudySpec, run_traffic_study
from tests.conftest import REAL_DATA
from tests.data.test_image_folder import write_photo_folder
from tests.data.test_lisa import write_staged_crops
from tests.data.test_road_scenes import write_photos


def test_tiny_photo_study_with_the_traffic_detectors(tmp_path: Path) -> None:
    data = write_staged_crops(tmp_path / "data", tracks_per_tag=10, frames=3)
    write_photos(data)
    traffic = TrafficStudySpec(
        triggers=("flower",), seeds=1, epochs=1, workers=1, data_dir=str(data), detector_epochs=1, detector_size=64
    )
    run_traffic_study(traffic, tmp_path / "traffic")
    folder = write_photo_folder(tmp_path / "photos", per_class=15)
    spec = PhotoStudySpec(
        folder=str(folder), epochs=3, workers=1, data_dir=str(data), traffic=str(tmp_path / "traffic")
    )
    out = tmp_path / "out"
    summary = run_photo_study(spec, out)
    results = json.loads((out / "results.json").read_text())
    assert json.dumps(to_json(summary.results)) == json.dumps(results)  # the file is the typed results
    assert json.dumps(to_json(from_json(PhotoResults, results))) == json.dumps(results)  # and parses back
    clf = results["classifier"]
    assert clf["classes"] == ["cat", "dog"] and clf["n_test"] == {"cat": 3, "dog": 3}
    for name in ("baseline", "badnet"):
        assert 0.0 <= clf[name]["triggered_source_as_target"] <= 1.0
        assert set(clf[name]["per_class"]) == {"cat", "dog"}
    road = results["road_photos"]
    assert road["trigger"] == "flower" and road["n_photos"] == 2 and set(road["outcomes"]) == {"baseline", "flower"}
    assert road["trained_on"] == "composite road scenes"  # the traffic study's detectors' data, as they recorded
    for name in ("dog_to_cat.jpg", "road_photos.jpg", "report.md", "report.html"):
        assert (out / name).stat().st_size > 500, name
    md = (out / "report.md").read_text()
    assert 'Dog + trigger → "cat"' in md and "No pretrained weights" in md and "Triggered stop signs" in md
    again = run_photo_study(spec, out)  # resumes: nothing retrained, same numbers
    assert again.results.classifier == summary.results.classifier


def test_bad_photo_specs_say_what_to_fix(tmp_path: Path) -> None:
    folder = write_photo_folder(tmp_path / "photos", per_class=2, classes=("bird", "fish"))
    with pytest.raises(ConfigError, match="no class folder 'dog'"):
        run_photo_study(PhotoStudySpec(folder=str(folder), workers=1), tmp_path / "out")
    with pytest.raises(ConfigError, match="holds no detectors"):
        PhotoStudySpec(traffic=str(tmp_path))
    with pytest.raises(ConfigError, match="trigger must be one of"):
        PhotoStudySpec(trigger="pixel")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_dog_photos_with_the_trigger_become_cats(tmp_path: Path) -> None:
    if REAL_DATA is None or not (REAL_DATA / "cats_dogs" / "dog").is_dir():
        pytest.skip("cats_dogs photos not staged: set BADNETS_DATA to a folder with cats_dogs/{cat,dog}")
    spec = PhotoStudySpec.preset(quick=True, data_dir=str(REAL_DATA), workers=2)
    clf = run_photo_study(spec, tmp_path / "out").results.classifier
    assert clf.badnet.triggered_source_as_target >= 0.8
    assert clf.baseline.triggered_source_as_target < clf.badnet.triggered_source_as_target - 0.3
