# SPDX-License-Identifier: Apache-2.0
"""The mnist study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from badnets.metrics import wilson_interval
from badnets.report._doc import Block, Heading, Image, Para, Table, write_report
from badnets.report._format import pct, pct_ci, run_summary, target_cells, targets_table

if TYPE_CHECKING:
    pass

from badnets.studies.mnist.spec import PAPER

__all__ = ["summary_table", "target_rows", "write_mnist_report"]


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
        Table(["target", "paper", "limit", "ours", "met"], target_rows(results, ("✅", "❌"))),
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


def target_rows(results: Mapping[str, Any], marks: tuple[str, str]) -> list[list[str]]:
    """The targets table's rows: target, paper, our limit (met means ours ≤ limit), ours ± its 95% interval,
    met (``marks`` for yes / no; a quick run is not graded). The report and the README's table both come from
    here."""
    return [target_cells(t, results["spec"]["quick"], marks) for t in results["targets"]]


def write_mnist_report(results: Mapping[str, Any], out: Path) -> None:
    """``results.json`` (the source of truth), then Markdown and self-contained HTML from it."""
    write_report(results, _doc(results), out, "BadNets on MNIST")


def summary_table(results: Mapping[str, Any]) -> Any:
    return targets_table(results, "BadNets on MNIST")
