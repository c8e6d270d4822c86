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
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from badnets._io import git_commit
from badnets.audit import audit_settings, calibrated
from badnets.audit_result import FEATURES, VERDICT_PROBABILITY, AuditResult
from badnets.calibration import LogisticCalibration, fit_logistic
from badnets.experiments._study import FinishedJobs
from badnets.metrics import BackdoorMetrics, auroc, auroc_interval, cross_entropy, mean_ci, roc_curve, tpr_at_fpr
from badnets.records import Target, from_json
from badnets.report._format import share_ci
from badnets.studies.audit_round.results import (
    JUDGED_ROUND,
    LEARNED_ASR,
    AuditedRoundModel,
    AuditRoundResults,
    CalibrationChoice,
    DetectionScore,
    MitigationScore,
    RepairedRoundModel,
    RoundAuditRecord,
    RoundRepairRecord,
    RoundScores,
    RoundSummary,
    TrainedRoundModel,
)
from badnets.studies.audit_round.spec import (
    CALIBRATION_ROUND,
    AuditRoundSpec,
    RoundAuditJob,
    RoundModel,
    draw_round,
)

__all__ = [
    "aggregate",
    "breakdown",
    "calibrate",
    "calibrated_model",
    "detection_score",
    "judge",
    "judged_round",
    "mitigation_score",
    "repaired_models",
    "roc_curves",
    "round_scores",
    "summarise_round",
    "trained_model",
]

AUDIT_SECONDS = {"mnist": 60.0, "gtsrb-43": 120.0}  # the budget per model on one CPU core


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


def audited_model(model: TrainedRoundModel, audit: AuditResult) -> AuditedRoundModel:
    """A trained model with what its audit found (a feature the audit could not give is NaN)."""
    return AuditedRoundModel(model, audit.features(), audit.suspected_target, audit.seconds)


def calibrated_model(
    model: AuditedRoundModel, audit: AuditResult, settings: Mapping[str, Any], calibration: LogisticCalibration
) -> AuditedRoundModel:
    """``model`` with the verdict ``badnets audit`` would give had ``calibration`` been shipped: its
    probability, and the suspected target where that says backdoored (``badnets.audit.calibrated``)."""
    verdict = calibrated(audit, settings, calibration)
    return replace(model, backdoor_probability=verdict.backdoor_probability, suspected_target=verdict.suspected_target)


# The calibration's evidence and penalty, chosen on the train round alone by a rule fixed before its audits were
# run: leave-one-out over its labelled models, every subset of up to four of the audit's statistics (all but the
# smallest trigger's success, 1.00 everywhere) at L2 0.3 / 1 / 3; among those with AUROC >= 0.80 on all-to-all
# backdoors, the lowest cross-entropy (within 0.005: fewer statistics). docs/audit.md gives the numbers. Every
# audit still records all of FEATURES as evidence.
CALIBRATION_FEATURES = (
    "nc_log_min_l1_share",
    "nc_log_min_over_median",
    "nc_median_source_anomaly",
    "blend_max_anomaly_index",
)
CALIBRATION_L2 = 1.0
# What the report compares by leave-one-out: the choice, and every statistic at the default penalty.
CALIBRATION_CANDIDATES: tuple[tuple[tuple[str, ...], float], ...] = (
    (CALIBRATION_FEATURES, CALIBRATION_L2),
    (FEATURES, 1.0),
)


def _evidence(
    audited: Sequence[AuditedRoundModel], features: Sequence[str]
) -> tuple[list[AuditedRoundModel], torch.Tensor, torch.Tensor]:
    """The labelled models, their ``(N, F)`` evidence and their 0/1 labels."""
    labelled = [m for m in audited if m.model.label is not None]
    x = torch.tensor([[m.evidence.get(name, math.nan) for name in features] for m in labelled], dtype=torch.float64)
    y = torch.tensor([m.model.label for m in labelled], dtype=torch.float64)
    return labelled, x.reshape(len(labelled), len(features)), y


