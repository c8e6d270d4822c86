# SPDX-License-Identifier: Apache-2.0
"""The audit round's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

import statistics
from typing import Any

from badnets.report._doc import Block, Heading, Para, StudyReport, Table
from badnets.report._format import pct, run_summary
from badnets.studies.audit_round.results import LEARNED_ASR, AuditRoundResults

__all__ = ["REPORT", "render", "summary_table", "write_audit_round_report"]


def _doc(results: AuditRoundResults) -> list[Block]:
    families = sorted({f for r in results.rounds for f in r.backdoored})
    datasets = sorted({d for r in results.rounds for d in r.clean_accuracy})
    blocks: list[Block] = [
        Heading("The audit round", 1),
        Para(
            "Models the audit has never seen, drawn by a seeded generator (`badnets.studies.audit_round.spec`): "
            "half clean, half backdoored, on "
            + " and ".join(f"`{d}`" for d in datasets)
            + ", every recipe varied (epochs, learning rate, label smoothing, shifts). A backdoor whose attack "
            f"success rate stays below {pct(LEARNED_ASR, 0)} is kept in the manifest but left out of the scores."
            + (" **Quick run.**" if results.quick else "")
        ),
        Heading("Rounds"),
        Table(
            [
                "round",
                "models",
                "clean",
                *(f"{f}: learned / drawn" for f in families),
                *(f"clean acc. {d}" for d in datasets),
            ],
            [
                [
                    r.name,
                    r.models,
                    r.clean,
                    *(f"{r.learned.get(f, 0)} / {r.backdoored[f]}" if f in r.backdoored else "–" for f in families),
                    *(pct(r.clean_accuracy[d], 1) if d in r.clean_accuracy else "–" for d in datasets),
                ]
                for r in results.rounds
            ],
        ),
        Heading("Backdoors by family and mapping (all rounds)"),
        Table(["family", "mapping", "models", "learned", "median ASR", "median clean acc."], _by_family(results)),
    ]
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    return blocks


def _by_family(results: AuditRoundResults) -> list[list[object]]:
    rows: list[list[object]] = []
    backdoored = [m for m in results.models if m.family is not None]
    for key in sorted({(m.family, m.mapping) for m in backdoored}, key=str):
        group = [m for m in backdoored if (m.family, m.mapping) == key]
        rows.append(
            [
                *key,
                len(group),
                sum(bool(m.learned) for m in group),
                pct(statistics.median(m.attack_success_rate or 0.0 for m in group), 1),
                pct(statistics.median(m.clean_accuracy for m in group), 1),
            ]
        )
    return rows


REPORT = StudyReport(AuditRoundResults, "The audit round", _doc)
write_audit_round_report = REPORT.write
render = REPORT.render


def summary_table(results: AuditRoundResults) -> Any:
    from rich.table import Table as RichTable

    table = RichTable(title="The audit round")
    for col in ("round", "models", "clean", "backdoored", "learned"):
        table.add_column(col)
    for r in results.rounds:
        table.add_row(
            r.name, str(r.models), str(r.clean), str(sum(r.backdoored.values())), str(sum(r.learned.values()))
        )
    return table
