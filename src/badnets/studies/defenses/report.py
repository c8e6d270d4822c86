# SPDX-License-Identifier: Apache-2.0
"""The defenses study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from badnets.metrics import mean_or_nan
from badnets.report._doc import Block, Heading, Para, StudyReport, Table, run_section
from badnets.report._format import TARGET_HEADER, pct, run_summary, target_rows, targets_table
from badnets.studies.defenses.results import DefenseResults, EvaluatedModel
from badnets.studies.defenses.spec import LEARNED

__all__ = ["REPORT", "render", "summary_table", "write_defense_report"]


def _strip_by_kind(models: Sequence[EvaluatedModel]) -> dict[str, float]:
    kinds = sorted({m.kind for m in models})
    return {
        k: mean_or_nan(
            [m.evaluation.inputs["strip"].auroc for m in models if m.kind == k and (m.learned or k == "clean")]
        )
        for k in kinds
    }


def _missed(models: Sequence[EvaluatedModel]) -> list[EvaluatedModel]:
    """Backdoored models (whose backdoor took) that the audit called clean."""
    return [m for m in models if m.learned and not m.evaluation.flag("audit")[0]]


def _doc(results: DefenseResults) -> list[Block]:
    spec, models = results.spec, results.models
    n_clean = sum(m.kind == "clean" for m in models)
    n_bad = sum(m.learned for m in models)
    n_failed = sum(m.kind != "clean" and not m.learned for m in models)
    blocks: list[Block] = [
        Heading("Defense scoreboard: detectors and mitigations against known clean and backdoored models", 1),
        Para(
            f"{len(models)} models: {n_clean} clean, {n_bad} BadNets whose backdoor took (attack success ≥ "
            f"{pct(LEARNED, 0)}), {n_failed} whose backdoor did not (left out of the rates). MNIST paper CNNs "
            f"({spec['mnist_epochs']} epoch(s)) and LISA sign classifiers. The defender has {spec['clean_images']} "
            "clean test images; everything is scored on the rest of the test split."
            + (" **Quick run:** a reduced zoo; not graded." if results.quick else "")
        ),
        Heading("Targets"),
        Para("The project's targets for the scoreboard (the paper evaluates no defense); MNIST models."),
        Table(list(TARGET_HEADER), target_rows(results.targets, results.quick, ("yes", "**no**"), digits=1)),
        Heading("Model-level detection (MNIST; sign models in the table below)"),
        Para(
            "The audit's verdict is Neural Cleanse's: one trigger per (source, target) pair, a class's norm its "
            "smallest over sources, and the median-absolute-deviation test on log norms (index > 2). The "
            "trigger-selective neuron test is reported beside it as evidence; it has no calibrated false-alarm rate "
            "and does not decide."
        ),
        Table(
            ["detector", "TPR (all BadNets)", "TPR (all-to-one / single)", "FPR (clean)", "correct target", "by kind"],
            [
                [
                    d,
                    pct(v.tpr, 0),
                    pct(v.tpr_targeted, 0),
                    pct(v.fpr, 0),
                    pct(v.correct_target, 0),
                    ", ".join(f"{k} {c}" for k, c in v.by_kind.items()),
                ]
                for d, v in results.detection.items()
            ],
        ),
        Para(
            "STRIP AUROC by kind: "
            + ", ".join(f"{kind} {auc:.3f}" for kind, auc in _strip_by_kind(models).items())
            + " (for clean models: the trigger a BadNet would use, as a control)."
        ),
        Heading("Every model"),
        Table(
            [
                "model",
                "kind",
                "clean acc",
                "ASR",
                "verdict (target)",
                "NC index",
                "STRIP AUROC",
                "AC recall / FPR",
                "unlearning ASR / clean",
            ],
            [_model_row(m) for m in models],
        ),
        Heading("Mitigation"),
        Table(
            ["method", "mean ASR after", "mean clean drop", "ASR ≤ 5% and drop ≤ 1 pt", "time"],
            [
                [k, pct(v.asr_after, 1), f"{100 * v.clean_drop:.2f} pt", v.meets_target, f"{v.seconds:.0f} s"]
                for k, v in results.repair.items()
            ],
        ),
        Para(
            "Where the audit fails: "
            + (", ".join(f"{m.name} ({m.kind})" for m in _missed(models)) or "nowhere")
            + ". An all-to-all backdoor has no single target class, so Neural Cleanse finds no outlier; with the "
            "3 classes of the LISA models the outlier test has too few classes to single one out. The rates count "
            "the MNIST ones as misses."
        ),
        *run_section(
            "badnets reproduce defenses --out DIR",
            results.quick,
            run_summary(results.timing) if results.timing else "",
        ),
    ]
    return blocks


def _model_row(m: EvaluatedModel) -> list[str]:
    e = m.evaluation
    ac = e.training_data["activation_clustering"]
    unlearned = (e.repair or {}).get("unlearning")
    return [
        m.name,
        m.kind + ("" if m.learned or m.kind == "clean" else " (not learned)"),
        pct(e.model.clean_accuracy, 1),
        pct(e.model.attack_success_rate, 1),
        f"{e.audit.verdict} ({e.audit.suspected_target})",
        f"{e.audit.detectors['neural_cleanse'].score:.2f}",
        f"{e.inputs['strip'].auroc:.3f}",
        f"{pct(ac.recall, 0)} / {pct(ac.false_positive_rate, 1)}",
        f"{pct(unlearned.attack_success_rate, 1)} / {pct(unlearned.clean_accuracy, 1)}" if unlearned else "–",
    ]


REPORT = StudyReport(DefenseResults, "Defense scoreboard", _doc)
write_defense_report = REPORT.write
render = REPORT.render


def summary_table(results: DefenseResults) -> Any:
    return targets_table(results.targets, results.quick, "Defense scoreboard", digits=1)
