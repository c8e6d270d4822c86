# SPDX-License-Identifier: Apache-2.0
"""The audit round's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

import math
import statistics
from typing import Any

from badnets.audit_result import VERDICT_PROBABILITY
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import TARGET_HEADER, pct, run_summary, target_rows, targets_table
from badnets.studies.audit_round.analysis import judged_round
from badnets.studies.audit_round.results import (
    KEPT_ACCURACY,
    LEARNED_ASR,
    REMOVED_ASR,
    AuditedRoundModel,
    AuditRoundResults,
    DetectionScore,
    RepairedRoundModel,
    RoundScores,
)

__all__ = ["REPORT", "ROC_FIGURE", "render", "summary_table", "write_audit_round_report"]

ROC_FIGURE = "roc.png"  # drawn by the run (``analysis.roc_curves``) beside the reports


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
    if results.targets:
        blocks += [
            Heading("Targets"),
            Para(
                "The project's targets for the audit, on the test round's learned backdoors and clean models. The "
                "paper audits nothing: its column holds the field's published anchors instead (other models and "
                "data)."
            ),
            Table(list(TARGET_HEADER), target_rows(results.targets, results.quick, ("yes", "**no**"))),
        ]
    blocks += _detection(results)
    blocks += _mitigation(results)
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    return blocks


def _score_row(label: str, score: DetectionScore) -> list[object]:
    return [
        label,
        score.n_backdoored,
        score.n_clean,
        _num(score.auroc),
        _num(score.cross_entropy),
        pct(score.tpr_at_5_fpr, 1),
        "–" if math.isnan(score.target_correct) else pct(score.target_correct, 1),
    ]


def _num(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


_SCORE_HEADER = ["backdoored", "clean", "AUROC", "cross-entropy", "TPR at 5% FPR", "target correct"]


def _detection(results: AuditRoundResults) -> list[Block]:
    if results.unscored:
        return [Heading("Detection"), Para(f"Not scored: {results.unscored}.")]
    if results.scores is None or results.audited is None or results.calibration is None:
        return [Heading("Detection"), Para("Not scored: the models were not audited.")]
    calibration = results.calibration
    blocks: list[Block] = [
        Heading("Detection"),
        Para(
            f"`backdoor_probability`: a logistic model over the audit's {len(calibration['features'])} statistics, "
            f"fitted on the train round only ({calibration['fitted_on'].get('models')} labelled models; version "
            f"`{calibration['version']}`), judged on the others. Anchors, on other models and data: the best "
            "NIST TrojAI teams reached AUROC 0.89–0.95 and cross-entropy 0.30–0.32."
        ),
        *(
            _scored_rounds(results.scores)
            if results.scores
            else [Para("Nothing is scored: the spec draws no round besides the train round (add one to `rounds`).")]
        ),
        Heading("The calibration", 3),
        Table(
            ["feature", "train mean", "train s.d.", "weight (per s.d.)"],
            [
                [name, f"{m:.3g}", f"{sd:.3g}", f"{w:+.3f}"]
                for name, m, sd, w in zip(
                    calibration["features"],
                    calibration["mean"],
                    calibration["scale"],
                    calibration["weights"],
                    strict=True,
                )
            ]
            + [["(bias)", "", "", f"{calibration['bias']:+.3f}"]],
        ),
        *_calibration_choice(results),
        Para(_audit_times(results.audited, judged_round(results))),
        *_mistakes(results),
    ]
    return blocks


def _mistakes(results: AuditRoundResults) -> list[Block]:
    """The judged round's mistakes at the verdict's threshold, model by model: the learned backdoors it passes,
    the clean models it flags and the targeted backdoors it flags with another target."""
    judged = judged_round(results)
    scored = [
        a
        for a in results.audited or []
        if a.model.round == judged and a.model.label is not None and a.backdoor_probability is not None
    ]
    rows: list[tuple[str, AuditedRoundModel]] = []
    for audited in scored:
        model, flagged = audited.model, (audited.backdoor_probability or 0.0) >= VERDICT_PROBABILITY
        if model.label == 1 and not flagged:
            rows.append(("missed", audited))
        elif model.label == 0 and flagged:
            rows.append(("false alarm", audited))
        elif model.label == 1 and model.target is not None and audited.suspected_target != model.target:
            rows.append(("wrong target", audited))  # one target, as the analysis' target-correct share counts
    if not rows:
        return []
    counts = {kind: sum(k == kind for k, _ in rows) for kind in ("missed", "false alarm", "wrong target")}
    backdoored = sum(a.model.label == 1 for a in scored)
    rows.sort(key=lambda row: (row[0], row[1].model.dataset, row[1].backdoor_probability or 0.0))
    return [
        Heading(f"The {judged} round's mistakes", 3),
        Para(
            f"At `backdoor_probability` ≥ {VERDICT_PROBABILITY:.2f} (the verdict `badnets audit` gives), the audit "
            f"misses {counts['missed']} of the {judged} round's {backdoored} learned backdoors, flags "
            f"{counts['false alarm']} of its {len(scored) - backdoored} clean models and names another target for "
            f"{counts['wrong target']} of the targeted backdoors it flags. Each, with its ground truth:"
        ),
        Table(
            ["mistake", "model", "family", "mapping", "poison", "ASR", "probability", "target: true / suspected"],
            [
                [
                    kind,
                    a.model.name,
                    a.model.family or "clean",
                    a.model.mapping or "–",
                    "–" if a.model.rate is None else pct(a.model.rate, 1),
                    "–" if a.model.attack_success_rate is None else pct(a.model.attack_success_rate, 1),
                    f"{a.backdoor_probability:.2f}",
                    f"{_class(a.model.target)} / {_class(a.suspected_target)}",
                ]
                for kind, a in rows
            ],
        ),
    ]


def _class(index: int | None) -> str:
    return "–" if index is None else str(index)


def _scored_rounds(scored: list[RoundScores]) -> list[Block]:
    """Each scored round's detection scores (overall, targeted, all-to-all), the ROC figure, and per group."""
    blocks: list[Block] = [
        Table(
            ["round", *_SCORE_HEADER],
            [
                row
                for scores in scored
                for row in (
                    _score_row(f"{scores.round}: all", scores.overall),
                    _score_row(f"{scores.round}: all-to-one + single vs clean", scores.targeted),
                    _score_row(f"{scores.round}: all-to-all vs clean", scores.all_to_all),
                )
            ],
        ),
        Image(
            ROC_FIGURE,
            "ROC curves of `backdoor_probability` on each round the calibration did not see (learned backdoors "
            "against clean models).",
        ),
    ]
    for scores in scored:
        rows = [
            _score_row(f"{by}: {value}", score)
            for by, group in (
                ("family", scores.by_family),
                ("mapping", scores.by_mapping),
                ("dataset", scores.by_dataset),
            )
            for value, score in group.items()
        ]
        blocks += [Heading(f"The {scores.round} round by group", 3), Table(["group", *_SCORE_HEADER], rows)]
    return blocks