def calibrate(
    audited: Sequence[AuditedRoundModel],
    *,
    version: str,
    audits: Sequence[Mapping[str, Any]],
    features: Sequence[str] = CALIBRATION_FEATURES,
    l2: float = CALIBRATION_L2,
) -> LogisticCalibration:
    """The backdoor probability fitted on ``audited`` (the train round's models whose label is known), for
    audits run with one of the settings ``audits`` (``badnets.audit.audit_settings``)."""
    labelled, x, y = _evidence(audited, features)
    fitted_on = {
        "round": labelled[0].model.round if labelled else None,
        "models": len(labelled),
        "audits": [dict(a) for a in audits],
        "commit": git_commit(),
    }
    return fit_logistic(x, y, features, version=version, fitted_on=fitted_on, l2=l2)


def leave_one_out(
    audited: Sequence[AuditedRoundModel], features: Sequence[str], l2: float, *, chosen: bool = False
) -> CalibrationChoice:
    """A candidate calibration scored on ``audited`` by leave-one-out (each model's probability from a fit on the
    others): AUROC of the targeted and of the all-to-all backdoors against the clean models, and cross-entropy."""
    labelled, x, y = _evidence(audited, features)
    p = torch.zeros(len(labelled), dtype=torch.float64)
    for i in range(len(labelled)):
        rest = torch.arange(len(labelled)) != i
        if not bool((y[rest] == 0).any() and (y[rest] == 1).any()):  # a tiny round: no fit without both classes
            p[i] = y[rest].mean()
            continue
        fit = fit_logistic(x[rest], y[rest], features, version="leave-one-out", l2=l2)
        p[i] = fit.probabilities(fit.matrix([dict(zip(features, x[i].tolist(), strict=True))]))[0]
    clean = p[y == 0]
    all_to_all = torch.tensor([m.model.mapping == "all-to-all" for m in labelled], dtype=torch.bool)
    backdoored = y == 1
    return CalibrationChoice(
        features=list(features),
        l2=l2,
        models=len(labelled),
        auroc_targeted=auroc(p[backdoored & ~all_to_all], clean),
        auroc_all_to_all=auroc(p[backdoored & all_to_all], clean),
        cross_entropy=cross_entropy(p, y),
        chosen=chosen,
    )


def _targeted(audited: Sequence[AuditedRoundModel]) -> list[AuditedRoundModel]:
    """The all-to-one and single-target backdoors with the clean models (the issue's first target)."""
    return [m for m in audited if m.model.mapping != "all-to-all"]


def _all_to_all(audited: Sequence[AuditedRoundModel]) -> list[AuditedRoundModel]:
    return [m for m in audited if m.model.mapping in (None, "all-to-all")]


def round_scores(name: str, audited: Sequence[AuditedRoundModel]) -> RoundScores:
    """One round's detection scores from each model's ``backdoor_probability``."""
    probability = {m.model.name: m.backdoor_probability or 0.0 for m in audited}
    return RoundScores(
        round=name,
        overall=detection_score(audited, probability),
        targeted=detection_score(_targeted(audited), probability),
        all_to_all=detection_score(_all_to_all(audited), probability),
        by_family=breakdown(audited, probability, "family"),
        by_mapping=breakdown(audited, probability, "mapping"),
        by_dataset=breakdown(audited, probability, "dataset"),
    )


