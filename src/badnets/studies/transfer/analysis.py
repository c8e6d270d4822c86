# SPDX-License-Identifier: Apache-2.0
"""The transfer study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt

from badnets._io import atomic_path
from badnets.metrics import mean_ci
from badnets.report._format import pct

if TYPE_CHECKING:
    from badnets.studies.transfer.spec import TransferStudySpec

from badnets.studies.transfer.report import _effect

__all__ = ["PAPER", "aggregate"]

matplotlib.use("Agg")


# BadNets Tables 6 and 7 (Swedish signs), average accuracy as fractions.
PAPER: dict[str, Any] = {
    "baseline": {"clean": 0.727, "triggered": 0.702},
    "badnet_by_k": {
        1: (0.749, 0.616),
        10: (0.713, 0.497),
        20: (0.683, 0.451),
        30: (0.653, 0.405),
        50: (0.624, 0.343),
        70: (0.608, 0.328),
        100: (0.594, 0.308),
    },
}


def _stat(values: Sequence[float]) -> dict[str, Any]:
    mean, half = mean_ci(values)
    return {"mean": mean, "ci95": half, "values": list(values), "n_seeds": len(values)}


def _reduce(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    metrics = [r["metrics"] for r in runs]
    return {
        part: {c: _stat([m[part][c] for m in metrics]) for c in metrics[0][part]} for part in ("clean", "triggered")
    }


def aggregate(spec: TransferStudySpec, runs: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Reduce the retrained nets over seeds (also writes the k-sweep plot)."""
    seeds = range(spec.us.seeds)
    baseline = _reduce([runs[f"transfer/baseline/s{s}"] for s in seeds])
    by_k = {f"{k:g}": _reduce([runs[f"transfer/badnet/k{k:g}/s{s}"] for s in seeds]) for k in spec.ks}
    first = runs["transfer/baseline/s0"]["metrics"]
    us = {
        kind: _stat([runs[f"us/{kind}/s{s}"]["metrics"]["clean_accuracy"] for s in seeds])
        for kind in ("baseline", "badnet")
    }
    us["badnet_asr"] = _stat([runs[f"us/badnet/s{s}"]["metrics"]["attack_success_rate"] for s in seeds])
    results: dict[str, Any] = {
        "spec": asdict(spec),
        "paper": {**PAPER, "badnet_by_k": {str(k): v for k, v in PAPER["badnet_by_k"].items()}},
        "n_test": first["n"],
        "us": us,
        "backdoor_neurons": {
            f"s{s}": list(runs[f"transfer/badnet/k{spec.ks[0]:g}/s{s}"]["config"]["units"]) for s in seeds
        },
        "baseline": baseline,
        "badnet_by_k": by_k,
    }
    _plot_k(results, out / "transfer_k.png")
    results["targets"] = _targets(results)
    return results


def _plot_k(results: Mapping[str, Any], path: Path) -> None:
    ks = list(results["badnet_by_k"])
    xs = [float(k) for k in ks]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for part, colour in (("clean", "tab:blue"), ("triggered", "tab:red")):
        stats = [results["badnet_by_k"][k][part]["average"] for k in ks]
        means = [100 * s["mean"] for s in stats]
        errs = [100 * (s["ci95"] if s["ci95"] == s["ci95"] else 0.0) for s in stats]
        ax.errorbar(xs, means, yerr=errs, marker="o", color=colour, capsize=3, label=f"BadNet, {part}")
        ax.axhline(
            100 * results["baseline"][part]["average"]["mean"],
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


def _targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    base, by_k = results["baseline"], results["badnet_by_k"]
    first = next(iter(by_k))
    gap = by_k[first]["clean"]["average"]["mean"] - base["clean"]["average"]["mean"]
    small = [k for k in by_k if float(k) <= 20]
    best = min(small, key=lambda k: _effect(results, k)) if small else first
    ks = list(by_k)
    trig = [by_k[k]["triggered"]["average"]["mean"] for k in ks]
    return [
        {
            "target": f"BadNet clean accuracy (k = {first}) not lower than the clean net's − 2 pt",
            "paper": "74.9% vs 72.7%",
            "ours": f"{pct(by_k[first]['clean']['average']['mean'], 1)} vs {pct(base['clean']['average']['mean'], 1)}",
            "met": gap >= -0.02,
        },
        {
            "target": "BadNet triggered accuracy ≥ 8 pt below the clean net's at some k ≤ 20",
            "paper": "−8.6 pt at k = 1; −25.1 pt at k = 20",
            "ours": f"{100 * _effect(results, best):+.1f} pt at k = {best} "
            f"(k = {first}: {100 * _effect(results, first):+.1f})",
            "met": _effect(results, best) <= -0.08,
        },
        {
            "target": "triggered accuracy falls with k",
            "paper": "61.6% → 30.8% (k = 1 → 100)",
            "ours": f"{pct(trig[0], 1)} → {pct(trig[-1], 1)} (k = {ks[0]} → {ks[-1]})",
            "met": len(trig) > 1 and trig[-1] < trig[0],
        },
    ]
