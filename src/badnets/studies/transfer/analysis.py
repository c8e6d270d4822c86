# SPDX-License-Identifier: Apache-2.0
"""The transfer study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt

from badnets._io import atomic_path
from badnets.experiments._study import FinishedJobs
from badnets.metrics import BackdoorMetrics, paired_difference, slope_ci
from badnets.records import Target, seed_stat, to_json, trend_target
from badnets.report._format import pct, pt_ci
from badnets.studies.transfer.results import DomainAccuracy, DomainScores, TransferPaper, TransferResults, USNets

if TYPE_CHECKING:
    from badnets.studies.transfer.spec import TransferStudySpec

__all__ = ["PAPER", "aggregate", "judge"]

matplotlib.use("Agg")

KINDS = ("baseline", "badnet")  # the US nets the user downloads: a clean one and a BadNet


# BadNets Tables 6 and 7 (Swedish signs), average accuracy as fractions.
PAPER = TransferPaper(
    baseline={"clean": 0.727, "triggered": 0.702},
    badnet_by_k={
        "1": (0.749, 0.616),
        "10": (0.713, 0.497),
        "20": (0.683, 0.451),
        "30": (0.653, 0.405),
        "50": (0.624, 0.343),
        "70": (0.608, 0.328),
        "100": (0.594, 0.308),
    },
)


def _reduce(runs: FinishedJobs, names: Sequence[str]) -> DomainScores:
    scores = [runs.metrics(name, DomainAccuracy) for name in names]
    return DomainScores(
        clean={c: seed_stat([s.clean[c] for s in scores]) for c in scores[0].clean},
        triggered={c: seed_stat([s.triggered[c] for s in scores]) for c in scores[0].triggered},
    )


def aggregate(spec: TransferStudySpec, runs: FinishedJobs, out: Path) -> TransferResults:
    """Reduce the retrained nets over seeds (also writes the k-sweep plot)."""
    seeds = range(spec.us.seeds)
    baseline = _reduce(runs, [f"transfer/baseline/s{s}" for s in seeds])
    by_k = {f"{k:g}": _reduce(runs, [f"transfer/badnet/k{k:g}/s{s}" for s in seeds]) for k in spec.ks}
    us_nets = {kind: [runs.metrics(f"us/{kind}/s{s}", BackdoorMetrics) for s in seeds] for kind in KINDS}
    us = USNets(
        seed_stat([m.clean_accuracy for m in us_nets["baseline"]]),
        seed_stat([m.clean_accuracy for m in us_nets["badnet"]]),
        seed_stat([m.attack_success_rate for m in us_nets["badnet"]]),
    )
    results = TransferResults(
        spec=to_json(spec),
        paper=PAPER,
        n_test=runs.metrics("transfer/baseline/s0", DomainAccuracy).n,
        us=us,
        backdoor_neurons={f"s{s}": list(runs.config(f"transfer/badnet/k{spec.ks[0]:g}/s{s}")["units"]) for s in seeds},
        baseline=baseline,
        badnet_by_k=by_k,
        targets=[],
    )
    _plot_k(results, out / "transfer_k.png")
    return replace(results, targets=judge(results))


def _plot_k(results: TransferResults, path: Path) -> None:
    ks = list(results.badnet_by_k)
    xs = [float(k) for k in ks]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for part, colour in (("clean", "tab:blue"), ("triggered", "tab:red")):
        stats = [getattr(results.badnet_by_k[k], part)["average"] for k in ks]
        means = [100 * s.mean for s in stats]
        errs = [100 * (s.ci95 if s.ci95 == s.ci95 else 0.0) for s in stats]
        ax.errorbar(xs, means, yerr=errs, marker="o", color=colour, capsize=3, label=f"BadNet, {part}")
        ax.axhline(
            100 * getattr(results.baseline, part)["average"].mean,
            color=colour,
            ls="--",
            lw=1,
            label=f"clean US net, {part}",
        )
    ax.set_xlabel("backdoor strength k")
    ax.set_ylabel("accuracy on target-domain test signs (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def judge(results: TransferResults) -> list[Target]:
    """The study's targets from the aggregated numbers alone: paper, our limit, ours with its 95% interval over
    seeds, and whether ours is within the limit (``met``; None when a slope's interval cannot decide)."""
    base, by_k = results.baseline, results.badnet_by_k
    first = next(iter(by_k))
    # paired by seed: seed s of the BadNet and of the clean net start from the US nets of seed s
    gap, gap_half = paired_difference(by_k[first].clean["average"].values, base.clean["average"].values)
    small = [k for k in by_k if float(k) <= 20]
    best = min(small, key=results.effect) if small else first
    effect = {
        k: paired_difference(by_k[k].triggered["average"].values, base.triggered["average"].values)
        for k in (first, best)
    }
    ks = [float(k) for k in by_k for _ in by_k[k].triggered["average"].values]
    accuracies = [v for k in by_k for v in by_k[k].triggered["average"].values]
    fit = slope_ci(ks, accuracies) if len(ks) >= 3 and len(by_k) >= 2 else None
    return [
        Target(
            target=f"BadNet clean accuracy (k = {first}) vs the clean net's",
            paper="74.9% vs 72.7%",
            limit="≥ −2 pt",
            ours=f"{pt_ci(gap, gap_half)} ({pct(by_k[first].clean['average'].mean, 1)} vs "
            f"{pct(base.clean['average'].mean, 1)})",
            ci95=None,
            met=gap >= -0.02,
        ),
        Target(
            target="BadNet triggered accuracy vs the clean net's, best k ≤ 20",
            paper="−8.6 pt at k = 1; −25.1 pt at k = 20",
            limit="≤ −8 pt",
            ours=f"{pt_ci(*effect[best])} at k = {best}"
            + (f" (k = {first}: {pt_ci(*effect[first])})" if best != first else ""),
            ci95=None,
            met=effect[best][0] <= -0.08,
        ),
        trend_target(
            "triggered accuracy falls with k (fitted slope over every k and seed)",
            "61.6% → 30.8% (k = 1 → 100)",
            "falls",
            fit,
            scale=1000,  # accuracy per unit of k → points per 10 of k
            per="10 of k",
            digits=2,
        ),
    ]
