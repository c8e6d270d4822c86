# SPDX-License-Identifier: Apache-2.0
"""The study of traffic signs: LISA classifiers and the road-photo detector (§5).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``report``: renders from ``results.json`` alone; ``run``: the three in order.
"""

from __future__ import annotations

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
    "TrafficStudySpec",
    "attack_spec",
    "build_jobs",
    "detector_spec",
    "random_target",
    "run_traffic_study",
    "single_target",
]
