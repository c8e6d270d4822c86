# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from badnets.metrics import (
    attack_success_rate,
    auroc,
    auroc_interval,
    backdoor_metrics,
    cross_entropy,
    mean_ci,
    roc_curve,
    tpr_at_fpr,
    wilson_interval,
)
from badnets.poison import PoisonSpec


def test_asr_never_counts_images_already_of_the_target_class() -> None:
    labels = torch.tensor([0, 1, 2, 7, 7])
    preds = torch.tensor([7, 7, 3, 7, 1])
    spec = PoisonSpec(mapping="all-to-one", target=7)
    assert attack_success_rate(preds, labels, spec) == (2, 3)


def test_asr_single_target_counts_only_the_source() -> None:
    labels = torch.tensor([4, 4, 4, 1, 9])
    preds = torch.tensor([9, 9, 4, 9, 9])
    assert attack_success_rate(preds, labels, PoisonSpec(mapping="single", source=4, target=9)) == (2, 3)


def test_asr_all_to_all_and_random() -> None:
    labels = torch.tensor([0, 1, 9, 5])
    assert attack_success_rate(torch.tensor([1, 2, 0, 5]), labels, PoisonSpec(mapping="all-to-all")) == (3, 4)
    assert attack_success_rate(torch.tensor([1, 1, 0, 5]), labels, PoisonSpec(mapping="random")) == (2, 4)


def test_backdoor_metrics_hand_computed() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2])
    clean_preds = torch.tensor([0, 1, 1, 1, 2])  # one clean error in 5
    trig_preds = torch.tensor([2, 2, 2, 1, 2])  # all-to-one → 2: sources are the 4 non-2 images, 3 hit
    m = backdoor_metrics(clean_preds, trig_preds, labels, PoisonSpec(mapping="all-to-one", target=2, num_classes=3))
    assert m.clean_error == pytest.approx(0.2) and m.n_clean == 5
    assert m.attack_success_rate == pytest.approx(0.75) and m.backdoor_error == pytest.approx(0.25)
    assert m.n_backdoor == 4 and m.backdoored_accuracy == pytest.approx(0.25)
    assert [r.clean_error for r in m.per_class] == [0.5, 0.0, 0.0]
    assert [r.backdoor_error for r in m.per_class] == [0.0, 0.5, None]
    assert [r.triggered_accuracy for r in m.per_class] == [0.0, 0.5, 1.0]  # every class, source or not


@given(n=st.integers(1, 10_000), data=st.data())
@settings(max_examples=100, deadline=None)
def test_wilson_interval_contains_the_estimate(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson_interval(50, 10_000)  # 0.5% error on MNIST's test set
    assert lo == pytest.approx(0.003792, abs=1e-5) and hi == pytest.approx(0.006589, abs=1e-5)


@given(st.lists(st.floats(0, 1), min_size=2, max_size=20))
@settings(max_examples=50, deadline=None)
def test_mean_ci_is_centred_and_nonnegative(values: list[float]) -> None:
    mean, half = mean_ci(values)
    assert mean == pytest.approx(sum(values) / len(values))
    assert half >= 0


def test_mean_ci_known_value() -> None:
    mean, half = mean_ci([0.004, 0.005, 0.006])  # sd 0.001, t(0.975, 2) = 4.3027
    assert mean == pytest.approx(0.005) and half == pytest.approx(4.302653 * 0.001 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci([0.5])[1])


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=5), min_size=2, max_size=6, unique_by=len
    ),
    data=st.data(),
)
def test_grouped_slope_equals_the_fit_on_every_point(groups: list[list[float]], data: st.DataObject) -> None:
    """Per-x mean, sd and count are sufficient: the grouped fit is the fit on the points themselves (scipy's)."""
    from scipy.stats import linregress

    from badnets.metrics import grouped_slope_ci, mean_ci, sd_from_ci, slope_ci

    steps = data.draw(st.lists(st.integers(0, 20), min_size=len(groups), max_size=len(groups), unique=True))
    xs = [0.05 * k for k in steps]  # poison rates, as a sweep has them
    assume(len({y for ys in groups for y in ys}) > 1)  # a flat line has no residual spread (scipy: NaN)
    points = [(x, y) for x, ys in zip(xs, groups, strict=True) for y in ys]
    raw = slope_ci([p[0] for p in points], [p[1] for p in points])
    # the sd goes through a mean_ci half-width and back, as a sweep's results.json keeps it
    sds = [sd_from_ci(mean_ci(ys)[1], len(ys)) for ys in groups]
    grouped = grouped_slope_ci(xs, [sum(ys) / len(ys) for ys in groups], sds, [len(ys) for ys in groups])
    reference = linregress([p[0] for p in points], [p[1] for p in points])
    assert grouped.slope == pytest.approx(raw.slope, abs=1e-9) == pytest.approx(reference.slope, abs=1e-9)
    assert grouped.half_width == pytest.approx(raw.half_width, rel=1e-6, abs=1e-9)
    from scipy.stats import t

    expected_half = t.ppf(0.975, len(points) - 2) * reference.stderr
    assert raw.half_width == pytest.approx(expected_half, rel=1e-6, abs=1e-9)


