# SPDX-License-Identifier: Apache-2.0
"""What an audit found, as typed values: written to ``results.json`` by ``to_json`` and read back by
``from_json`` (the one pair), so the CLI and the report card use attributes that ``mypy --strict`` checks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from badnets.defenses.neural_cleanse import mad_anomaly_index

__all__ = ["CALIBRATED", "FEATURES", "VERDICT_PROBABILITY", "AuditResult", "AuditedModel", "DetectorReport"]

# The audit's statistics by name: what a calibration weighs into a backdoor probability. Trigger sizes are taken
# as logs of their share of the image, so one calibration reads 28-px digits and 32-px signs alike. The two trigger
# searches (Neural Cleanse's mask, ``nc_``, and the blend search's one opacity, ``blend_``) give the same
# statistics of their per-class norms (``TRIGGER_SEARCHES``).
FEATURES = (
    "nc_max_anomaly_index",  # Neural Cleanse: how far the smallest trigger lies below the others (log-MAD)
    "nc_log_min_l1_share",  # the smallest trigger's mask L1 as a share of the image
    "nc_log_min_over_median",  # the smallest trigger against the median class's
    "nc_log_median_l1_share",  # the median class's trigger: small for all of them under an all-to-all backdoor
    "nc_smallest_trigger_asr",  # how reliably the smallest recovered trigger flips the clean images
    "nc_median_source_anomaly",  # per source class: how far its smallest trigger lies below its others (log-MAD),
    # the median over sources: high when every class has its own tiny trigger to some class (all-to-all)
    "blend_max_anomaly_index",  # the blend search: the same statistics of the smallest opacity per class
    "blend_log_min_l1_share",  # (the share of the image is the opacity itself)
    "blend_log_min_over_median",
    "blend_log_median_l1_share",
    "dormant_max_share",  # trigger-selective units: the largest share of images one stimulated unit flips
)
TRIGGER_SEARCHES = {"nc": "neural_cleanse", "blend": "blend_search"}  # feature prefix: detector

CALIBRATED = "backdoor_probability"  # ``decided_by`` when the calibrated probability decides the verdict
VERDICT_PROBABILITY = 0.5  # the calibrated verdict's threshold: backdoored from here
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
        backdoor_probability: the audit's statistics weighed by the shipped calibration (None where none is
            shipped or the audit ran with other settings than it was fitted on: ``calibration`` then says which).
        calibration: the version of the calibration that gave the probability, or why there is none.
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
    backdoor_probability: float | None = None
    calibration: str = "none shipped"

    @property
    def suspected_target_name(self) -> str | None:
        return None if self.suspected_target is None else self.model.classes[self.suspected_target]

    def likeliest_target(self) -> int | None:
        """The class a backdoor most likely sends to: the one with the smallest trigger of the trigger search
        (``TRIGGER_SEARCHES``) whose smallest trigger stands out most (the larger anomaly index): a patch shows
        in Neural Cleanse's masks, a blend in the blend search's opacities. None without either search."""
        searches = [self.detectors[name] for name in TRIGGER_SEARCHES.values() if name in self.detectors]
        if not searches:
            return None
        outlying = max(searches, key=lambda found: float(found.details["max_anomaly_index"]))
        searched = {c: float(v) for c, v in enumerate(outlying.details["l1"]) if v is not None}
        return min(searched, key=searched.__getitem__) if searched else None

    def features(self) -> dict[str, float]:
        """The audit's statistics by name (``FEATURES``; NaN where their detector did not run)."""
        out = dict.fromkeys(FEATURES, math.nan)
        _, height, width = self.model.input
        area = float(height * width)
        for prefix, name in TRIGGER_SEARCHES.items():
            search = self.detectors.get(name)
            if search is not None:
                out |= {
                    key: value
                    for key, value in _trigger_search_features(prefix, search.details, area).items()
                    if key in out
                }
        dormant = self.detectors.get("dormant_neurons")
        if dormant is not None:
            out["dormant_max_share"] = dormant.score
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "suspected_target": self.suspected_target,
            "suspected_target_name": self.suspected_target_name,
            "backdoor_probability": self.backdoor_probability,
            "calibration": self.calibration,
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
            backdoor_probability=data.get("backdoor_probability"),
            calibration=str(data.get("calibration", "none shipped")),
        )


def _trigger_search_features(prefix: str, details: Mapping[str, Any], area: float) -> dict[str, float]:
    """The statistics of one trigger search's per-class norms (a Neural Cleanse record), named ``prefix_...``."""
    searched = {c: max(float(v), 1e-6) for c, v in enumerate(details["l1"]) if v is not None}
    smallest = min(searched, key=searched.__getitem__)
    median = statistics.median(searched.values())
    return {
        f"{prefix}_max_anomaly_index": float(details["max_anomaly_index"]),
        f"{prefix}_log_min_l1_share": math.log(searched[smallest] / area),
        f"{prefix}_log_min_over_median": math.log(searched[smallest] / median),
        f"{prefix}_log_median_l1_share": math.log(median / area),
        f"{prefix}_smallest_trigger_asr": float(details["asr"][smallest]),
        f"{prefix}_median_source_anomaly": _median_source_anomaly(details),
    }


def _median_source_anomaly(details: Mapping[str, Any]) -> float:
    """The median over source classes of the anomaly index (Neural Cleanse's log-MAD test) of the source's
    smallest trigger among its triggers to the other classes; NaN without per-source searches."""
    by_source: dict[int, list[float]] = {}
    for source, l1 in zip(details.get("trial_sources", []), details.get("trial_l1", []), strict=True):
        if source is not None:
            by_source.setdefault(int(source), []).append(float(l1))
    indices = [float(mad_anomaly_index(torch.tensor(l1)).max()) for l1 in by_source.values() if len(l1) >= 3]
    return statistics.median(indices) if indices else math.nan
