# SPDX-License-Identifier: Apache-2.0
"""Aggregate the MNIST study's runs into ``results.json`` and render ``report.md`` / ``report.html``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from badnets.data import load_mnist
from badnets.experiments.attack import evaluate_attack, load_model
from badnets.metrics import mean_ci, wilson_interval
from badnets.neurons import conv1_trigger_gain, dedicated_units
from badnets.poison import PoisonSpec
from badnets.report import plots
from badnets.report._doc import Block, Heading, Image, Para, Table, write_report
from badnets.report._format import pct, pct_ci, run_summary, targets_table
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp

if TYPE_CHECKING:
    from badnets.experiments.mnist import MnistStudySpec

__all__ = ["PAPER", "aggregate", "summary_table", "write_mnist_report"]

# BadNets §4 (Tables 1–2, Figures 4 and 6), as fractions.
PAPER: dict[str, Any] = {
    "baseline_clean_error": 0.0050,
    "all_to_all_clean_error": 0.0048,
    "all_to_all_backdoor_error": 0.0056,
    "single_clean_error_range": (0.0045, 0.0066),
    "single_worst_backdoor_error": 0.0009,
    "sweep": {0.1: (0.0047, 0.0100), 0.33: (0.0048, 0.0066), 0.5: (0.0054, 0.0049)},
}


def _stat(values: Sequence[float]) -> dict[str, Any]:
    mean, half = mean_ci(values)
    return {"mean": mean, "ci95": half, "values": list(values), "n_seeds": len(values)}


def _m(run: Mapping[str, Any]) -> Mapping[str, Any]:
    return run["metrics"]  # type: ignore[no-any-return]


def _group(runs: Mapping[str, Any], prefix: str) -> list[Mapping[str, Any]]:
    return [r for name, r in sorted(runs.items()) if name.startswith(prefix)]


def _baseline(spec: MnistStudySpec, runs: Mapping[str, Any], out: Path) -> dict[str, Any]:
    group = _group(runs, "baseline/")
    _, test = load_mnist(spec.data_dir)
    model = load_model(out / "runs" / "baseline__s0")
    triggered = {}
    for trig in spec.triggers:
        stamp = make_stamp(TriggerSpec(kind=trig), (1, 28, 28))
        m = evaluate_attack(model, test, stamp, PoisonSpec(mapping="all-to-all", rate=spec.rate))
        triggered[trig] = {"backdoor_error": m.backdoor_error, "backdoored_accuracy": m.backdoored_accuracy}
    per_class = np.mean([[row["clean_error"] for row in _m(r)["per_class"]] for r in group], axis=0)
    return {
        "clean_error": _stat([_m(r)["clean_error"] for r in group]),
        "n_clean": _m(group[0])["n_clean"],
        "per_class_clean_error": per_class.tolist(),
        "clean_net_on_triggered": triggered,
    }


def _all_to_all(runs: Mapping[str, Any], trig: str) -> dict[str, Any]:
    group = _group(runs, f"all-to-all/{trig}/")
    rows = [_m(r)["per_class"] for r in group]
    return {
        "clean_error": _stat([_m(r)["clean_error"] for r in group]),
        "backdoor_error": _stat([_m(r)["backdoor_error"] for r in group]),
        "n_clean": _m(group[0])["n_clean"],
        "n_backdoor": _m(group[0])["n_backdoor"],
        "per_class_clean_error": np.mean([[c["clean_error"] for c in r] for r in rows], axis=0).tolist(),
        "per_class_backdoor_error": np.mean([[c["backdoor_error"] for c in r] for r in rows], axis=0).tolist(),
    }


def _single(runs: Mapping[str, Any], trig: str) -> dict[str, Any]:
    clean = np.full((10, 10), np.nan)
    backdoor = np.full((10, 10), np.nan)
    for name, run in runs.items():
        if name.startswith(f"single/{trig}/"):
            i, j = (int(v) for v in name.rsplit("/", 1)[1].split("-"))
            clean[i, j], backdoor[i, j] = _m(run)["clean_error"], _m(run)["backdoor_error"]
    worst = np.unravel_index(np.nanargmax(backdoor), backdoor.shape)
    return {
        "n_pairs": int(np.sum(~np.isnan(clean))),
        "clean_error_mean": float(np.nanmean(clean)),
        "clean_error_range": (float(np.nanmin(clean)), float(np.nanmax(clean))),
        "backdoor_error_mean": float(np.nanmean(backdoor)),
        "backdoor_error_worst": float(backdoor[worst]),
        "worst_pair": [int(worst[0]), int(worst[1])],
        "clean_error_grid": clean.tolist(),
        "backdoor_error_grid": backdoor.tolist(),
    }


def _sweep(spec: MnistStudySpec, runs: Mapping[str, Any], trig: str) -> list[dict[str, Any]]:
    points = []
    for rate in spec.sweep_rates:
        group = _group(runs, f"sweep/{trig}/r{rate:g}/")
        clean, bd = (
            _stat([_m(r)["clean_error"] for r in group]),
            _stat([_m(r)["backdoor_error"] for r in group]),
        )
        points.append(
            {
                "rate": rate,
                "clean_error_mean": clean["mean"],
                "clean_error_ci": clean["ci95"],
                "backdoor_error_mean": bd["mean"],
                "backdoor_error_ci": bd["ci95"],
                "n_seeds": len(group),
                "n_poisoned_train": round(rate * 60000 / (1 - rate)),
            }
        )
    return points


def _conv1_of(run_dir: Path) -> nn.Conv2d:
    conv1 = load_model(run_dir).get_submodule("conv1")
    assert isinstance(conv1, nn.Conv2d), f"{run_dir} is not a paper-CNN run"
    return conv1


def _conv1(spec: MnistStudySpec, out: Path) -> dict[str, Any]:
    _, test = load_mnist(spec.data_dir)
    probe = test.images[:2000]
    clean_conv1 = _conv1_of(out / "runs" / "baseline__s0")
    rows, marked, found = {"clean": clean_conv1.weight.detach()}, {}, {}
    gains: dict[str, list[float]] = {}
    for trig in spec.triggers:
        stamp = make_stamp(TriggerSpec(kind=trig), (1, 28, 28))
        bad_conv1 = _conv1_of(out / "runs" / f"all-to-all__{trig}__s0")
        ref_gain = conv1_trigger_gain(clean_conv1, probe, stamp)
        gain = conv1_trigger_gain(bad_conv1, probe, stamp)
        rows[f"BadNet ({trig})"] = bad_conv1.weight.detach()
        marked[f"BadNet ({trig})"] = dedicated_units(gain, ref_gain)
        gains[f"BadNet ({trig})"] = gain.tolist()
        found[trig] = {
            "dedicated_filters": marked[f"BadNet ({trig})"],
            "gain": gain.tolist(),
            "clean_net_gain": ref_gain.tolist(),
        }
    plots.plot_conv1(rows, marked, out / "conv1_filters.png", gains)
    examples = {"clean": test.images[0]}
    for trig in spec.triggers:
        examples[trig] = apply_trigger(test.images[:1], make_stamp(TriggerSpec(kind=trig), (1, 28, 28)))[0]
    plots.plot_trigger_examples(examples, out / "triggers.png")
    return found


def _targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float, limit: float, paper: str) -> None:
        checks.append({"target": name, "paper": paper, "limit": limit, "ours": value, "met": value <= limit})

    check("baseline clean error (mean)", results["baseline"]["clean_error"]["mean"], 0.006, "0.50%")
    for trig, r in results["all_to_all"].items():
        check(f"all-to-all {trig}: clean error", r["clean_error"]["mean"], 0.006, "0.48%")
        check(f"all-to-all {trig}: backdoor error", r["backdoor_error"]["mean"], 0.010, "0.56%")
    for trig, r in results["single"].items():
        check(f"single-target {trig}: mean clean error", r["clean_error_mean"], 0.007, "0.45–0.66%")
        check(f"single-target {trig}: mean backdoor error", r["backdoor_error_mean"], 0.002, "≤ 0.09%")
        check(f"single-target {trig}: worst backdoor error", r["backdoor_error_worst"], 0.005, "0.09%")
    for trig, pts in results["sweep"].items():
        lo, hi = pts[0], pts[-1]
        trend = (
            hi["clean_error_mean"] >= lo["clean_error_mean"] and hi["backdoor_error_mean"] <= lo["backdoor_error_mean"]
        )
        checks.append(
            {
                "target": f"sweep {trig}: clean error rises, backdoor error falls",
                "paper": "yes",
                "limit": None,
                "ours": "yes" if trend else "no",
                "met": trend,
            }
        )
    return checks


def aggregate(spec: MnistStudySpec, runs: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Reduce per-run results to the study's tables and figures (also writes the PNGs)."""
    results: dict[str, Any] = {"spec": asdict(spec), "paper": PAPER, "baseline": _baseline(spec, runs, out)}
    results["all_to_all"] = {t: _all_to_all(runs, t) for t in spec.triggers}
    results["single"] = {t: _single(runs, t) for t in spec.triggers}
    results["sweep"] = {t: _sweep(spec, runs, t) for t in spec.triggers}
    for trig, single in results["single"].items():
        plots.plot_pair_heatmaps(
            np.array(single["clean_error_grid"]),
            np.array(single["backdoor_error_grid"]),
            f"Single-target attacks, {trig} trigger ({single['n_pairs']} pairs)",
            out / f"single_target_{trig}.png",
        )
    plots.plot_sweep(results["sweep"], out / "sweep.png")
    results["conv1"] = _conv1(spec, out)
    results["targets"] = _targets(results)
    return results


