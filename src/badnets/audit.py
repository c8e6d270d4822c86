# SPDX-License-Identifier: Apache-2.0
"""``badnets audit``: is there a backdoor in this model? The model detectors on a small clean sample.

The defender has the model and clean validation images, never the trigger or the training data. The registered
model detectors run (``badnets.defenses.registry``; by default Neural Cleanse, the smallest trigger per class with
a MAD outlier test; the blend search, the same test on the smallest full-image blend per class; and
trigger-selective neurons, the paper's dormant-neuron idea by stimulation). Where the
shipped calibration applies (the audit ran with the settings it was fitted on), the calibrated
``backdoor_probability`` decides the verdict and every detector is evidence beside it. Otherwise the first detector
decides: Neural Cleanse by default, whose outlier test has a stated false-alarm rate; the others are reported as
evidence beside it (the selective neurons have no such test, and on clean MNIST models one unit in eight models
sent ≥ 90% of images to one class).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from badnets._io import ensure_writable_dir, run_manifest
from badnets.audit_result import (
    CALIBRATED,
    VERDICT_PROBABILITY,
    AuditedModel,
    AuditResult,
    DetectorReport,
    Evidence,
)
from badnets.calibration import LogisticCalibration, shipped_calibration
from badnets.data import ImageDataset, dataset_source
from badnets.defenses.interface import CleanData, DefenseOptions, ModelFinding
from badnets.defenses.neural_cleanse import NeuralCleanse, NeuralCleanseResult
from badnets.defenses.registry import model_detector
from badnets.errors import ConfigError
from badnets.models.loading import check_code_trusted, check_fits, load_any_model
from badnets.train import check_device, one_cpu_thread, resolve_device

__all__ = [
    "CALIBRATED",
    "DATASET_AUDIT_OPTIONS",
    "DEFAULT_DETECTORS",
    "VERDICT_PROBABILITY",
    "Audit",
    "AuditSpec",
    "CleanSample",
    "audit_model",
    "audit_options",
    "audit_settings",
    "calibrated",
    "clean_sample",
    "defender_setup",
    "evidence",
    "run_audit",
]


DEFAULT_DETECTORS = ("neural_cleanse", "blend_search", "dormant_neurons")

# The trigger search each dataset's audit runs unless told otherwise: the settings the audit round fits the shipped
# calibration on (a calibration gives a probability only for the settings it was fitted on), within the budget of
# one CPU core and a minute (MNIST) or two (GTSRB-43) per model. MNIST's 10 classes afford the per-source search
# (90 pairs) at 300 steps; GTSRB's 43 would make 1,806 pairs, so it gets the paper's one search per target, 150
# steps of 4 images. Other datasets take Neural Cleanse's own defaults.
DATASET_AUDIT_OPTIONS: Mapping[str, DefenseOptions] = {
    "mnist": DefenseOptions(search_steps=300),
    "gtsrb-43": DefenseOptions(search_steps=150, search_images=4, per_source=False),
}


def audit_options(dataset: str, **given: Any) -> DefenseOptions:
    """``dataset``'s default audit options (``DATASET_AUDIT_OPTIONS``, else ``DefenseOptions()``) with every
    option in ``given`` that is not None in their place."""
    return replace(
        DATASET_AUDIT_OPTIONS.get(dataset, DefenseOptions()), **{k: v for k, v in given.items() if v is not None}
    )


@dataclass(frozen=True, kw_only=True)
class AuditSpec:
    """One audit.

    Attributes:
        model, weights: what to audit (see ``badnets.models.loading``).
        dataset: the model's input domain: shape, classes and the clean images (its test split).
        clean_images: how many clean images the defender uses (a seeded sample of the test split).
        mean, std: per-channel normalisation the model expects (it then receives [0, 1] input).
        trust_code: allow a ``model`` that names Python code to import and run (``FILE.py:Class``,
            ``package.module:factory``); without it such a model is refused before anything of it runs.
        detectors: registered model detectors to run; the first decides the verdict, the others are evidence.
        options: what the detectors take (seed, trigger-search steps, per-source search).
    """

    model: str
    weights: str | None = None
    dataset: str = "mnist"
    data_dir: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    clean_images: int = 1000
    seed: int = 0
    device: str = "auto"
    trust_code: bool = False
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    options: DefenseOptions = field(default_factory=DefenseOptions)

    def __post_init__(self) -> None:
        if self.clean_images < 10:
            raise ConfigError(f"an audit needs at least 10 clean images, got {self.clean_images}")
        if not self.detectors or len(set(self.detectors)) != len(self.detectors):
            raise ConfigError(f"name one or more different model detectors, got {list(self.detectors)}")
        for name in self.detectors:
            model_detector(name, self.options)  # an unknown name fails here, before anything loads
        check_code_trusted(self.model, self.trust_code)
        check_device(self.device)


@dataclass(frozen=True)
class CleanSample:
    """The defender's clean images: a seeded sample of the dataset's test split."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    rest: ImageDataset  # the rest of the test split: for scoring a repair, never seen by the defender

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def clean(self) -> CleanData:
        """The sample as every defense takes it."""
        return CleanData(self.images, self.labels, len(self.classes))


