# SPDX-License-Identifier: Apache-2.0
"""What an audit found, as typed values: written to ``results.json`` by ``to_json`` and read back by
``from_json`` (the one pair), so the CLI and the report card use attributes that ``mypy --strict`` checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AuditResult", "AuditedModel", "DetectorReport"]

Verdict = Literal["clean", "backdoored"]
Evidence = Literal["agrees", "disagrees", "silent"]


@dataclass(frozen=True)
class DetectorReport:
    """One model detector's answer; ``details`` is the detector's own record (per-class numbers and settings)."""

    flagged: bool
    suspected_target: int | None
    score_name: str
    score: float
    seconds: float
    details: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "suspected_target": self.suspected_target,
            "score_name": self.score_name,
            "score": self.score,
            "seconds": self.seconds,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DetectorReport:
        return cls(
            bool(data["flagged"]),
            None if data["suspected_target"] is None else int(data["suspected_target"]),
            str(data["score_name"]),
            float(data["score"]),
            float(data["seconds"]),
            dict(data["details"]),
        )


@dataclass(frozen=True)
class AuditedModel:
    """What was audited: the model as given, its weights file, its input shape and class names."""

    spec: str
    weights: str | None
    input: tuple[int, int, int]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class AuditResult:
    """An audit: the verdict of the deciding detector, the others' evidence, and how it was run.

    Attributes:
        evidence: for each detector but the deciding one, how it bears on the verdict.
        config, manifest: the audit's spec and the run manifest (versions, data hashes, commit), as recorded.
    """

    verdict: Verdict
    suspected_target: int | None
    decided_by: str
    evidence: Mapping[str, Evidence]
    detectors: Mapping[str, DetectorReport]
    model: AuditedModel
    clean_images: int
    seconds: float
    config: Mapping[str, Any]
    manifest: Mapping[str, Any]

    @property
    def suspected_target_name(self) -> str | None:
        return None if self.suspected_target is None else self.model.classes[self.suspected_target]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "suspected_target": self.suspected_target,
            "suspected_target_name": self.suspected_target_name,
            "decided_by": self.decided_by,
            "evidence": dict(self.evidence),
            "detectors": {name: d.to_json() for name, d in self.detectors.items()},
            "model": {
                "spec": self.model.spec,
                "weights": self.model.weights,
                "input": list(self.model.input),
                "classes": list(self.model.classes),
            },
            "clean_images": self.clean_images,
            "timing": {"seconds": self.seconds},
            "config": dict(self.config),
            "manifest": dict(self.manifest),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditResult:
        model = data["model"]
        c, h, w = (int(v) for v in model["input"])
        verdict = data["verdict"]
        if verdict not in ("clean", "backdoored"):
            raise ValueError(f"an audit's verdict is clean or backdoored, got {verdict!r}")
        return cls(
            verdict=verdict,
            suspected_target=data["suspected_target"],
            decided_by=str(data["decided_by"]),
            evidence=dict(data["evidence"]),
            detectors={name: DetectorReport.from_json(d) for name, d in data["detectors"].items()},
            model=AuditedModel(str(model["spec"]), model["weights"], (c, h, w), tuple(model["classes"])),
            clean_images=int(data["clean_images"]),
            seconds=float(data["timing"]["seconds"]),
            config=dict(data["config"]),
            manifest=dict(data["manifest"]),
        )
