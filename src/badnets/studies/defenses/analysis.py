# SPDX-License-Identifier: Apache-2.0
"""The defenses study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from badnets.studies.defenses.spec import DefenseStudySpec

from badnets.defenses.registry import defense_names
from badnets.studies.defenses.report import _flag, _mean
from badnets.studies.defenses.spec import LEARNED

__all__ = ["aggregate"]


def _kind(e: Mapping[str, Any]) -> str:
    a: dict[str, Any] = e["attack"]
    if a["baseline"]:
        return "clean"
    if a["mapping"] in ("all-to-all", "random"):
        return str(a["mapping"])
    return "blended" if a["opacity"] < 1 else str(a["mapping"])


def aggregate(spec: DefenseStudySpec, runs: Mapping[str, Any]) -> dict[str, Any]:
    evals = {name.split("/", 1)[1]: r for name, r in runs.items() if name.startswith("eval/")}
    models = []
    for name, e in sorted(evals.items()):
        kind = _kind(e)
        learned = kind != "clean" and e["model"]["attack_success_rate"] >= LEARNED
        row = {"name": name, "kind": kind, "learned": learned, **e}
        models.append(row)
    # the targets are on MNIST; the sign models are reported beside them
    mnist = [m for m in models if m["attack"]["dataset"] == "mnist"]
    clean = [m for m in mnist if m["kind"] == "clean"]
    bad = [m for m in mnist if m["learned"]]
    targeted = [m for m in bad if m["kind"] in ("all-to-one", "single")]
    detection: dict[str, dict[str, Any]] = {}
    for detector in ("audit", *defense_names("model")):
        hits = [m for m in bad if _flag(m, detector)[0]]
        hit_targeted = [m for m in targeted if _flag(m, detector)[0]]
        detection[detector] = {
            "tpr": len(hits) / len(bad) if bad else float("nan"),
            "tpr_targeted": len(hit_targeted) / len(targeted) if targeted else float("nan"),
            "fpr": _mean([float(_flag(m, detector)[0]) for m in clean]),
            "correct_target": _mean([float(_flag(m, detector)[1] == m["attack"]["target"]) for m in hit_targeted]),
            "by_kind": {
                kind: f"{sum(_flag(m, detector)[0] for m in bad if m['kind'] == kind)}/"
                f"{sum(m['kind'] == kind for m in bad)}"
                for kind in sorted({m["kind"] for m in bad})
            },
        }
    patch = [m for m in bad if m["kind"] == "all-to-one"]  # source-agnostic, solid triggers: what STRIP is for
    ten = [m for m in bad if abs(m["attack"]["rate"] - 0.1) < 1e-9 and m["kind"] != "random"]
    training: dict[str, dict[str, float]] = {
        d: {k: _mean([m["training_data"][d][k] for m in ten]) for k in ("precision", "recall", "false_positive_rate")}
        for d in defense_names("training-data")
    }
    repair: dict[str, dict[str, Any]] = {}
    for method in defense_names("repair"):
        done = [m for m in bad if "repair" in m]
        ok = [
            m
            for m in done
            if m["repair"][method]["attack_success_rate"] <= 0.05
            and m["model"]["clean_accuracy"] - m["repair"][method]["clean_accuracy"] <= 0.01
        ]
        repair[method] = {
            "asr_after": _mean([m["repair"][method]["attack_success_rate"] for m in done]),
            "clean_drop": _mean([m["model"]["clean_accuracy"] - m["repair"][method]["clean_accuracy"] for m in done]),
            "meets_target": f"{len(ok)}/{len(done)}",
            "seconds": _mean([m["repair"][method]["seconds"] for m in done]),
        }
    runtime: dict[str, float] = {
        "neural_cleanse_seconds_mnist": _mean([m["audit"]["neural_cleanse"]["seconds"] for m in mnist]),
        "audit_seconds_mnist": _mean([m["audit"]["seconds"] for m in mnist]),
    }
    strip_aurocs = [m["strip"]["auroc"] for m in patch]
    audit = detection["audit"]
    targets = [
        {
            "target": "audit TPR on all-to-one / single-target BadNets",
            "must": "≥ 90%",
            "ours": audit["tpr_targeted"],
            "met": audit["tpr_targeted"] >= 0.9,
        },
        {
            "target": "correct suspected target among those detected",
            "must": "≥ 90%",
            "ours": audit["correct_target"],
            "met": audit["correct_target"] >= 0.9,
        },
        {"target": "audit FPR on clean models", "must": "≤ 10%", "ours": audit["fpr"], "met": audit["fpr"] <= 0.1},
        {
            "target": "STRIP AUROC on all-to-one patch-trigger BadNets (mean)",
            "must": "≥ 0.95",
            "ours": f"{_mean(strip_aurocs):.3f}",
            "met": _mean(strip_aurocs) >= 0.95,
        },
        *(
            {
                "target": f"{d.replace('_', ' ')} at 10% poison: recall (FPR)",
                "must": "≥ 90% at ≤ 5%",
                "ours": training[d]["recall"],
                "fpr": training[d]["false_positive_rate"],
                "met": training[d]["recall"] >= 0.9 and training[d]["false_positive_rate"] <= 0.05,
            }
            for d in training
        ),
        {
            "target": "best mitigation: ASR ≤ 5% with clean drop ≤ 1 pt",
            "must": "all BadNets",
            "ours": repair["unlearning"]["meets_target"],
            "met": repair["unlearning"]["meets_target"].split("/")[0]
            == repair["unlearning"]["meets_target"].split("/")[1],
        },
        {
            "target": "Neural Cleanse runtime per MNIST model (1 core: 2 jobs share 2 cores)",
            "must": "≤ 60 s",
            "ours": runtime["neural_cleanse_seconds_mnist"],
            "met": runtime["neural_cleanse_seconds_mnist"] <= 60,
        },
    ]
    return {
        "spec": asdict(spec),
        "models": models,
        "detection": detection,
        "strip": {"patch_auroc_mean": _mean(strip_aurocs), "patch_auroc_min": min(strip_aurocs, default=float("nan"))},
        "training_data": training,
        "repair": repair,
        "runtime": runtime,
        "targets": targets,
    }
