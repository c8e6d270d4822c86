# SPDX-License-Identifier: Apache-2.0
"""A sweep's typed results: one row per finished cell, the failed cells, the spec and the timing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from badnets.records import JobsTiming

__all__ = ["SUMMARY_METRICS", "SweepResults", "SweepRow"]

# The summary's columns after the swept values: what each cell scored, and its seconds (training and scoring).
SUMMARY_METRICS = (
    "clean_accuracy",
    "clean_error",
    "attack_success_rate",
    "backdoor_error",
    "n_backdoor",
    "seconds",
)


@dataclass(frozen=True)
class SweepRow:
    """One finished cell: its name, the values it swept, and its scores (DESIGN.md §3)."""

    cell: str
    values: dict[str, Any]
    clean_accuracy: float
    clean_error: float
    attack_success_rate: float
    backdoor_error: float
    n_backdoor: int
    seconds: float

    def flat(self) -> dict[str, Any]:
        """The summary row: ``cell``, every swept value as its own column, then the metrics."""
        return {"cell": self.cell, **self.values, **{key: getattr(self, key) for key in SUMMARY_METRICS}}


@dataclass(frozen=True)
class SweepResults:
    """A sweep's results: the swept options, one row per finished cell, the failed cells (name → error), the
    spec, the timing of the last invocation and the manifest."""

    sweep_axes: list[str]
    rows: list[SweepRow]
    failed: dict[str, str]
    spec: dict[str, Any]
    backend: str
    timing: JobsTiming | None = None
    manifest: dict[str, Any] | None = None