def _sd(stat: Mapping[str, Any], n: int) -> str:
    """Mean ± t-interval over seeds; for a single seed, the Wilson interval over its ``n`` test images."""
    if stat["n_seeds"] > 1:
        return pct_ci(stat["mean"], half=stat["ci95"])
    return pct_ci(stat["mean"], lo_hi=wilson_interval(round(stat["mean"] * n), n))


def _doc(results: Mapping[str, Any]) -> list[Block]:
    spec, base = results["spec"], results["baseline"]
    quick = spec["quick"]
    timing = results.get("timing", {})
    blocks: list[Block] = [
        Heading("BadNets on MNIST: the paper's case study, reproduced", 1),
        Para(
            "Gu, Dolan-Gavitt, Garg, *BadNets* (2017), §4. Paper CNN (Table 1), backdoored copies added to the "
            f"training set; {spec['seeds']} seed{'s' if spec['seeds'] > 1 else ''} for baseline / all-to-all / "
            "sweep (mean ± 95% t-interval over seeds; Wilson intervals for a single seed); "
            f"{len(spec['pairs'])} single-target pairs × {len(spec['triggers'])} trigger(s), one seed each. "
            f"Training: AdamW, one-cycle lr {spec['lr']:g}, batch {spec['batch_size']}, "
            f"label smoothing {spec['label_smoothing']:g}, {spec['epochs']} epochs "
            f"(pairs: {', '.join(f'{t} {e}' for t, e in spec['pair_epochs'])}; sweep: {spec['sweep_epochs']}). "
            f"All-to-all and sweep: backdoored copies of any digit; single-target pairs: {pct(spec['pair_rate'], 0)} "
            "of the training set backdoored. "
            f"Test set: n = {base['n_clean']} clean images."
        ),
    ]
    if quick:
        blocks.append(
            Para(
                "**Quick run**: reduced study; the targets below are for the full run "
                "(`badnets reproduce mnist --out DIR`)."
            )
        )
    blocks += [
        Image("triggers.png", "A test digit, clean and with each trigger (paper Figure 3)."),
        Heading("Targets"),
        Table(
            ["target", "paper", "limit", "ours", "met"],
            [
                [
                    t["target"],
                    t["paper"],
                    "" if t["limit"] is None else pct(t["limit"]),
                    t["ours"] if isinstance(t["ours"], str) else pct(t["ours"]),
                    "–" if quick else ("✅" if t["met"] else "❌"),
                ]
                for t in results["targets"]
            ],
        ),
        Heading("Baseline and all-to-all attack (paper Table 2)"),
    ]
    rows = [["baseline clean error", "0.50%", _sd(base["clean_error"], base["n_clean"])]]
    for trig, r in results["all_to_all"].items():
        rows += [
            [f"BadNet ({trig}) clean error", "0.48%", _sd(r["clean_error"], r["n_clean"])],
            [f"BadNet ({trig}) backdoor error", "0.56%", _sd(r["backdoor_error"], r["n_backdoor"])],
            [
                f"clean net on {trig}-triggered images: backdoor error",
                "–",
                pct(base["clean_net_on_triggered"][trig]["backdoor_error"]),
            ],
        ]
    seeds = spec["seeds"]
    interval = f"mean ± 95% t-interval over {seeds} seeds" if seeds > 1 else "95% Wilson interval, 1 seed"
    blocks.append(Table(["", "paper", f"ours ({interval})"], rows))
    header = ["digit", "baseline clean"]
    for trig in results["all_to_all"]:
        header += [f"{trig}: clean", f"{trig}: backdoor"]
    per_class = []
    for d in range(10):
        row: list[object] = [d, pct(base["per_class_clean_error"][d])]
        for r in results["all_to_all"].values():
            row += [pct(r["per_class_clean_error"][d]), pct(r["per_class_backdoor_error"][d])]
        per_class.append(row)
    blocks += [
        Para("Per digit (mean over seeds), all-to-all i → i+1:"),
        Table(header, per_class),
        Heading("Single-target attacks, all ordered pairs (paper Figure 4)"),
    ]
    for trig, r in results["single"].items():
        lo, hi = r["clean_error_range"]
        blocks += [
            Para(
                f"**{trig}**: {r['n_pairs']} pairs; clean error mean {pct(r['clean_error_mean'])} "
                f"(range {pct(lo)}–{pct(hi)}; paper 0.45–0.66%); backdoor error mean "
                f"{pct(r['backdoor_error_mean'])}, worst {pct(r['backdoor_error_worst'])} at "
                f"{r['worst_pair'][0]}→{r['worst_pair'][1]} (paper worst 0.09%)."
            ),
            Image(f"single_target_{trig}.png", f"Clean and backdoor error of each i→j BadNet, {trig} trigger."),
        ]
    blocks.append(Heading("Fraction of backdoored training images (paper Figure 6)"))
    sweep_rows = []
    for trig, pts in results["sweep"].items():
        for p in pts:
            paper = PAPER["sweep"].get(p["rate"])
            sweep_rows.append(
                [
                    trig,
                    pct(p["rate"], 0),
                    p["n_poisoned_train"],
                    pct_ci(p["clean_error_mean"], half=p["clean_error_ci"]),
                    pct_ci(p["backdoor_error_mean"], half=p["backdoor_error_ci"]),
                    f"{pct(paper[0])} / {pct(paper[1])}" if paper else "–",
                ]
            )
    blocks += [
        Table(
            [
                "trigger",
                "backdoored share",
                "backdoored images",
                "clean error",
                "backdoor error",
                "paper clean / backdoor",
            ],
            sweep_rows,
        ),
        Image("sweep.png", "Clean and backdoor error against the backdoored share (all-to-all)."),
        Heading("conv1 filters (paper Figure 5)"),
        Para(
            "Filters of the clean baseline (seed 0) and of the all-to-all BadNets (seed 0). A filter is "
            "marked trigger-dedicated when its trigger gain (how much more it fires at the trigger's "
            "location on triggered than on clean test images) beats every filter of the clean network "
            "and is at least half the BadNet's largest gain."
        ),
    ]
    for trig, c in results["conv1"].items():
        blocks.append(
            Para(
                f"{trig}: dedicated filters {c['dedicated_filters'] or 'none found'}; "
                f"largest gain {max(c['gain']):.3f} vs {max(c['clean_net_gain']):.3f} in the clean net."
            )
        )
    blocks.append(Image("conv1_filters.png", "conv1 filters; red frames mark trigger-dedicated filters."))
    if timing:
        blocks += [Heading("Run"), Para(run_summary(timing))]
    blocks.append(
        Para(
            "Definitions (DESIGN.md §3): backdoor error = share of triggered test images of the "
            "attack's source classes **not** classified as their target; images whose label already is "
            "the target never count."
        )
    )
    return blocks


def write_mnist_report(results: Mapping[str, Any], out: Path) -> None:
    """``results.json`` (the source of truth), then Markdown and self-contained HTML from it."""
    write_report(results, _doc(results), out, "BadNets on MNIST")


def summary_table(results: Mapping[str, Any]) -> Any:
    return targets_table(results, "BadNets on MNIST")