def clean_sample(spec: AuditSpec) -> CleanSample:
    """``spec.clean_images`` images of ``spec.dataset``'s test split, in a seeded order; at most half of the split,
    so the other half is left to score what the defender did (LISA's test split has only 1,205 crops)."""
    _, test = dataset_source(spec.dataset).load(spec.data_dir)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(spec.seed))
    n = min(spec.clean_images, len(test) // 2)
    mine, rest = order[:n], order[n:]
    held = ImageDataset(test.images[rest], test.labels[rest], test.classes)
    return CleanSample(test.images[mine], test.labels[mine], tuple(test.classes), held)


def defender_setup(spec: AuditSpec) -> tuple[CleanSample, torch.nn.Module]:
    """The defender's clean sample and the model, loaded, checked to fit the dataset (one forward pass) and put
    on ``spec.device`` (the defenses run where the model is; the images stay uint8 on the CPU until a batch).

    Raises:
        ConfigError: non-square images, a model that does not fit, bad mean/std.
    """
    sample = clean_sample(spec)
    c, h, w = sample.shape
    if h != w:
        raise ConfigError(f"the dataset's images are {h}×{w}; the defenses need square images")
    model = load_any_model(
        spec.model,
        weights=Path(spec.weights) if spec.weights else None,
        in_channels=c,
        num_classes=len(sample.classes),
        image_size=h,
        mean=spec.mean,
        std=spec.std,
        trust_code=spec.trust_code,
    )
    check_fits(model, sample.images, len(sample.classes))
    return sample, model.to(resolve_device(spec.device))


def evidence(decided: int | None, flagged: int | None) -> Evidence:
    """How a detector that flagged ``flagged`` bears on a verdict that suspects ``decided`` (None: clean):
    ``agrees`` (the same target), ``disagrees`` (another class, or a model the verdict passes), ``silent`` (it
    flags nothing)."""
    if flagged is None:
        return "silent"
    return "agrees" if flagged == decided else "disagrees"


def _report(finding: ModelFinding) -> DetectorReport:
    return DetectorReport(
        finding.suspected_target is not None,
        finding.suspected_target,
        finding.score_name,
        finding.score,
        finding.seconds,
        finding.to_json(),
    )


@dataclass(frozen=True)
class Audit:
    """An audit's result with what its report draws on: every detector's finding and the clean images."""

    result: AuditResult
    findings: Mapping[str, ModelFinding]
    images: torch.Tensor


@one_cpu_thread()
def audit_model(spec: AuditSpec) -> Audit:
    """Audit ``spec.model`` and write nothing (``run_audit`` writes the results and the report)."""
    start = time.perf_counter()
    sample, model = defender_setup(spec)
    findings = {name: model_detector(name, spec.options).detect(model, sample.clean) for name in spec.detectors}
    decided_by = spec.detectors[0]
    deciding = findings[decided_by]
    target = deciding.suspected_target
    result = AuditResult(
        verdict="clean" if target is None else "backdoored",
        suspected_target=target,
        decided_by=decided_by,
        evidence={name: evidence(target, f.suspected_target) for name, f in findings.items() if name != decided_by},
        detectors={name: _report(f) for name, f in findings.items()},
        model=AuditedModel(spec.model, spec.weights, sample.shape, tuple(sample.classes)),
        clean_images=len(sample.images),
        seconds=time.perf_counter() - start,
        config=asdict(spec),
        manifest=run_manifest(asdict(spec), spec.seed, dataset_source(spec.dataset).file_hashes(spec.data_dir)),
    )
    return Audit(calibrated(result, audit_settings(spec), shipped_calibration()), findings, sample.images)


def audit_settings(spec: AuditSpec) -> dict[str, Any]:
    """What shapes the audit's statistics, so a calibration applies only to audits run as it was fitted: the
    detectors, the number of clean images and the trigger search's steps, images and mode."""
    search = NeuralCleanse(spec.options).spec
    return {
        "detectors": list(spec.detectors),
        "clean_images": spec.clean_images,
        "search_steps": search.steps,
        "search_images": search.images_per_step,
        "per_source": search.per_source,
        "targets_per_source": search.targets_per_source,
    }


def calibrated(
    result: AuditResult, settings: Mapping[str, Any], calibration: LogisticCalibration | None
) -> AuditResult:
    """``result`` with ``calibration``'s ``backdoor_probability`` (the shipped one, in ``audit_model``), where
    there is one and it was fitted on audits run with ``settings``; the probability then decides the verdict
    (backdoored from ``VERDICT_PROBABILITY``, suspecting ``likeliest_target``) and every detector is evidence."""
    if calibration is None:
        return result
    if not calibration.fits(settings):
        note = f"{calibration.version} not applied: it was fitted on audits run with other settings"
        return replace(result, calibration=note)
    probability = calibration.probability(result.features())
    backdoored = probability >= VERDICT_PROBABILITY
    target = result.likeliest_target() if backdoored else None
    return replace(
        result,
        verdict="backdoored" if backdoored else "clean",
        suspected_target=target,
        decided_by=CALIBRATED,
        evidence={name: evidence(target, found.suspected_target) for name, found in result.detectors.items()},
        backdoor_probability=probability,
        calibration=calibration.version,
    )


def run_audit(spec: AuditSpec, out_dir: Path) -> AuditResult:
    """Audit ``spec.model``: write ``results.json``, ``report.md``/``.html`` and (with Neural Cleanse) the
    recovered triggers to ``out_dir``; return the results."""
    from badnets.report.audit import write_audit_report

    audit = audit_model(spec)  # first: a model that does not load leaves no folder behind
    ensure_writable_dir(out_dir)
    cleanse = audit.findings.get("neural_cleanse")
    write_audit_report(
        audit.result, cleanse if isinstance(cleanse, NeuralCleanseResult) else None, audit.images, out_dir
    )
    return audit.result
