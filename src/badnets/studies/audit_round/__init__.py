# SPDX-License-Identifier: Apache-2.0
"""The audit round: the audit judged the way the field judges trojan detectors, on hundreds of models it has never
seen (seeded train / validation / test rounds), every model audited, a ``backdoor_probability`` calibrated on the
train round and scored on the others, and the test round's backdoors repaired by each mitigation.

``spec``: the rounds, the seeded generator of their models and the phases (train, audit, repair); ``results``: a
trained model's ground truth, an audited model, a repaired one and a detection score as records; ``analysis``: the
round manifest, the calibration, the round's scores (AUROC, cross-entropy, TPR at 5% FPR, target) with their
breakdowns, the mitigation table and the mistakes; ``report``: rendered from ``results.json`` alone; ``run``: train,
audit and repair (resuming, chunked, archived), analyse, render.
"""

from __future__ import annotations

from badnets.studies.audit_round.run import run_audit_round
from badnets.studies.audit_round.spec import FAMILIES, AuditRoundSpec, Round, RoundModel, draw_round

__all__ = ["FAMILIES", "AuditRoundSpec", "Round", "RoundModel", "draw_round", "run_audit_round"]
