# SPDX-License-Identifier: Apache-2.0
"""Experiments: short compositions of data → trigger → poison → train → metrics → report."""

from __future__ import annotations

from badnets.experiments.attack import AttackResult, AttackSpec, evaluate_attack, run_attack

__all__ = ["AttackResult", "AttackSpec", "evaluate_attack", "run_attack"]