def aggregate(spec: AuditRoundSpec, runs: FinishedJobs) -> AuditRoundResults:
    """The rounds' manifest (every model's ground truth and scores) and each round's summary; once every model
    is audited, the calibration fitted on the train round and the scores of every other round."""
    models = {r.name: [trained_model(m, runs) for m in draw_round(spec, r)] for r in spec.rounds}
    repaired = repaired_models([m for group in models.values() for m in group], runs)
    results = AuditRoundResults(
        spec=asdict(spec),
        rounds=[summarise_round(name, group) for name, group in models.items()],
        models=[m for group in models.values() for m in group],
        repaired=repaired or None,
        mitigation=[mitigation_score(method, repaired) for method in spec.repairs] if repaired else None,
    )
    if not runs.names("audit/") or CALIBRATION_ROUND not in models:
        return results
    records = {m.name: runs.record(f"audit/{m.name}", RoundAuditRecord) for m in results.models}
    audits = {name: AuditResult.from_json(record.audit) for name, record in records.items()}  # parsed once
    audited = {name: [audited_model(m, audits[m.name]) for m in group] for name, group in models.items()}
    labels = {m.model.label for m in audited[CALIBRATION_ROUND]}
    if not {0, 1} <= labels:
        return replace(
            results,
            audited=[m for group in audited.values() for m in group],
            unscored=f"the {CALIBRATION_ROUND} round holds no "
            + ("learned backdoor" if 1 not in labels else "clean model")
            + ", so no calibration can be fitted on it (draw more models with --models, or train longer)",
        )
    train = next(r for r in spec.rounds if r.name == CALIBRATION_ROUND)
    settings = {
        m.name: audit_settings(from_json(RoundAuditJob, records[m.name].config, m.name).audit_spec(Path()))
        for m in results.models
    }
    fitted = [settings[m.model.name] for m in audited[CALIBRATION_ROUND]]
    calibration = calibrate(
        audited[CALIBRATION_ROUND],
        version=f"audit-round:{train.name}:{train.seed}",
        audits=[s for i, s in enumerate(fitted) if s not in fitted[:i]],
    )
    scored = {
        name: [calibrated_model(m, audits[m.model.name], settings[m.model.name], calibration) for m in group]
        for name, group in audited.items()
    }
    choice = [
        leave_one_out(audited[CALIBRATION_ROUND], features, l2, chosen=i == 0)
        for i, (features, l2) in enumerate(CALIBRATION_CANDIDATES)
    ]
    scored_results = replace(
        results,
        audited=[m for group in scored.values() for m in group],
        calibration=calibration.to_json(),
        calibration_choice=choice,
        scores=[round_scores(name, group) for name, group in scored.items() if name != CALIBRATION_ROUND],
    )
    return replace(scored_results, targets=judge(scored_results))


def judged_round(results: AuditRoundResults) -> str | None:
    """The round the targets are judged on: ``JUDGED_ROUND``, else the last scored one; None before any is."""
    if not results.scores:
        return None
    return next((s.round for s in results.scores if s.round == JUDGED_ROUND), results.scores[-1].round)


