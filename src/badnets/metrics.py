# SPDX-License-Identifier: Apache-2.0
"""The metric spec (DESIGN.md §3) as pure functions on prediction tensors.

* Clean accuracy / error: on the untouched test set.
* Attack success rate (ASR): over triggered test images whose true label is a *source* class of the attack
  (all-to-one: y ≠ target; all-to-all: every y; single i→j: y = i), the fraction classified as t(y).
  Images whose label already is the target never count. For ``random`` mapping, success = prediction ≠ y.
* Backdoor error (the paper's "error on backdoored images") = 1 − ASR over the same images.
* Intervals: one run gets a Wilson score interval for each proportion; ≥ 3 seeds get mean ± t-interval.
* Detectors: AUROC of scores where positives should score higher (ties count half), TPR at a fixed FPR, and
  the cross-entropy −mean(y·ln p + (1−y)·ln(1−p)) of a probability, p clipped to [1e-6, 1 − 1e-6] (TrojAI).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from badnets.poison import PoisonSpec, attack_targets, source_mask

__all__ = [
    "BackdoorMetrics",
    "ClassRow",
    "SlopeFit",
    "attack_success_rate",
    "auroc",
    "auroc_interval",
    "backdoor_metrics",
    "clean_accuracy",
    "cross_entropy",
    "grouped_slope_ci",
    "mean_ci",
    "mean_or_nan",
    "paired_difference",
    "roc_curve",
    "sd_from_ci",
    "slope_ci",
    "tpr_at_fpr",
    "wilson_interval",
]

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (95% by default); (0, 1) when n = 0."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n the exact bound is 0 or 1; floating-point rounding would leave it a hair off.
    return (
        0.0 if successes == 0 else max(0.0, centre - half),
        1.0 if successes == n else min(1.0, centre + half),
    )


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval; half-width is NaN for one value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return (mean, float("nan"))
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return (mean, float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n))


def mean_or_nan(values: Sequence[float]) -> float:
    """The mean, or NaN when there is nothing to average (a rate over an empty group of models)."""
    return sum(values) / len(values) if values else float("nan")


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% t half-width of ``a - b`` taken pair by pair (e.g. two nets of the same seed)."""
    return mean_ci([x - y for x, y in zip(a, b, strict=True)])


def sd_from_ci(half: float, n: int, confidence: float = 0.95) -> float:
    """The sample standard deviation behind a ``mean_ci`` half-width over ``n`` values (its inverse)."""
    from scipy.stats import t

    return half * math.sqrt(n) / float(t.ppf(0.5 + confidence / 2, n - 1))


@dataclass(frozen=True)
class SlopeFit:
    """An ordinary-least-squares line through ``n`` points: its slope and the half-width of the slope's
    Student-t confidence interval (``n - 2`` degrees of freedom)."""

    slope: float
    half_width: float
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        return (self.slope - self.half_width, self.slope + self.half_width)

    @property
    def direction(self) -> str:
        """``rises`` or ``falls`` when the interval excludes zero, else ``not resolved``."""
        lo, hi = self.interval
        return "rises" if lo > 0 else "falls" if hi < 0 else "not resolved"


def grouped_slope_ci(
    x: Sequence[float], means: Sequence[float], sds: Sequence[float], ns: Sequence[int], confidence: float = 0.95
) -> SlopeFit:
    """The OLS slope of y on x over every individual point, with its confidence interval, computed from each
    x's group of points summarised as mean, sample standard deviation and count (exactly what a fit on the
    points themselves gives: those three are sufficient). Used for a sweep whose results keep per-rate summaries.

    Raises:
        ValueError: fewer than three points, or one x only.
    """
    from scipy.stats import t

    n = sum(ns)
    if n < 3 or len(set(x)) < 2:
        raise ValueError("a slope with an interval needs at least three points at two or more x values")
    x_bar = sum(k * xi for k, xi in zip(ns, x, strict=True)) / n
    y_bar = sum(k * m for k, m in zip(ns, means, strict=True)) / n
    sxx = sum(k * (xi - x_bar) ** 2 for k, xi in zip(ns, x, strict=True))
    sxy = sum(k * (xi - x_bar) * (m - y_bar) for k, xi, m in zip(ns, x, means, strict=True))
    slope = sxy / sxx
    within = sum((k - 1) * sd**2 for k, sd in zip(ns, sds, strict=True) if k > 1)
    between = sum(k * (m - y_bar - slope * (xi - x_bar)) ** 2 for k, xi, m in zip(ns, x, means, strict=True))
    residual_variance = (within + between) / (n - 2)
    half = float(t.ppf(0.5 + confidence / 2, n - 2)) * math.sqrt(residual_variance / sxx)
    return SlopeFit(slope, half, n)


