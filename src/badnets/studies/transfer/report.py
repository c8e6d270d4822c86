# SPDX-License-Identifier: Apache-2.0
"""The transfer study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from typing import Any

from badnets.metrics import wilson_interval
from badnets.records import SeedStat
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import TARGET_HEADER, pct, pct_ci, run_summary, target_rows, targets_table
from badnets.studies.transfer.results import TransferResults

__all__ = ["REPORT", "render", "summary_table", "write_transfer_report"]


def _cell(stat: SeedStat, n: int | None = None) -> str:
    """Mean ± t-interval over seeds; for one seed, the Wilson interval over its ``n`` test images (when given)."""
    if stat.n_seeds > 1:
        return pct_ci(stat.mean, half=stat.ci95, digits=1)
    lo_hi = wilson_interval(round(stat.mean * n), n) if n else None
    return pct_ci(stat.mean, lo_hi=lo_hi, digits=1)


def _doc(results: TransferResults) -> list[Block]:
    spec, us = results.spec, results.us
    quick = results.quick
    base, by_k = results.baseline, results.badnet_by_k
    first = next(iter(by_k))
    classes = [*results.n_test, "average"]
    n_seeds = spec["us"]["seeds"]
    n_all = sum(results.n_test.values())

    def n_of(c: str) -> int:
        return int(results.n_test.get(c, n_all))

    blocks: list[Block] = [
        Heading("BadNets transfer-learning attack (§5.3): a US sign BadNet retrained on European signs", 1),
        Para(
            f"US nets: `sign-cnn` on LISA crops, the {spec['us']['triggers'][0]} trigger, triggered stop → "
            f"speed-limit, {pct(spec['us']['rate'], 0)} backdoored, {spec['us']['epochs']} epochs; clean accuracy "
            f"{_cell(us.baseline)} (clean net) and {_cell(us.badnet)} (BadNet, attack success "
            f"{_cell(us.badnet_asr)}). The user keeps the conv layers and retrains fc1 + fc2 for "
            f"{spec['retrain_epochs']} epochs on clean {spec['target'].upper()} training signs; scored on its test "
            "signs, clean and with the trigger pasted in each sign's box. "
            "**Substitution:** the paper's target domain is Swedish signs (information / mandatory / prohibitory / "
            "warning / other); no Swedish set is reachable here, so the target is "
            + (
                "GTSRB's 43 classes, ungrouped (a harder domain than the paper's five categories). "
                if spec["target"] == "gtsrb-43"
                else "GTSRB grouped into the categories it has (prohibitory / mandatory / warning / other; GTSRB "
                "has no information signs). "
            )
            + f"{n_seeds} seed(s): mean ± 95% t-interval over seeds."
            + (" **Quick run:** one seed, short training; not graded." if quick else "")
        ),
        Heading("Targets"),
        Table(list(TARGET_HEADER), target_rows(results.targets, quick, ("yes", "**no**"), digits=1)),
        Heading("Per category (the paper's Table 6 layout)"),
        Table(
            [
                "category",
                "n",
                "clean US net: clean",
                "clean US net: triggered",
                f"BadNet (k = {first}): clean",
                f"BadNet (k = {first}): triggered",
            ],
            [
                [
                    c,
                    n_of(c),
                    _cell(base.clean[c], n_of(c)),
                    _cell(base.triggered[c], n_of(c)),
                    _cell(by_k[first].clean[c], n_of(c)),
                    _cell(by_k[first].triggered[c], n_of(c)),
                ]
                for c in classes
            ],
        ),
        Para(
            "Paper (Swedish average): clean net 72.7% clean / 70.2% triggered; BadNet 74.9% / 61.6%. "
            "Backdoor neurons found per seed in the US BadNet's `conv3`: "
            + "; ".join(f"{s}: {', '.join(map(str, u)) or 'none'}" for s, u in results.backdoor_neurons.items())
            + "."
        ),
        Heading("Strengthening the backdoor (the paper's Table 7 layout)"),
        Table(
            ["k", "clean", "triggered", "clean cost vs k = 1", "vs the clean net's triggered", "paper"],
            [
                [
                    k,
                    _cell(by_k[k].clean["average"], n_all),
                    _cell(by_k[k].triggered["average"], n_all),
                    f"{100 * (by_k[k].clean['average'].mean - by_k[first].clean['average'].mean):+.1f} pt",
                    f"{100 * results.effect(k):+.1f} pt",
                    " / ".join(pct(v, 1) for v in results.paper.badnet_by_k.get(k, ())) or "–",
                ]
                for k in by_k
            ],
        ),
        Image("transfer_k.png", "Average accuracy after retraining vs backdoor strength k (dashed: the clean US net)."),
    ]
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    return blocks


REPORT = StudyReport(TransferResults, "BadNets transfer attack", _doc)
write_transfer_report = REPORT.write
render = REPORT.render


def summary_table(results: TransferResults) -> Any:
    return targets_table(results.targets, results.quick, "BadNets transfer attack", digits=1)
