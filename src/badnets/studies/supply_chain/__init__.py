# SPDX-License-Identifier: Apache-2.0
"""The study of the Caffe-Model-Zoo replay (§6).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.supply_chain.results import SupplyChainResults
from badnets.studies.supply_chain.run import run_supply_chain_study
from badnets.studies.supply_chain.spec import ATTACKS, AUTHORS, DEFENSES, SupplyChainSpec, build_jobs, replay

__all__ = [
    "ATTACKS",
    "AUTHORS",
    "DEFENSES",
    "SupplyChainResults",
    "SupplyChainSpec",
    "build_jobs",
    "replay",
    "run_supply_chain_study",
]
