# SPDX-License-Identifier: Apache-2.0
"""The study of the defense scoreboard (audit, STRIP, AC, Spectral, repairs).

``spec``: what runs (the spec, its jobs and phases); ``analysis``: loads models and data, computes
``results.json``; ``results``: what ``results.json`` holds, typed; ``report``: renders from those
results alone; ``run``: the three in order.
"""

from __future__ import annotations

from badnets.studies.defenses.results import DefenseResults
from badnets.studies.defenses.run import run_defense_study
from badnets.studies.defenses.spec import LEARNED, DefenseStudySpec, EvalSpec, build_jobs, evaluate_defenses

__all__ = [
    "LEARNED",
    "DefenseResults",
    "DefenseStudySpec",
    "EvalSpec",
    "build_jobs",
    "evaluate_defenses",
    "run_defense_study",
]