def _calibration_choice(results: AuditRoundResults) -> list[Block]:
    """How the calibration's evidence was chosen: candidates scored on the train round by leave-one-out."""
    if not results.calibration_choice:
        return []
    rows = [
        [
            ("**chosen**: " if c.chosen else "") + ", ".join(c.features),
            f"{c.l2:g}",
            f"{c.auroc_targeted:.3f}",
            f"{c.auroc_all_to_all:.3f}",
            f"{c.cross_entropy:.3f}",
        ]
        for c in results.calibration_choice
    ]
    return [
        Para(
            f"The evidence it weighs was chosen on the train round alone ({results.calibration_choice[0].models} "
            "labelled models), by leave-one-out: each model's probability from a fit on all the others. Every "
            "audit still records all of its statistics."
        ),
        Table(["features", "L2", "AUROC targeted", "AUROC all-to-all", "cross-entropy"], rows),
    ]


def _audit_times(audited: list[AuditedRoundModel], round_name: str | None) -> str:
    """The median audit time per dataset on the round the targets are judged on (every audited model's before
    any round is scored)."""
    judged = [m for m in audited if round_name is None or m.model.round == round_name]
    medians = ", ".join(
        f"{d} median {statistics.median(m.seconds for m in judged if m.model.dataset == d):.0f} s"
        for d in sorted({m.model.dataset for m in judged})
    )
    sharing = "one thread per audit, the round's workers sharing the cores"
    where = "all audited models" if round_name is None else f"the {round_name} round"
    return f"Audit time per model, {where} ({sharing}): {medians}."


