# SPDX-License-Identifier: Apache-2.0
"""An audit round's analysis: each trained model's ground truth and scores (the round manifest), and scoring the
audit the way the field scores trojan detectors (DESIGN.md §3): a calibrated probability per model, judged by
AUROC, cross-entropy and TPR at 5% FPR over the learned backdoors and the clean models, overall and broken down
by trigger family, mapping and dataset."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import torch

from badnets.experiments._study import FinishedJobs
from badnets.metrics import BackdoorMetrics, auroc, cross_entropy, tpr_at_fpr
from badnets.studies.audit_round.results import (
    LEARNED_ASR,
    AuditedRoundModel,
    AuditRoundResults,
    DetectionScore,
    RoundSummary,
    TrainedRoundModel,
)
from badnets.studies.audit_round.spec import AuditRoundSpec, RoundModel, draw_round

__all__ = ["aggregate", "breakdown", "detection_score", "summarise_round", "trained_model"]


def trained_model(drawn: RoundModel, runs: FinishedJobs) -> TrainedRoundModel:
    """A drawn model with what its training run scored: clean accuracy, and for a backdoor its attack success
    rate and whether it was learned."""
    metrics = runs.metrics(drawn.name, BackdoorMetrics)
    attack = drawn.attack
    poison = attack.poison if drawn.backdoored else None
    asr = metrics.attack_success_rate if drawn.backdoored else None
    return TrainedRoundModel(
        name=drawn.name,
        round=drawn.round,
        dataset=drawn.dataset,
        family=drawn.family,
        mapping=poison.mapping if poison else None,
        target=poison.target if poison and poison.mapping != "all-to-all" else None,
        source=poison.source if poison else None,
        rate=poison.rate if poison else None,
        trigger=asdict(attack.trigger) if drawn.backdoored else None,
        epochs=attack.train.epochs,
        clean_accuracy=metrics.clean_accuracy,
        attack_success_rate=asr,
        learned=None if asr is None else asr >= LEARNED_ASR,
        seconds=runs.seconds(drawn.name),
    )


def summarise_round(name: str, models: Sequence[TrainedRoundModel]) -> RoundSummary:
    """How many models of each kind the round holds, how many backdoors were learned, and the clean models'
    mean accuracy per dataset."""
    backdoored = [m for m in models if m.family is not None]
    clean = [m for m in models if m.family is None]
    return RoundSummary(
        name=name,
        models=len(models),
        clean=len(clean),
        backdoored=dict(sorted(Counter(m.family for m in backdoored if m.family).items())),
        learned=dict(sorted(Counter(m.family for m in backdoored if m.family and m.learned).items())),
        clean_accuracy={
            d: statistics.fmean(m.clean_accuracy for m in clean if m.dataset == d)
            for d in sorted({m.dataset for m in clean})
        },
    )


def aggregate(spec: AuditRoundSpec, runs: FinishedJobs) -> AuditRoundResults:
    """The rounds' manifest (every model's ground truth and scores) and each round's summary."""
    models = {r.name: [trained_model(m, runs) for m in draw_round(spec, r)] for r in spec.rounds}
    return AuditRoundResults(
        spec=asdict(spec),
        rounds=[summarise_round(name, group) for name, group in models.items()],
        models=[m for group in models.values() for m in group],
    )


def detection_score(
    models: Sequence[AuditedRoundModel], probability: Mapping[str, float], *, threshold: float = 0.5
) -> DetectionScore:
    """Score ``probability`` (model name → backdoor probability) over ``models``; backdoors that were not learned
    are left out. ``target_correct`` is over the detected (p ≥ ``threshold``) backdoored models that have one
    target (all-to-one, single-target)."""
    scored = [m for m in models if m.model.label is not None]
    p = torch.tensor([probability[m.model.name] for m in scored], dtype=torch.float64)
    y = torch.tensor([m.model.label for m in scored], dtype=torch.float64)
    positive, negative = p[y == 1], p[y == 0]
    detected = [
        m
        for m in scored
        if m.model.label == 1 and m.model.target is not None and probability[m.model.name] >= threshold
    ]
    correct = sum(m.suspected_target == m.model.target for m in detected)
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
        groups = sorted({m.model.dataset for m in models})
        return {g: detection_score([m for m in models if m.model.dataset == g], probability) for g in groups}
    if by not in ("family", "mapping"):
        raise ValueError(f"breakdown by dataset, family or mapping, not {by!r}")
    values = sorted({getattr(m.model, by) for m in models if m.model.family is not None})
    out = {}
    for value in values:
        group = [m for m in models if m.model.family is not None and getattr(m.model, by) == value]
        datasets = {m.model.dataset for m in group}
        clean = [m for m in models if m.model.family is None and m.model.dataset in datasets]
        out[value] = detection_score(group + clean, probability)
    return out