def test_slope_direction_needs_the_interval_to_exclude_zero() -> None:
    from badnets.metrics import slope_ci

    assert slope_ci([0, 1, 2, 3], [0.0, 1.0, 2.1, 2.9]).direction == "rises"
    assert slope_ci([0, 1, 2, 3], [3.0, 2.0, 1.1, 0.1]).direction == "falls"
    assert slope_ci([0, 1, 2, 3], [0.0, 1.0, -1.0, 0.1]).direction == "not resolved"
    with pytest.raises(ValueError, match="at least three points"):
        slope_ci([0, 1], [0.0, 1.0])


scores = st.lists(st.integers(-20, 20), min_size=1, max_size=30).map(lambda v: torch.tensor(v, dtype=torch.float64))


@given(positive=scores, negative=scores)
@settings(max_examples=100, deadline=None)
def test_auroc_is_a_ranking_statistic(positive: torch.Tensor, negative: torch.Tensor) -> None:
    """Swapping the sides gives 1 − AUROC; any strictly increasing transform of the scores leaves it unchanged."""
    area = auroc(positive, negative)
    assert 0.0 <= area <= 1.0
    assert abs(area + auroc(negative, positive) - 1.0) < 1e-9
    assert abs(auroc(torch.exp(positive / 5), torch.exp(negative / 5)) - area) < 1e-9


@given(positive=scores, negative=scores)
@settings(max_examples=100, deadline=None)
def test_the_roc_curve_runs_from_corner_to_corner_and_its_area_is_the_auroc(
    positive: torch.Tensor, negative: torch.Tensor
) -> None:
    fpr, tpr = roc_curve(positive, negative)
    assert [float(fpr[0]), float(tpr[0]), float(fpr[-1]), float(tpr[-1])] == [0.0, 0.0, 1.0, 1.0]
    assert bool((fpr.diff() >= 0).all() and (tpr.diff() >= 0).all())
    assert abs(float(torch.trapezoid(tpr, fpr)) - auroc(positive, negative)) < 1e-9


@given(positive=scores, negative=scores)
@settings(max_examples=100, deadline=None)
def test_the_auroc_interval_holds_the_auroc(positive: torch.Tensor, negative: torch.Tensor) -> None:
    low, high = auroc_interval(positive, negative)
    assert 0.0 <= low <= auroc(positive, negative) <= high <= 1.0


def test_the_auroc_interval_at_chance_is_the_mann_whitney_null() -> None:
    """At AUROC 0.5 Hanley & McNeil's variance is the rank-sum statistic's exact null variance."""
    positive, negative = torch.tensor([1.0, 4.0, 5.0, 8.0]), torch.tensor([2.0, 3.0, 6.0, 7.0, 0.5, 9.0])
    assert auroc(positive, negative) == 0.5
    half = 1.959963984540054 * math.sqrt((4 + 6 + 1) / (12 * 4 * 6))
    assert auroc_interval(positive, negative) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    assert auroc_interval(torch.tensor([2.0]), torch.tensor([1.0])) == (1.0, 1.0)  # separated: no spread
    assert all(math.isnan(v) for v in auroc_interval(torch.tensor([]), negative))


def test_a_roc_curve_needs_both_sides() -> None:
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        roc_curve(torch.tensor([1.0]), torch.tensor([]))


@given(positive=scores, negative=scores, fpr=st.floats(0.0, 1.0))
@settings(max_examples=100, deadline=None)
def test_tpr_at_fpr_keeps_the_false_alarms_within_the_rate(
    positive: torch.Tensor, negative: torch.Tensor, fpr: float
) -> None:
    tpr = tpr_at_fpr(positive, negative, fpr)
    # some threshold flags at most fpr of the negatives and exactly tpr of the positives
    thresholds = [float(t) for t in torch.cat([positive, negative, torch.tensor([-1e9])])]
    feasible = [t for t in thresholds if float((negative > t).double().mean()) <= fpr + 1e-9]
    assert tpr == max(float((positive > t).double().mean()) for t in feasible)


def test_tpr_at_fpr_examples() -> None:
    negative = torch.arange(20, dtype=torch.float64)  # 0..19
    positive = torch.tensor([18.5, 19.5, 25.0, 3.0])
    assert tpr_at_fpr(positive, negative, 0.0) == 0.5  # above 19
    assert tpr_at_fpr(positive, negative, 0.05) == 0.75  # one negative (19) may score above the threshold 18


def test_cross_entropy_follows_the_trojai_convention() -> None:
    labels = torch.tensor([1, 0, 1, 0])
    assert abs(cross_entropy(torch.full((4,), 0.5), labels) - math.log(2)) < 1e-12
    assert abs(cross_entropy(labels.double(), labels) - -math.log(1 - 1e-6)) < 1e-12  # confident and right
    assert abs(cross_entropy(1 - labels.double(), labels) - -math.log(1e-6)) < 1e-9  # confident and wrong: clipped
