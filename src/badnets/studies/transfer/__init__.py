# SPDX-License-Identifier: Apache-2.0
"""The study of transfer learning: US → Swedish signs (§5.3).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.transfer.results import TransferResults
from badnets.studies.transfer.run import run_transfer_study
from badnets.studies.transfer.spec import (
    FC_LAYERS,
    LAST_CONV,
    RetrainSpec,
    TransferStudySpec,
    find_backdoor_neurons,
    score_domain,
    strengthen,
)

__all__ = [
    "FC_LAYERS",
    "LAST_CONV",
    "RetrainSpec",
    "TransferResults",
    "TransferStudySpec",
    "find_backdoor_neurons",
    "run_transfer_study",
    "score_domain",
    "strengthen",
]
