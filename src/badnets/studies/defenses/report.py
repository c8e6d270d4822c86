# SPDX-License-Identifier: Apache-2.0
"""The defenses study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from badnets.report._doc import Block, Heading, Para, Table, run_section, write_report
from badnets.report._format import pct, run_summary

if TYPE_CHECKING:
    pass

from badnets.studies.defenses.spec import LEARNED

__all__ = ["summary_table", "write_defense_report"]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _flag(e: Mapping[str, Any], detector: str) -> tuple[bool, int | None]:
    d = e["audit"] if detector == "audit" else e["audit"][detector]
    flagged = d["verdict"] == "backdoored" if detector == "audit" else d["flagged"]
    return bool(flagged), d["suspected_target"]


def _strip_by_kind(models: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    kinds = sorted({m["kind"] for m in models})
    return {
        k: _mean([m["strip"]["auroc"] for m in models if m["kind"] == k and (m["learned"] or k == "clean")])
        for k in kinds
    }


def _missed(models: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Backdoored models (whose backdoor took) that the audit called clean."""
    return [m for m in models if m["learned"] and not _flag(m, "audit")[0]]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f} s" if value > 1.5 else pct(value, 1)
    return str(value)


def _doc(results: Mapping[str, Any]) -> list[Block]:
    spec, models = results["spec"], results["models"]
    n_clean = sum(m["kind"] == "clean" for m in models)
    n_bad = sum(m["learned"] for m in models)
    n_failed = sum(m["kind"] != "clean" and not m["learned"] for m in models)
    blocks: list[Block] = [
        Heading("Defense scoreboard: detectors and mitigations against known clean and backdoored models", 1),
        Para(
            f"{len(models)} models: {n_clean} clean, {n_bad} BadNets whose backdoor took (attack success ≥ "
            f"{pct(LEARNED, 0)}), {n_failed} whose backdoor did not (left out of the rates). MNIST paper CNNs "
            f"({spec['mnist_epochs']} epoch(s)) and LISA sign classifiers. The defender has {spec['clean_images']} "
            "clean test images; everything is scored on the rest of the test split."
            + (" **Quick run:** a reduced zoo; not graded." if spec["quick"] else "")
        ),
        Heading("Targets"),
        Table(
            ["target", "must reach", "ours", "met"],
            [
                [
                    t["target"],
                    t["must"],
                    _fmt(t["ours"]) + (f" ({pct(t['fpr'], 1)})" if "fpr" in t else ""),
                    "–" if spec["quick"] else ("yes" if t["met"] else "**no**"),
                ]
                for t in results["targets"]
            ],
        ),
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
                    pct(v["tpr"], 0),
                    pct(v["tpr_targeted"], 0),
                    pct(v["fpr"], 0),
                    pct(v["correct_target"], 0),
                    ", ".join(f"{k} {c}" for k, c in v["by_kind"].items()),
                ]
                for d, v in results["detection"].items()
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
            [
                [
                    m["name"],
                    m["kind"] + ("" if m["learned"] or m["kind"] == "clean" else " (not learned)"),
                    pct(m["model"]["clean_accuracy"], 1),
                    pct(m["model"]["attack_success_rate"], 1),
                    f"{m['audit']['verdict']} ({m['audit']['suspected_target']})",
                    f"{m['audit']['neural_cleanse']['anomaly_index']:.2f}",
                    f"{m['strip']['auroc']:.3f}",
                    f"{pct(m['training_data']['activation_clustering']['recall'], 0)} / "
                    f"{pct(m['training_data']['activation_clustering']['false_positive_rate'], 1)}",
                    (
                        f"{pct(m['repair']['unlearning']['attack_success_rate'], 1)} / "
                        f"{pct(m['repair']['unlearning']['clean_accuracy'], 1)}"
                    )
                    if "repair" in m
                    else "–",
                ]
                for m in models
            ],
        ),
        Heading("Mitigation"),
        Table(
            ["method", "mean ASR after", "mean clean drop", "ASR ≤ 5% and drop ≤ 1 pt", "time"],
            [
                [
                    k,
                    pct(v["asr_after"], 1),
                    f"{100 * v['clean_drop']:.2f} pt",
                    v["meets_target"],
                    f"{v['seconds']:.0f} s",
                ]
                for k, v in results["repair"].items()
            ],
        ),
        Para(
            "Where the audit fails: "
            + (", ".join(f"{m['name']} ({m['kind']})" for m in _missed(models)) or "nowhere")
            + ". An all-to-all backdoor has no single target class, so Neural Cleanse finds no outlier; with the "
            "3 classes of the LISA models the outlier test has too few classes to single one out. The rates count "
            "the MNIST ones as misses."
        ),
        *run_section("badnets reproduce defenses --out DIR", spec["quick"], run_summary(results["timing"])),
    ]
    return blocks


def write_defense_report(results: Mapping[str, Any], out: Path) -> None:
    write_report(results, _doc(results), out, "Defense scoreboard")


def summary_table(results: Mapping[str, Any]) -> Any:
    from rich.table import Table as RichTable

    quick = results["spec"]["quick"]
    table = RichTable(
        title="Defense scoreboard" + (" (quick run; the targets are for the full study)" if quick else "")
    )
    for col in ("target", "must reach", "ours", "met"):
        table.add_column(col)
    for t in results["targets"]:
        table.add_row(t["target"], t["must"], _fmt(t["ours"]), "–" if quick else ("yes" if t["met"] else "no"))
    return table