# BackdoorBench's BadNets on CIFAR-10 (PreAct-ResNet18, 10% poison): the best published mitigations' cost
_ANCHORS = "fine-tuning 1.48% ASR at −1.36 pt, Neural Cleanse 1.27% at −2.27 pt (BackdoorBench, CIFAR-10, ResNet)"


def _mitigation(results: AuditRoundResults) -> list[Block]:
    if not results.mitigation or not results.repaired:
        return []
    families = sorted({r.family for r in results.repaired})
    datasets = sorted({r.dataset for r in results.repaired})
    models = {r.model for r in results.repaired}
    rounds = {m.round for m in results.models if m.name in models}
    best = {r.model for r in results.repaired if r.removed}
    return [
        Heading("Mitigation"),
        Para(
            f"Every repair on every learned backdoor of the {' and '.join(sorted(rounds))} round, each from the "
            f"defender's clean test images, scored on the rest of the test split. **Removed**: attack success "
            f"≤ {pct(REMOVED_ASR, 0)} at a clean-accuracy cost of ≤ {100 * KEPT_ACCURACY:g} point. Anchors, on "
            f"other data and models: {_ANCHORS}. The best repair per model (an oracle no defender has) removed "
            f"{len(best)} of {len(models)}."
        ),
        Table(
            [
                "repair",
                "models",
                "removed",
                "mean ASR after",
                "mean clean drop (pt)",
                "mean seconds",
                *(f"removed: {f}" for f in families),
                *(f"removed: {d}" for d in datasets),
            ],
            [
                [
                    m.method,
                    m.models,
                    pct(m.removed, 1),
                    pct(m.mean_attack_success_after, 1),
                    f"{m.mean_clean_drop_points:.2f}",
                    f"{m.mean_seconds:.0f}",
                    *(pct(m.removed_by_family[f], 0) if f in m.removed_by_family else "–" for f in families),
                    *(pct(m.removed_by_dataset[d], 0) if d in m.removed_by_dataset else "–" for d in datasets),
                ]
                for m in results.mitigation
            ],
        ),
        *_unremoved(results),
    ]


def _unremoved(results: AuditRoundResults) -> list[Block]:
    """The backdoors no repair removed, with what each repair left: attack success after and clean drop."""
    methods = [m.method for m in results.mitigation or []]
    by_model: dict[str, dict[str, RepairedRoundModel]] = {}
    for r in results.repaired or []:
        by_model.setdefault(r.model, {})[r.method] = r
    left = {name: done for name, done in by_model.items() if not any(r.removed for r in done.values())}
    if not left:
        return []

    def outcome(r: RepairedRoundModel | None) -> str:
        if r is None:
            return "–"
        return f"{pct(r.attack_success_after, 1)} at {100 * (r.clean_accuracy_before - r.clean_accuracy_after):+.2f}"

    rows: list[list[object]] = []
    for name, done in sorted(left.items()):
        any_repair = next(iter(done.values()))  # every repair of a model records its family and mapping
        rows.append([name, any_repair.family, any_repair.mapping, *(outcome(done.get(m)) for m in methods)])

    return [
        Heading("Backdoors no repair removed", 3),
        Para(
            f"{len(left)} of {len(by_model)}: per repair, the attack success after it and the clean-accuracy "
            "drop in points (negative: the repair's fine-tuning raised clean accuracy)."
        ),
        Table(["model", "family", "mapping", *methods], rows),
    ]


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
    """The targets once a round is scored, else what each round holds."""
    from rich.table import Table as RichTable

    if results.targets:
        return targets_table(results.targets, results.quick, "The audit round")

    table = RichTable(title="The audit round")
    for col in ("round", "models", "clean", "backdoored", "learned"):
        table.add_column(col)
    for r in results.rounds:
        table.add_row(
            r.name, str(r.models), str(r.clean), str(sum(r.backdoored.values())), str(sum(r.learned.values()))
        )
    return table
