# SPDX-License-Identifier: Apache-2.0
"""A calibrated probability from named evidence: a logistic model over a few standardised features.

The audit's detectors each give a statistic on their own scale (Neural Cleanse's anomaly index, a trigger norm, a
count of trigger-selective neurons...). ``fit_logistic`` weighs them into one ``backdoor_probability`` by
L2-regularised maximum likelihood on a labelled round of models (the TrojAI convention: fitted on a *train* round
only, judged on another). The fit is Newton's method in float64 from zero weights, so the same round gives the
same model on every machine; the intercept is not penalised, so the fitted probabilities average to the round's
base rate. A model is plain numbers (``to_json`` / ``from_json``), shipped with the package and versioned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import torch

from badnets.errors import ConfigError

__all__ = ["SHIPPED", "LogisticCalibration", "fit_logistic", "shipped_calibration"]

SHIPPED = "calibrations"  # the package folder of shipped calibrations, one JSON file per name


@dataclass(frozen=True)
class LogisticCalibration:
    """``p = σ(bias + Σ weights · (x − mean) / scale)`` over ``features``.

    Attributes:
        version: names this fit (results record which calibration produced a probability).
        features: the evidence's names, in order.
        mean, scale: the train round's mean and standard deviation of each feature (scale 1 where constant).
        weights, bias: the fitted coefficients on the standardised features.
        l2: the ridge penalty the fit used.
        fitted_on: what it was fitted on (round, models, commit), for the record.
    """

    version: str
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    l2: float
    fitted_on: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {len(self.features), len(self.mean), len(self.scale), len(self.weights)}
        if len(sizes) != 1:
            raise ConfigError(
                f"calibration {self.version!r} is malformed: features, mean, scale, weights differ in length"
            )

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """``(N, F)`` float64 of the features of each row; a missing feature is an error, a NaN one (a detector
        that could not run) is imputed at the train mean.

        Raises:
            ConfigError: a row lacks one of ``features``.
        """
        for row in rows:
            missing = [name for name in self.features if name not in row]
            if missing:
                raise ConfigError(
                    f"evidence lacks {missing} that calibration {self.version!r} needs; run those detectors"
                )
        x = torch.tensor([[float(row[name]) for name in self.features] for row in rows], dtype=torch.float64)
        return torch.where(torch.isfinite(x), x, torch.tensor(self.mean, dtype=torch.float64))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` probabilities of ``(N, F)`` raw feature values."""
        z = (x.double() - torch.tensor(self.mean, dtype=torch.float64)) / torch.tensor(self.scale, dtype=torch.float64)
        return torch.sigmoid(self.bias + z @ torch.tensor(self.weights, dtype=torch.float64))

    def probability(self, evidence: Mapping[str, float]) -> float:
        """The probability of one model's evidence."""
        return float(self.probabilities(self.matrix([evidence]))[0])

    def fits(self, settings: Mapping[str, Any]) -> bool:
        """Whether evidence gathered with ``settings`` (the audit's detectors and their options) is what this
        calibration was fitted on (``fitted_on["audits"]``: the settings of its train round's audits): other
        settings give statistics of another distribution."""
        fitted: list[Any] = list(self.fitted_on.get("audits", []))
        return json.loads(json.dumps(dict(settings))) in fitted

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "l2": self.l2,
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogisticCalibration:
        return cls(
            str(data["version"]),
            tuple(str(f) for f in data["features"]),
            tuple(float(v) for v in data["mean"]),
            tuple(float(v) for v in data["scale"]),
            tuple(float(v) for v in data["weights"]),
            float(data["bias"]),
            float(data["l2"]),
            dict(data.get("fitted_on", {})),
        )


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    features: Sequence[str],
    *,
    version: str,
    l2: float = 1.0,
    fitted_on: Mapping[str, Any] | None = None,
    max_steps: int = 100,
) -> LogisticCalibration:
    """Fit ``p(y = 1 | x)`` on ``(N, F)`` evidence ``x`` and 0/1 labels ``y``.

    Raises:
        ConfigError: shapes disagree, a label is not 0/1, both classes are not present, or the fit diverges.
    """
    x, y = x.double(), y.double()
    if x.dim() != 2 or x.shape[1] != len(features) or len(x) != len(y):
        raise ConfigError(f"evidence must be (N, {len(features)}) with one label per row, got {tuple(x.shape)}")
    if not bool(((y == 0) | (y == 1)).all()) or not bool((y == 0).any() and (y == 1).any()):
        raise ConfigError("labels must be 0 (clean) and 1 (backdoored), with both present")
    if l2 < 0:
        raise ConfigError(f"the L2 penalty must be >= 0, got {l2}")
    finite = torch.isfinite(x)
    mean = torch.stack(
        [x[finite[:, j], j].mean() if finite[:, j].any() else x.new_tensor(0.0) for j in range(x.shape[1])]
    )
    x = torch.where(finite, x, mean)
    scale = x.std(dim=0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    design = torch.cat([torch.ones(len(x), 1, dtype=torch.float64), (x - mean) / scale], dim=1)
    penalty = torch.full((design.shape[1],), float(l2), dtype=torch.float64)
    penalty[0] = 0.0  # the intercept is free, so the fitted probabilities average to the base rate
    w = torch.zeros(design.shape[1], dtype=torch.float64)
    for _ in range(max_steps):
        p = torch.sigmoid(design @ w)
        gradient = design.T @ (p - y) + penalty * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + torch.diag(penalty + 1e-9)
        step = torch.linalg.solve(hessian, gradient)
        w = w - step
        if float(step.abs().max()) < 1e-10:
            break
    if not bool(torch.isfinite(w).all()) or any(math.isinf(v) for v in w.tolist()):
        raise ConfigError("the calibration fit diverged; raise the L2 penalty")
    return LogisticCalibration(
        version=version,
        features=tuple(features),
        mean=tuple(mean.tolist()),
        scale=tuple(scale.tolist()),
        weights=tuple(w[1:].tolist()),
        bias=float(w[0]),
        l2=float(l2),
        fitted_on=dict(fitted_on or {}),
    )


def shipped_calibration(name: str = "audit") -> LogisticCalibration | None:
    """The calibration shipped with this version of badnets as ``badnets/calibrations/NAME.json`` (fitted on an
    audit round's train round; see ``badnets.studies.audit_round``), or None where none is shipped."""
    path = resources.files("badnets").joinpath(SHIPPED, f"{name}.json")
    if not path.is_file():
        return None
    return LogisticCalibration.from_json(json.loads(path.read_text(encoding="utf-8")))