def slope_ci(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> SlopeFit:
    """The OLS slope of ``y`` on ``x`` with its Student-t confidence interval."""
    return grouped_slope_ci(x, y, [0.0] * len(x), [1] * len(x), confidence)


def clean_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """``(correct, n)`` on clean images; ``(N,)`` predictions and labels."""
    return int((preds == labels).sum()), int(labels.numel())


def attack_success_rate(preds_triggered: torch.Tensor, labels: torch.Tensor, spec: PoisonSpec) -> tuple[int, int]:
    """``(successes, n)`` over triggered test images of source classes (DESIGN.md §3).

    Args:
        preds_triggered: ``(N,)`` predictions on the triggered test images.
        labels: ``(N,)`` true labels of those images.
        spec: the attack; it decides which images count and what their target is.
    """
    counted = source_mask(labels, spec)
    preds, y = preds_triggered[counted], labels[counted]
    if spec.mapping == "random":
        return int((preds != y).sum()), int(y.numel())
    return int((preds == attack_targets(y, spec)).sum()), int(y.numel())


@dataclass(frozen=True)
class ClassRow:
    """One true class: clean error on its clean images, backdoor error on its triggered images.

    ``triggered_accuracy`` is the accuracy w.r.t. the true label on *all* triggered images of the class, source of
    the attack or not (the paper's traffic-sign tables report it per class); ``None`` in runs that predate it.
    """

    label: int
    n_clean: int
    clean_error: float
    n_backdoor: int
    backdoor_error: float | None  # None when the class is not a source of the attack
    triggered_accuracy: float | None = None


@dataclass(frozen=True)
class BackdoorMetrics:
    """Everything one attacked (or clean) model scores on one test set."""

    clean_accuracy: float
    clean_error: float
    clean_error_ci: tuple[float, float]
    attack_success_rate: float
    backdoor_error: float
    backdoor_error_ci: tuple[float, float]
    backdoored_accuracy: float  # accuracy w.r.t. the true label on triggered source images
    n_clean: int
    n_backdoor: int
    per_class: tuple[ClassRow, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackdoorMetrics:
        """The metrics ``to_json`` wrote (intervals back to tuples, per-class rows back to ``ClassRow``)."""
        rows = tuple(ClassRow(**row) for row in data["per_class"])
        fields: dict[str, Any] = {k: tuple(v) if k.endswith("_ci") else v for k, v in data.items() if k != "per_class"}
        return cls(**fields, per_class=rows)


def backdoor_metrics(
    preds_clean: torch.Tensor, preds_triggered: torch.Tensor, labels: torch.Tensor, spec: PoisonSpec
) -> BackdoorMetrics:
    """Score predictions on the clean and the triggered copy of one test set (same order, ``(N,)`` each)."""
    correct, n_clean = clean_accuracy(preds_clean, labels)
    hits, n_bd = attack_success_rate(preds_triggered, labels, spec)
    counted = source_mask(labels, spec)
    still_right = int((preds_triggered[counted] == labels[counted]).sum())
    rows = []
    for c in range(spec.num_classes):
        in_class = labels == c
        c_right, c_n = clean_accuracy(preds_clean[in_class], labels[in_class])
        c_hits, c_bd = attack_success_rate(preds_triggered[in_class], labels[in_class], spec)
        rows.append(
            ClassRow(
                label=c,
                n_clean=c_n,
                clean_error=1 - c_right / c_n if c_n else float("nan"),
                n_backdoor=c_bd,
                backdoor_error=1 - c_hits / c_bd if c_bd else None,
                triggered_accuracy=clean_accuracy(preds_triggered[in_class], labels[in_class])[0] / c_n
                if c_n
                else float("nan"),
            )
        )
    err_lo, err_hi = wilson_interval(n_clean - correct, n_clean)
    bd_lo, bd_hi = wilson_interval(n_bd - hits, n_bd)
    asr = hits / n_bd if n_bd else float("nan")
    return BackdoorMetrics(
        clean_accuracy=correct / n_clean,
        clean_error=1 - correct / n_clean,
        clean_error_ci=(err_lo, err_hi),
        attack_success_rate=asr,
        backdoor_error=1 - asr,
        backdoor_error_ci=(bd_lo, bd_hi),
        backdoored_accuracy=still_right / n_bd if n_bd else float("nan"),
        n_clean=n_clean,
        n_backdoor=n_bd,
        per_class=tuple(rows),
    )


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Area under the ROC curve of scores where ``positive`` should score higher (ties count half); NaN when
    either side is empty."""
    if not len(positive) or not len(negative):
        return float("nan")
    greater = (positive[:, None] > negative[None, :]).double().mean()
    ties = (positive[:, None] == negative[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def auroc_interval(positive: torch.Tensor, negative: torch.Tensor) -> tuple[float, float]:
    """The 95% interval of ``auroc`` by Hanley & McNeil's (1982) standard error, clipped to [0, 1]; NaNs when
    either side is empty."""
    area, n1, n2 = auroc(positive, negative), len(positive), len(negative)
    if math.isnan(area):
        return (math.nan, math.nan)
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    variance = (area * (1 - area) + (n1 - 1) * (q1 - area**2) + (n2 - 1) * (q2 - area**2)) / (n1 * n2)
    half = Z95 * math.sqrt(max(variance, 0.0))
    return (max(0.0, area - half), min(1.0, area + half))


def roc_curve(positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ROC curve's vertices ``(fpr, tpr)``, float64, from (0, 0) to (1, 1): one vertex per distinct score,
    thresholds from the highest down (a score flags when it is at or above the threshold), so tied scores make
    one diagonal step and the trapezoid area under the curve equals ``auroc``.

    Raises:
        ValueError: either side is empty (no curve exists).
    """
    if not len(positive) or not len(negative):
        raise ValueError("a ROC curve needs at least one positive and one negative score")
    ordered = torch.cat([positive, negative]).double().sort(descending=True).values
    thresholds = ordered[torch.cat([torch.ones(1, dtype=torch.bool), ordered[1:] != ordered[:-1]])]
    tpr = (positive.double()[None, :] >= thresholds[:, None]).double().mean(1)
    fpr = (negative.double()[None, :] >= thresholds[:, None]).double().mean(1)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fpr]), torch.cat([zero, tpr])


def tpr_at_fpr(positive: torch.Tensor, negative: torch.Tensor, fpr: float = 0.05) -> float:
    """The share of positives flagged by the lowest threshold that flags at most ``fpr`` of the negatives (a
    score flags when it is strictly above the threshold)."""
    if not len(positive) or not len(negative):
        return float("nan")
    ordered = negative.sort(descending=True).values
    allowed = math.floor(fpr * len(negative) + 1e-9)  # how many negatives may score above the threshold
    threshold = float(ordered[allowed]) if allowed < len(ordered) else -math.inf  # every score may flag
    return float((positive > threshold).double().mean())


def cross_entropy(probability: torch.Tensor, label: torch.Tensor) -> float:
    """−mean(y·ln p + (1−y)·ln(1−p)), ``p`` clipped to [1e-6, 1 − 1e-6] (the TrojAI convention)."""
    p = probability.double().clamp(1e-6, 1 - 1e-6)
    y = label.double()
    return float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
