# SPDX-License-Identifier: Apache-2.0
"""Scoring an audit round the way the field scores trojan detectors (DESIGN.md §3): a calibrated probability per
model, judged by AUROC, cross-entropy and TPR at 5% FPR over the learned backdoors and the clean models, overall
and broken down by trigger family, mapping and dataset."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from badnets.metrics import auroc, cross_entropy, tpr_at_fpr
from badnets.studies.audit_round.results import AuditedRoundModel, DetectionScore

__all__ = ["breakdown", "detection_score"]


def detection_score(
    models: Sequence[AuditedRoundModel], probability: Mapping[str, float], *, threshold: float = 0.5
) -> DetectionScore:
    """Score ``probability`` (model name → backdoor probability) over ``models``; backdoors that were not learned
    are left out. ``target_correct`` is over the detected (p ≥ ``threshold``) backdoored models that have one
    target (all-to-one, single-target)."""
    scored = [m for m in models if m.label is not None]
    p = torch.tensor([probability[m.name] for m in scored], dtype=torch.float64)
    y = torch.tensor([m.label for m in scored], dtype=torch.float64)
    positive, negative = p[y == 1], p[y == 0]
    detected = [m for m in scored if m.label == 1 and m.target is not None and probability[m.name] >= threshold]
    correct = sum(m.suspected_target == m.target for m in detected)
    return DetectionScore(
        n_backdoored=len(positive),
        n_clean=len(negative),
        auroc=auroc(positive, negative),
        cross_entropy=cross_entropy(p, y) if len(scored) else math.nan,
        tpr_at_5_fpr=tpr_at_fpr(positive, negative, 0.05),
        target_correct=correct / len(detected) if detected else math.nan,
    )


def breakdown(
    models: Sequence[AuditedRoundModel], probability: Mapping[str, float], by: str
) -> dict[str, DetectionScore]:
    """The score per value of ``by``: ``dataset`` (each dataset's models alone), or ``family`` / ``mapping`` (that
    group's backdoored models against every clean model of the datasets the group covers)."""
    if by == "dataset":
        groups = sorted({m.dataset for m in models})
        return {g: detection_score([m for m in models if m.dataset == g], probability) for g in groups}
    if by not in ("family", "mapping"):
        raise ValueError(f"breakdown by dataset, family or mapping, not {by!r}")
    values = sorted({getattr(m, by) for m in models if m.family is not None})
    out = {}
    for value in values:
        group = [m for m in models if m.family is not None and getattr(m, by) == value]
        datasets = {m.dataset for m in group}
        clean = [m for m in models if m.family is None and m.dataset in datasets]
        out[value] = detection_score(group + clean, probability)
    return out
