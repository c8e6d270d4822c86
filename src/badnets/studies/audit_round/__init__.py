# SPDX-License-Identifier: Apache-2.0
"""The audit round: the audit judged on hundreds of models it has never seen (issue 16; being built: the rounds
train and their manifest is written, the audit's scoring of them comes next).

``spec``: the rounds and the seeded generator of their models; ``results``: a trained model's ground truth, an
audited model and a detection score as records; ``analysis``: the round manifest, and the round's scores (AUROC,
cross-entropy, TPR at 5% FPR, target) with their breakdowns; ``report``: rendered from ``results.json`` alone;
``run``: train (resuming), analyse, render.
"""

from __future__ import annotations

from badnets.studies.audit_round.run import run_audit_round
from badnets.studies.audit_round.spec import FAMILIES, AuditRoundSpec, Round, RoundModel, draw_round

__all__ = ["FAMILIES", "AuditRoundSpec", "Round", "RoundModel", "draw_round", "run_audit_round"]
