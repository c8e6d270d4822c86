# SPDX-License-Identifier: Apache-2.0
"""The audit's statistics by name, the calibration's inputs: read from what the detectors recorded, NaN where a
detector did not run, trigger sizes as log shares of the image."""

from __future__ import annotations

import math

from badnets.audit_result import FEATURES, AuditedModel, AuditResult, DetectorReport


def result(detectors: dict[str, DetectorReport]) -> AuditResult:
    return AuditResult(
        verdict="backdoored",
        suspected_target=2,
        decided_by="neural_cleanse",
        evidence={},
        detectors=detectors,
        model=AuditedModel("badnet-cnn", None, (1, 28, 28), tuple("0123")),
        clean_images=100,
        seconds=1.0,
        config={},
        manifest={},
    )


CLEANSE = DetectorReport(
    True,
    2,
    "anomaly_index",
    3.5,
    2.0,
    {"l1": [40.0, 50.0, 4.0, 60.0], "asr": [0.9, 0.95, 0.99, 0.97], "max_anomaly_index": 3.5},
)
DORMANT = DetectorReport(False, None, "score", 0.42, 1.0, {})
# the blend search's norms are opacity × H·W: opacities 0.4, 0.45, 0.05, 0.5
BLEND = DetectorReport(
    True,
    2,
    "anomaly_index",
    6.0,
    1.0,
    {"l1": [0.4 * 784, 0.45 * 784, 0.05 * 784, 0.5 * 784], "asr": [1.0] * 4, "max_anomaly_index": 6.0},
)


def test_features_come_from_the_detectors_records() -> None:
    features = result({"neural_cleanse": CLEANSE, "dormant_neurons": DORMANT}).features()
    assert tuple(features) == FEATURES
    assert features["nc_max_anomaly_index"] == 3.5 and features["nc_smallest_trigger_asr"] == 0.99
    assert math.isclose(features["nc_log_min_l1_share"], math.log(4 / 784))
    assert math.isclose(features["nc_log_min_over_median"], math.log(4 / 45))
    assert math.isclose(features["nc_log_median_l1_share"], math.log(45 / 784))
    assert features["dormant_max_share"] == 0.42
    assert all(math.isnan(features[name]) for name in FEATURES if name.startswith("blend_"))


def test_the_blend_search_gives_the_same_statistics_of_its_opacities() -> None:
    features = result({"neural_cleanse": CLEANSE, "blend_search": BLEND}).features()
    assert features["blend_max_anomaly_index"] == 6.0
    assert math.isclose(features["blend_log_min_l1_share"], math.log(0.05))  # the smallest opacity
    assert math.isclose(features["blend_log_min_over_median"], math.log(0.05 / 0.425))
    assert math.isclose(features["blend_log_median_l1_share"], math.log(0.425))
    assert math.isclose(features["nc_log_min_l1_share"], math.log(4 / 784))  # Neural Cleanse's are its own


def test_a_detector_that_did_not_run_leaves_its_features_nan() -> None:
    features = result({"dormant_neurons": DORMANT}).features()
    assert all(math.isnan(features[name]) for name in FEATURES if name.startswith("nc_"))
    assert features["dormant_max_share"] == 0.42


def _per_source(l1: dict[tuple[int, int], float]) -> DetectorReport:
    details = dict(CLEANSE.details)
    details |= {
        "trial_sources": [s for s, _ in l1],
        "trial_targets": [t for _, t in l1],
        "trial_l1": list(l1.values()),
    }
    return DetectorReport(True, 2, "anomaly_index", 3.5, 2.0, details)


def test_every_source_with_its_own_tiny_trigger_scores_high_and_a_plain_model_low() -> None:
    """All-to-all evidence: under s → s+1 each source's smallest trigger stands out among its targets'."""
    pairs = [(s, t) for s in range(4) for t in range(4) if s != t]
    shifted = _per_source({(s, t): 1.0 if t == (s + 1) % 4 else 40.0 + 10 * ((s + t) % 2) for s, t in pairs})
    plain = _per_source({(s, t): 30.0 + 10 * ((s + 2 * t) % 3) for s, t in pairs})
    high = result({"neural_cleanse": shifted}).features()["nc_median_source_anomaly"]
    low = result({"neural_cleanse": plain}).features()["nc_median_source_anomaly"]
    assert high > 5 and low < 2, (high, low)
    assert math.isnan(result({"neural_cleanse": CLEANSE}).features()["nc_median_source_anomaly"])  # no trials


def test_the_likeliest_target_is_the_smallest_trigger_of_the_more_outlying_search() -> None:
    assert result({"neural_cleanse": CLEANSE}).likeliest_target() == 2
    blend_elsewhere = {**BLEND.details, "l1": [0.4 * 784, 0.05 * 784, 0.45 * 784, 0.5 * 784]}
    outlying = DetectorReport(True, 1, "anomaly_index", 6.0, 1.0, blend_elsewhere)  # index 6 > Neural Cleanse's 3.5
    assert result({"neural_cleanse": CLEANSE, "blend_search": outlying}).likeliest_target() == 1
    faint = DetectorReport(False, None, "anomaly_index", 1.0, 1.0, blend_elsewhere | {"max_anomaly_index": 1.0})
    assert result({"neural_cleanse": CLEANSE, "blend_search": faint}).likeliest_target() == 2
    assert result({"dormant_neurons": DORMANT}).likeliest_target() is None
