# SPDX-License-Identifier: Apache-2.0
"""The logistic calibration: it recovers a known model, its probabilities average to the base rate, it stays
finite on separable evidence, it round-trips through JSON, and missing evidence is an error that names it."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.calibration import LogisticCalibration, fit_logistic
from badnets.errors import ConfigError
from badnets.metrics import cross_entropy


def _sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Evidence drawn from a known logistic model: p = σ(−1 + 2·a − 0.5·b), ``b`` on another scale."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, generator=g, dtype=torch.float64)
    b = 10 + 5 * torch.randn(n, generator=g, dtype=torch.float64)
    p = torch.sigmoid(-1 + 2 * a - 0.5 * (b - 10) / 5)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < p).double()
    return torch.stack([a, b], dim=1), y


def test_it_recovers_a_known_logistic_model() -> None:
    x, y = _sample(20_000, 0)
    fit = fit_logistic(x, y, ("a", "b"), version="t", l2=0.0)
    # on standardised features: a's sd is 1, b's is 5, so the true weights there are 2 and -0.5
    assert abs(fit.weights[0] - 2 * fit.scale[0]) < 0.1 and abs(fit.weights[1] - -0.5 * fit.scale[1] / 5) < 0.1
    truth = torch.sigmoid(-1 + 2 * x[:, 0] - 0.5 * (x[:, 1] - 10) / 5)
    assert abs(cross_entropy(fit.probabilities(x), y) - cross_entropy(truth, y)) < 0.01


@given(seed=st.integers(0, 10_000), l2=st.floats(0.0, 10.0))
@settings(max_examples=25, deadline=None)
def test_the_fitted_probabilities_average_to_the_base_rate(seed: int, l2: float) -> None:
    x, y = _sample(200, seed)
    fit = fit_logistic(x, y, ("a", "b"), version="t", l2=l2 + 1e-3)
    assert abs(float(fit.probabilities(x).mean()) - float(y.mean())) < 1e-6


def test_separable_evidence_stays_finite_and_ranks_right() -> None:
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    fit = fit_logistic(x, y, ("index",), version="t", l2=1.0)
    p = fit.probabilities(x)
    assert all(math.isfinite(w) for w in fit.weights) and bool((p[3:] > 0.5).all() and (p[:3] < 0.5).all())


def test_json_round_trip_and_evidence_by_name() -> None:
    x, y = _sample(500, 1)
    fit = fit_logistic(x, y, ("a", "b"), version="audit-v0", fitted_on={"round": "train"})
    back = LogisticCalibration.from_json(json.loads(json.dumps(fit.to_json())))
    assert back == fit
    assert back.probability({"b": 12.0, "a": 0.3}) == float(
        fit.probabilities(torch.tensor([[0.3, 12.0]], dtype=torch.float64))[0]
    )
    assert back.probability({"a": float("nan"), "b": back.mean[1]}) == pytest.approx(
        float(torch.sigmoid(torch.tensor(back.bias, dtype=torch.float64)))
    )  # NaN evidence sits at the train mean
    with pytest.raises(ConfigError, match=r"lacks \['b'\]"):
        back.probability({"a": 1.0})


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), r"must be \(N, 1\)"),
        (torch.zeros(4, 1), torch.tensor([0, 0, 0, 0]), "both present"),
        (torch.zeros(4, 1), torch.tensor([0, 2, 0, 1]), "labels must be 0"),
    ],
)
def test_bad_fits_say_what_is_wrong(x: torch.Tensor, y: torch.Tensor, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fit_logistic(x, y, ("only",), version="t")


def test_a_calibration_applies_only_to_audits_run_with_the_settings_it_was_fitted_on() -> None:
    from badnets.audit import calibrated
    from badnets.audit_result import FEATURES, AuditedModel, AuditResult

    x, y = _sample(200, 3)
    evidence = torch.cat([x, torch.zeros(len(x), len(FEATURES) - 2, dtype=torch.float64)], dim=1)
    fitted_settings = {"detectors": ["neural_cleanse"], "clean_images": 1000, "search_steps": 600, "per_source": True}
    fit = fit_logistic(evidence, y, FEATURES, version="round:train:1", fitted_on={"audits": [fitted_settings]})
    result = AuditResult(
        "clean", None, "neural_cleanse", {}, {}, AuditedModel("m", None, (1, 28, 28), tuple("0123456789")), 1000,
        1.0, {}, {},
    )  # fmt: skip
    assert fit.fits(fitted_settings) and not fit.fits(fitted_settings | {"clean_images": 200})
    scored = calibrated(result, fitted_settings, fit)
    assert scored.calibration == "round:train:1"
    # no detector ran: every feature is NaN, imputed at the train means, so the probability is the bias's
    assert scored.backdoor_probability == pytest.approx(1 / (1 + math.exp(-fit.bias)))
    other = calibrated(result, fitted_settings | {"search_steps": 100}, fit)
    assert other.backdoor_probability is None and "other settings" in other.calibration
    assert calibrated(result, fitted_settings, None) == result
    assert AuditResult.from_json(scored.to_json()) == scored


def test_where_a_calibration_applies_its_probability_decides_the_verdict() -> None:
    """A model Neural Cleanse passes but the calibration scores ≥ 0.5 is backdoored, suspecting the class of the
    smallest trigger; a model Neural Cleanse flags but the calibration scores < 0.5 is clean, and Neural Cleanse's
    flag is evidence that disagrees."""
    from badnets.audit import CALIBRATED, calibrated
    from badnets.audit_result import FEATURES, AuditedModel, AuditResult, DetectorReport
    from badnets.calibration import LogisticCalibration

    settings = {"detectors": ["neural_cleanse", "dormant_neurons"], "clean_images": 100}
    weights = tuple(1.0 if name == "nc_max_anomaly_index" else 0.0 for name in FEATURES)
    fit = LogisticCalibration(
        "t", FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), weights, -2.0, 1.0, {"audits": [settings]}
    )  # p = σ(anomaly index − 2)
    details = {"l1": [40.0, 50.0, 4.0, None], "asr": [0.9, 0.95, 0.99, None]}
    dormant = DetectorReport(True, 1, "score", 0.95, 1.0, {})

    def audit(flagged: int | None, index: float) -> AuditResult:
        cleanse = DetectorReport(
            flagged is not None, flagged, "anomaly_index", index, 2.0, details | {"max_anomaly_index": index}
        )
        return AuditResult(
            "clean" if flagged is None else "backdoored", flagged, "neural_cleanse",
            {"dormant_neurons": "disagrees"},
            {"neural_cleanse": cleanse, "dormant_neurons": dormant},
            AuditedModel("m", None, (1, 28, 28), tuple("0123")), 100, 1.0, {}, {},
        )  # fmt: skip

    missed = calibrated(audit(None, 2.5), settings, fit)  # p = σ(0.5) ≈ 0.62
    assert (missed.verdict, missed.suspected_target, missed.decided_by) == ("backdoored", 2, CALIBRATED)
    assert missed.evidence == {"neural_cleanse": "silent", "dormant_neurons": "disagrees"}
    false_alarm = calibrated(audit(2, 1.5), settings, fit)  # p = σ(−0.5) ≈ 0.38
    assert (false_alarm.verdict, false_alarm.suspected_target) == ("clean", None)
    assert false_alarm.evidence == {"neural_cleanse": "disagrees", "dormant_neurons": "disagrees"}
    same = calibrated(audit(2, 4.0), settings, fit)
    assert (same.verdict, same.suspected_target, same.evidence["neural_cleanse"]) == ("backdoored", 2, "agrees")


def test_the_shipped_calibration_applies_to_a_default_audit_of_each_round_dataset() -> None:
    """The audit's defaults are the round's audit settings, so the calibration the package ships decides a
    default ``badnets audit`` of an MNIST or GTSRB-43 model (and a calibration shipped for other settings would
    silently never apply)."""
    from importlib import resources

    from badnets.audit import AuditSpec, audit_options, audit_settings
    from badnets.calibration import shipped_calibration

    shipped = resources.files("badnets").joinpath("calibrations", "audit.json")
    assert (shipped_calibration() is None) == (not shipped.is_file())
    if not shipped.is_file():
        pytest.skip("no calibration shipped (make calibration ships the audit round's)")
    calibration = shipped_calibration()
    assert calibration is not None and calibration.fitted_on["round"] == "train"
    for dataset in ("mnist", "gtsrb-43"):
        spec = AuditSpec(model="m", dataset=dataset, options=audit_options(dataset, seed=0))
        assert calibration.fits(audit_settings(spec)), dataset
        assert not calibration.fits(audit_settings(replace(spec, clean_images=500))), dataset
