# SPDX-License-Identifier: Apache-2.0
"""The audit round: the audit judged on hundreds of models it has never seen (issue 16; being built).

``spec``: the rounds and the seeded generator of their models; ``results``: an audited model and a detection score
as records; ``analysis``: the round's scores (AUROC, cross-entropy, TPR at 5% FPR, target) and their breakdowns.
"""

from __future__ import annotations

from badnets.studies.audit_round.spec import FAMILIES, AuditRoundSpec, Round, RoundModel, draw_round

__all__ = ["FAMILIES", "AuditRoundSpec", "Round", "RoundModel", "draw_round"]
