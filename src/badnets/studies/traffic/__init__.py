# SPDX-License-Identifier: Apache-2.0
"""The study of traffic signs: LISA classifiers and the road-photo detector (§5).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.traffic.results import TrafficResults
from badnets.studies.traffic.run import run_traffic_study
from badnets.studies.traffic.spec import (
    KINDS,
    PAPER,
    TrafficStudySpec,
    attack_spec,
    build_jobs,
    detector_spec,
    random_target,
    single_target,
)

__all__ = [
    "KINDS",
    "PAPER",
    "TrafficResults",
    "TrafficStudySpec",
    "attack_spec",
    "build_jobs",
    "detector_spec",
    "random_target",
    "run_traffic_study",
    "single_target",
]