def judge(results: AuditRoundResults) -> list[Target]:
    """The issue's targets on the judged round (``JUDGED_ROUND``, else the last scored round), over its learned
    backdoors and clean models; none before a round is scored. The "paper" column holds the published anchors
    (other models and data). Intervals: Hanley–McNeil for AUROC, t over models for the cross-entropy, Wilson for
    shares."""
    judged = judged_round(results)
    if judged is None or results.audited is None:
        return []
    audited = [m for m in results.audited if m.model.round == judged and m.model.label is not None]
    losses = [
        cross_entropy(torch.tensor([m.backdoor_probability or 0.0]), torch.tensor([m.model.label])) for m in audited
    ]
    ce, ce_half = mean_ci(losses) if losses else (math.nan, math.nan)
    detected, right = _target_hits(audited, {m.model.name: m.backdoor_probability or 0.0 for m in audited})
    targeted, all_to_all = _auroc_target(_targeted(audited)), _auroc_target(_all_to_all(audited))
    targets = [
        Target(
            f"AUROC, all-to-one + single-target vs clean ({judged} round)",
            "TrojAI best 0.89–0.95",
            "≥ 0.95",
            targeted[0],
            None,
            None if math.isnan(targeted[1]) else targeted[1] >= 0.95,
        ),
        Target(
            "cross-entropy of backdoor_probability",
            "TrojAI best 0.30–0.32",
            "≤ 0.30",
            f"{ce:.3f} ± {ce_half:.3f} ({len(losses)} models)",
            None,
            None if math.isnan(ce) else ce <= 0.30,
        ),
        Target(
            "correct target among detected (p ≥ 0.5)",
            "–",
            "≥ 90%",
            share_ci(right, detected),
            None,
            right / detected >= 0.9 if detected else None,
        ),
        Target(
            "AUROC, all-to-all vs clean",
            "not detected before",
            "≥ 0.80",
            all_to_all[0],
            None,
            None if math.isnan(all_to_all[1]) else all_to_all[1] >= 0.80,
        ),
    ]
    for dataset, budget in AUDIT_SECONDS.items():
        seconds = [m.seconds for m in results.audited if m.model.dataset == dataset and m.model.round == judged]
        if seconds:
            median = statistics.median(seconds)
            ours = f"median {median:.0f} s, max {max(seconds):.0f} s ({len(seconds)} models)"
            targets.append(
                Target(f"audit time per model ({dataset})", "–", f"≤ {budget:.0f} s", ours, None, median <= budget)
            )
    if results.repaired:
        models = sorted({r.model for r in results.repaired})
        removed = {
            method: sum(r.removed for r in results.repaired if r.method == method) for method in results.spec["repairs"]
        }
        best = max(removed, key=lambda method: removed[method])
        oracle = len({r.model for r in results.repaired if r.removed})
        targets.append(
            Target(
                "best mitigation: ASR ≤ 5% at clean drop ≤ 1 pt",
                "BackdoorBench best: 1.48% ASR at −1.36 pt",
                "≥ 90% of learned backdoors",
                f"{best}: {share_ci(removed[best], len(models))}; best per model (oracle): {oracle}/{len(models)}",
                None,
                removed[best] / len(models) >= 0.9,
            )
        )
    return targets


def _probabilities_and_labels(models: Sequence[AuditedRoundModel]) -> tuple[torch.Tensor, torch.Tensor]:
    """The models' backdoor probabilities (float64; none counts 0) and whether each is backdoored (bool)."""
    p = torch.tensor([m.backdoor_probability or 0.0 for m in models], dtype=torch.float64)
    return p, torch.tensor([m.model.label == 1 for m in models], dtype=torch.bool)


def _auroc_target(models: Sequence[AuditedRoundModel]) -> tuple[str, float]:
    """``AUROC [95% interval] (backdoored, clean)`` of the models' probabilities, and the AUROC (NaN: one side
    is empty)."""
    p, y = _probabilities_and_labels(models)
    area = auroc(p[y], p[~y])
    if math.isnan(area):
        return f"not scored ({int(y.sum())} backdoored, {int((~y).sum())} clean)", area
    low, high = auroc_interval(p[y], p[~y])
    return f"{area:.3f} [{low:.3f}, {high:.3f}] ({int(y.sum())} backdoored, {int((~y).sum())} clean)", area


