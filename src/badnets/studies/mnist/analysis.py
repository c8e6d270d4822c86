# SPDX-License-Identifier: Apache-2.0
"""The mnist study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from badnets.data import load_mnist
from badnets.experiments._study import FinishedJobs
from badnets.experiments.attack import evaluate_attack
from badnets.experiments.run_dir import load_model, run_dir
from badnets.metrics import BackdoorMetrics, SlopeFit, grouped_slope_ci, mean_ci, sd_from_ci
from badnets.neurons import conv1_trigger_gain, dedicated_units
from badnets.poison import PoisonSpec
from badnets.records import Target, seed_stat, to_json, trend_target
from badnets.report import plots
from badnets.studies.mnist.results import (
    AllToAll,
    Baseline,
    Conv1Filters,
    MnistResults,
    SingleTarget,
    SweepPoint,
    TriggeredErrors,
)
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp

if TYPE_CHECKING:
    from badnets.studies.mnist.spec import MnistStudySpec

from badnets.studies.mnist.spec import PAPER

__all__ = ["aggregate", "judge"]


def _baseline(spec: MnistStudySpec, runs: FinishedJobs, out: Path) -> Baseline:
    group = runs.group("baseline/", BackdoorMetrics)
    _, test = load_mnist(spec.data_dir)
    model = load_model(run_dir(out, "baseline/s0"))
    triggered = {}
    for trig in spec.triggers:
        stamp = make_stamp(TriggerSpec(kind=trig), (1, 28, 28))
        m = evaluate_attack(model, test, stamp, PoisonSpec(mapping="all-to-all", rate=spec.rate))
        triggered[trig] = TriggeredErrors(m.backdoor_error, m.backdoored_accuracy)
    per_class = np.mean([[row.clean_error for row in m.per_class] for m in group], axis=0)
    return Baseline(
        clean_error=seed_stat([m.clean_error for m in group]),
        n_clean=group[0].n_clean,
        per_class_clean_error=per_class.tolist(),
        clean_net_on_triggered=triggered,
    )


def _all_to_all(runs: FinishedJobs, trig: str) -> AllToAll:
    group = runs.group(f"all-to-all/{trig}/", BackdoorMetrics)
    rows = [m.per_class for m in group]
    return AllToAll(
        clean_error=seed_stat([m.clean_error for m in group]),
        backdoor_error=seed_stat([m.backdoor_error for m in group]),
        n_clean=group[0].n_clean,
        n_backdoor=group[0].n_backdoor,
        per_class_clean_error=np.mean([[c.clean_error for c in r] for r in rows], axis=0).tolist(),
        per_class_backdoor_error=np.mean(
            [[math.nan if c.backdoor_error is None else c.backdoor_error for c in r] for r in rows], axis=0
        ).tolist(),
    )


def _single(runs: FinishedJobs, trig: str) -> SingleTarget:
    clean = np.full((10, 10), np.nan)
    backdoor = np.full((10, 10), np.nan)
    for name in runs.names(f"single/{trig}/"):
        i, j = (int(v) for v in name.rsplit("/", 1)[1].split("-"))
        m = runs.metrics(name, BackdoorMetrics)
        clean[i, j], backdoor[i, j] = m.clean_error, m.backdoor_error
    worst = np.unravel_index(np.nanargmax(backdoor), backdoor.shape)
    return SingleTarget(
        n_pairs=int(np.sum(~np.isnan(clean))),
        clean_error_mean=float(np.nanmean(clean)),
        clean_error_range=(float(np.nanmin(clean)), float(np.nanmax(clean))),
        backdoor_error_mean=float(np.nanmean(backdoor)),
        backdoor_error_worst=float(backdoor[worst]),
        worst_pair=[int(worst[0]), int(worst[1])],
        clean_error_grid=clean.tolist(),
        backdoor_error_grid=backdoor.tolist(),
    )


def _sweep(spec: MnistStudySpec, runs: FinishedJobs, trig: str) -> list[SweepPoint]:
    points = []
    for rate in spec.sweep_rates:
        group = runs.group(f"sweep/{trig}/r{rate:g}/", BackdoorMetrics)
        clean, bd = (
            seed_stat([m.clean_error for m in group]),
            seed_stat([m.backdoor_error for m in group]),
        )
        points.append(
            SweepPoint(
                rate=rate,
                clean_error_mean=clean.mean,
                clean_error_ci=clean.ci95,
                backdoor_error_mean=bd.mean,
                backdoor_error_ci=bd.ci95,
                clean_error_values=clean.values,
                backdoor_error_values=bd.values,
                n_seeds=len(group),
                n_poisoned_train=round(rate * 60000 / (1 - rate)),
            )
        )
    return points


def _conv1_of(run_dir: Path) -> nn.Conv2d:
    conv1 = load_model(run_dir).get_submodule("conv1")
    assert isinstance(conv1, nn.Conv2d), f"{run_dir} is not a paper-CNN run"
    return conv1


def _conv1(spec: MnistStudySpec, out: Path) -> dict[str, Conv1Filters]:
    _, test = load_mnist(spec.data_dir)
    probe = test.images[:2000]
    clean_conv1 = _conv1_of(run_dir(out, "baseline/s0"))
    rows, marked, found = {"clean": clean_conv1.weight.detach()}, {}, {}
    gains: dict[str, list[float]] = {}
    for trig in spec.triggers:
        stamp = make_stamp(TriggerSpec(kind=trig), (1, 28, 28))
        bad_conv1 = _conv1_of(run_dir(out, f"all-to-all/{trig}/s0"))
        ref_gain = conv1_trigger_gain(clean_conv1, probe, stamp)
        gain = conv1_trigger_gain(bad_conv1, probe, stamp)
        rows[f"BadNet ({trig})"] = bad_conv1.weight.detach()
        marked[f"BadNet ({trig})"] = dedicated_units(gain, ref_gain)
        gains[f"BadNet ({trig})"] = gain.tolist()
        found[trig] = Conv1Filters(marked[f"BadNet ({trig})"], gain.tolist(), ref_gain.tolist())
    plots.plot_conv1(rows, marked, out / "conv1_filters.png", gains)
    examples = {"clean": test.images[0]}
    for trig in spec.triggers:
        examples[trig] = apply_trigger(test.images[:1], make_stamp(TriggerSpec(kind=trig), (1, 28, 28)))[0]
    plots.plot_trigger_examples(examples, out / "triggers.png")
    return found


def _grid_values(grid: Sequence[Sequence[float]]) -> list[float]:
    return [v for row in grid for v in row if not math.isnan(v)]


def _sweep_slope(points: Sequence[SweepPoint], metric: str) -> SlopeFit:
    """The fitted slope of ``metric`` against the poison rate over every seed of every rate (from the per-rate
    mean, interval and seed count, which determine it exactly)."""
    ns = [p.n_seeds for p in points]
    cis = [getattr(p, f"{metric}_ci") for p in points]
    sds = [0.0 if n < 2 else sd_from_ci(ci, n) for ci, n in zip(cis, ns, strict=True)]
    return grouped_slope_ci([p.rate for p in points], [getattr(p, f"{metric}_mean") for p in points], sds, ns)


def judge(results: MnistResults) -> list[Target]:
    """The study's targets, from the aggregated numbers alone: paper, our limit, ours with its 95% interval, and
    whether ours is within the limit (``met``; None when the interval cannot decide, as for a sweep slope that
    spans zero)."""
    checks: list[Target] = []

    def check(name: str, value: float, ci95: float | None, limit: float, paper: str) -> None:
        checks.append(Target(name, paper, limit, value, ci95, value <= limit))

    base = results.baseline.clean_error
    check("baseline clean error (mean over seeds)", base.mean, base.ci95, 0.006, "0.50%")
    for trig, r in results.all_to_all.items():
        for metric, stat, limit, paper in (
            ("clean error", r.clean_error, 0.006, "0.48%"),
            ("backdoor error", r.backdoor_error, 0.010, "0.56%"),
        ):
            check(f"all-to-all {trig}: {metric} (mean over seeds)", stat.mean, stat.ci95, limit, paper)
    for trig, single in results.single.items():
        n = single.n_pairs
        clean_ci = mean_ci(_grid_values(single.clean_error_grid))[1]
        backdoor_ci = mean_ci(_grid_values(single.backdoor_error_grid))[1]
        check(
            f"single-target {trig}: clean error (mean over {n} pairs)",
            single.clean_error_mean,
            clean_ci,
            0.007,
            "0.45–0.66%",
        )
        check(
            f"single-target {trig}: backdoor error (mean over {n} pairs)",
            single.backdoor_error_mean,
            backdoor_ci,
            0.002,
            "≤ 0.09%",
        )
        check(f"single-target {trig}: worst pair's backdoor error", single.backdoor_error_worst, None, 0.005, "0.09%")
    for trig, points in results.sweep.items():
        fittable = sum(p.n_seeds for p in points) >= 3 and len(points) >= 2
        for metric, wanted in (("clean_error", "rises"), ("backdoor_error", "falls")):
            fit = _sweep_slope(points, metric) if fittable else None
            # a slope of error against rate, as points of error per 10 points of rate
            checks.append(
                trend_target(
                    f"sweep {trig}: {metric.replace('_', ' ')} {wanted} with the rate (fitted slope)",
                    "yes",
                    wanted,
                    fit,
                    scale=10,
                    per="10 pt of rate",
                    digits=3,
                )
            )
    return checks


def aggregate(spec: MnistStudySpec, runs: FinishedJobs, out: Path) -> MnistResults:
    """Reduce per-run results to the study's tables and figures (also writes the PNGs)."""
    single = {t: _single(runs, t) for t in spec.triggers}
    for trig, s in single.items():
        plots.plot_pair_heatmaps(
            np.array(s.clean_error_grid),
            np.array(s.backdoor_error_grid),
            f"Single-target attacks, {trig} trigger ({s.n_pairs} pairs)",
            out / f"single_target_{trig}.png",
        )
    sweep = {t: _sweep(spec, runs, t) for t in spec.triggers}
    plots.plot_sweep(sweep, out / "sweep.png")
    results = MnistResults(
        spec=to_json(spec),
        paper=PAPER,
        baseline=_baseline(spec, runs, out),
        all_to_all={t: _all_to_all(runs, t) for t in spec.triggers},
        single=single,
        sweep=sweep,
        conv1=_conv1(spec, out),
        targets=[],
    )
    return replace(results, targets=judge(results))
