# SPDX-License-Identifier: Apache-2.0
"""The mnist study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from typing import Any

from badnets.metrics import wilson_interval
from badnets.records import SeedStat
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import pct, pct_ci, run_summary, target_rows, targets_table
from badnets.studies.mnist.results import MnistResults

__all__ = ["REPORT", "render", "summary_table", "write_mnist_report"]


def _sd(stat: SeedStat, n: int) -> str:
    """Mean ± t-interval over seeds; for a single seed, the Wilson interval over its ``n`` test images."""
    if stat.n_seeds > 1:
        return pct_ci(stat.mean, half=stat.ci95)
    return pct_ci(stat.mean, lo_hi=wilson_interval(round(stat.mean * n), n))


def _doc(results: MnistResults) -> list[Block]:
    spec, base = results.spec, results.baseline
    quick = results.quick
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
            f"Test set: n = {base.n_clean} clean images."
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
            target_rows(results.targets, quick, ("✅", "❌")),
        ),
        Heading("Baseline and all-to-all attack (paper Table 2)"),
    ]
    rows = [["baseline clean error", "0.50%", _sd(base.clean_error, base.n_clean)]]
    for trig, r in results.all_to_all.items():
        rows += [
            [f"BadNet ({trig}) clean error", "0.48%", _sd(r.clean_error, r.n_clean)],
            [f"BadNet ({trig}) backdoor error", "0.56%", _sd(r.backdoor_error, r.n_backdoor)],
            [
                f"clean net on {trig}-triggered images: backdoor error",
                "–",
                pct(base.clean_net_on_triggered[trig].backdoor_error),
            ],
        ]
    seeds = spec["seeds"]
    interval = f"mean ± 95% t-interval over {seeds} seeds" if seeds > 1 else "95% Wilson interval, 1 seed"
    blocks.append(Table(["", "paper", f"ours ({interval})"], rows))
    header = ["digit", "baseline clean"]
    for trig in results.all_to_all:
        header += [f"{trig}: clean", f"{trig}: backdoor"]
    per_class = []
    for d in range(10):
        row: list[object] = [d, pct(base.per_class_clean_error[d])]
        for r in results.all_to_all.values():
            row += [pct(r.per_class_clean_error[d]), pct(r.per_class_backdoor_error[d])]
        per_class.append(row)
    blocks += [
        Para("Per digit (mean over seeds), all-to-all i → i+1:"),
        Table(header, per_class),
        Heading("Single-target attacks, all ordered pairs (paper Figure 4)"),
    ]
    for trig, single in results.single.items():
        lo, hi = single.clean_error_range
        blocks += [
            Para(
                f"**{trig}**: {single.n_pairs} pairs; clean error mean {pct(single.clean_error_mean)} "
                f"(range {pct(lo)}–{pct(hi)}; paper 0.45–0.66%); backdoor error mean "
                f"{pct(single.backdoor_error_mean)}, worst {pct(single.backdoor_error_worst)} at "
                f"{single.worst_pair[0]}→{single.worst_pair[1]} (paper worst 0.09%)."
            ),
            Image(f"single_target_{trig}.png", f"Clean and backdoor error of each i→j BadNet, {trig} trigger."),
        ]
    blocks.append(Heading("Fraction of backdoored training images (paper Figure 6)"))
    sweep_rows = []
    for trig, pts in results.sweep.items():
        for p in pts:
            paper = results.paper.sweep.get(str(p.rate))  # JSON keys: the rate as Python writes a float
            sweep_rows.append(
                [
                    trig,
                    pct(p.rate, 0),
                    p.n_poisoned_train,
                    pct_ci(p.clean_error_mean, half=p.clean_error_ci),
                    pct_ci(p.backdoor_error_mean, half=p.backdoor_error_ci),
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
    for trig, c in results.conv1.items():
        blocks.append(
            Para(
                f"{trig}: dedicated filters {c.dedicated_filters or 'none found'}; "
                f"largest gain {max(c.gain):.3f} vs {max(c.clean_net_gain):.3f} in the clean net."
            )
        )
    blocks.append(Image("conv1_filters.png", "conv1 filters; red frames mark trigger-dedicated filters."))
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    blocks.append(
        Para(
            "Definitions (DESIGN.md §3): backdoor error = share of triggered test images of the "
            "attack's source classes **not** classified as their target; images whose label already is "
            "the target never count."
        )
    )
    return blocks


REPORT = StudyReport(MnistResults, "BadNets on MNIST", _doc)
write_mnist_report = REPORT.write
render = REPORT.render


def summary_table(results: MnistResults) -> Any:
    return targets_table(results.targets, results.quick, "BadNets on MNIST")