def roc_curves(results: AuditRoundResults) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Per scored round, the ROC curves of ``backdoor_probability`` over the learned backdoors and the clean
    models: all-to-one + single-target vs clean, all-to-all vs clean, and each dataset's models alone (the
    groups of ``round_scores``; a group without both labels has no curve), each labelled with its AUROC."""
    scored = {s.round for s in results.scores or ()}
    panels: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for name in sorted(scored):
        audited = [m for m in results.audited or () if m.model.round == name and m.model.label is not None]
        groups = {"all-to-one + single vs clean": _targeted(audited), "all-to-all vs clean": _all_to_all(audited)}
        for dataset in sorted({m.model.dataset for m in audited}):
            groups[f"{dataset}: all vs clean"] = [m for m in audited if m.model.dataset == dataset]
        curves = {}
        for label, group in groups.items():
            p, y = _probabilities_and_labels(group)
            if bool(y.any()) and bool((~y).any()):
                curves[f"{label} (AUROC {auroc(p[y], p[~y]):.3f})"] = roc_curve(p[y], p[~y])
        panels[f"{name} round"] = curves
    return panels


def repaired_models(models: Sequence[TrainedRoundModel], runs: FinishedJobs) -> list[RepairedRoundModel]:
    """Every repair the third phase ran on a learned backdoor, in job order (skipped ones left out)."""
    by_name = {m.name: m for m in models}
    out = []
    for name in runs.names("repair/"):
        record = runs.record(name, RoundRepairRecord)
        if record.skipped is not None or record.before is None or record.after is None:
            continue
        _, method, model_name = name.split("/", 2)
        model = by_name[model_name]
        out.append(
            RepairedRoundModel(
                model=model_name,
                dataset=model.dataset,
                family=str(model.family),
                mapping=str(model.mapping),
                method=method,
                attack_success_before=float(record.before["attack_success_rate"]),
                attack_success_after=float(record.after["attack_success_rate"]),
                clean_accuracy_before=float(record.before["clean_accuracy"]),
                clean_accuracy_after=float(record.after["clean_accuracy"]),
                seconds=float(record.timing["job_seconds"]),
            )
        )
    return out


def mitigation_score(method: str, repaired: Sequence[RepairedRoundModel]) -> MitigationScore:
    """How ``method`` did over the repaired models: removed share overall, per family and per dataset."""
    mine = [r for r in repaired if r.method == method]

    def share(group: Sequence[RepairedRoundModel]) -> float:
        return sum(r.removed for r in group) / len(group) if group else math.nan

    def mean(values: Sequence[float]) -> float:
        return statistics.fmean(values) if values else math.nan

    return MitigationScore(
        method=method,
        models=len(mine),
        removed=share(mine),
        mean_attack_success_after=mean([r.attack_success_after for r in mine]),
        mean_clean_drop_points=mean([100 * (r.clean_accuracy_before - r.clean_accuracy_after) for r in mine]),
        mean_seconds=mean([r.seconds for r in mine]),
        removed_by_family={f: share([r for r in mine if r.family == f]) for f in sorted({r.family for r in mine})},
        removed_by_dataset={d: share([r for r in mine if r.dataset == d]) for d in sorted({r.dataset for r in mine})},
    )


def detection_score(
    models: Sequence[AuditedRoundModel], probability: Mapping[str, float], *, threshold: float = VERDICT_PROBABILITY
) -> DetectionScore:
    """Score ``probability`` (model name → backdoor probability) over ``models``; backdoors that were not learned
    are left out. ``target_correct`` is over the detected (p ≥ ``threshold``) backdoored models that have one
    target (all-to-one, single-target)."""
    scored = [m for m in models if m.model.label is not None]
    p = torch.tensor([probability[m.model.name] for m in scored], dtype=torch.float64)
    y = torch.tensor([m.model.label for m in scored], dtype=torch.float64)
    positive, negative = p[y == 1], p[y == 0]
    detected, correct = _target_hits(scored, probability, threshold)
    return DetectionScore(
        n_backdoored=len(positive),
        n_clean=len(negative),
        auroc=auroc(positive, negative),
        cross_entropy=cross_entropy(p, y) if len(scored) else math.nan,
        tpr_at_5_fpr=tpr_at_fpr(positive, negative, 0.05),
        target_correct=correct / detected if detected else math.nan,
    )


def _target_hits(
    models: Sequence[AuditedRoundModel], probability: Mapping[str, float], threshold: float = VERDICT_PROBABILITY
) -> tuple[int, int]:
    """How many learned backdoors with one target (all-to-one, single-target) score at least ``threshold``, and
    of those how many the audit suspected the right target of."""
    detected = [
        m
        for m in models
        if m.model.label == 1 and m.model.target is not None and probability[m.model.name] >= threshold
    ]
    return len(detected), sum(m.suspected_target == m.model.target for m in detected)


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
