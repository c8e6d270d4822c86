# SPDX-License-Identifier: Apache-2.0
"""``badnets audit``: is there a backdoor in this model? The model-level detectors on a small clean sample.

The defender has the model and clean validation images, never the trigger or the training data. Two detectors
run: Neural Cleanse (the smallest trigger per class, MAD outlier test) and trigger-selective neurons (the paper's
dormant-neuron idea, by stimulation). The verdict is Neural Cleanse's, whose outlier test has a stated false-alarm
rate; the selective neurons are reported as evidence beside it (they have no such test, and on clean MNIST models
one unit in eight models sent ≥ 90% of images to one class).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from badnets._io import ensure_writable_dir, run_manifest
from badnets.data import ImageDataset, dataset_source
from badnets.defenses.dormant_neurons import DormantNeuronsResult, DormantNeuronsSpec, dormant_neurons
from badnets.defenses.model_loading import check_code_trusted, check_fits, load_any_model
from badnets.defenses.neural_cleanse import NeuralCleanseResult, NeuralCleanseSpec, neural_cleanse
from badnets.errors import ConfigError
from badnets.train import resolve_device

__all__ = [
    "AuditSpec",
    "CleanSample",
    "audit_verdict",
    "clean_sample",
    "defender_setup",
    "neuron_evidence",
    "run_audit",
]


@dataclass(frozen=True, kw_only=True)
class AuditSpec:
    """One audit.

    Attributes:
        model, weights: what to audit (see ``badnets.defenses.model_loading``).
        dataset: the model's input domain: shape, classes and the clean images (its test split).
        clean_images: how many clean images the defender uses (a seeded sample of the test split).
        mean, std: per-channel normalisation the model expects (it then receives [0, 1] input).
        trust_code: allow a ``model`` that names Python code to import and run (``FILE.py:Class``,
            ``package.module:factory``); without it such a model is refused before anything of it runs.
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
    neural_cleanse: NeuralCleanseSpec = field(default_factory=NeuralCleanseSpec)
    dormant: DormantNeuronsSpec = field(default_factory=DormantNeuronsSpec)

    def __post_init__(self) -> None:
        if self.clean_images < 10:
            raise ConfigError(f"--clean-images must be >= 10, got {self.clean_images}")
        check_code_trusted(self.model, self.trust_code)


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
    """The defender's clean sample and the model, loaded and checked to fit the dataset (one forward pass).

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
    return sample, model


def audit_verdict(cleanse: NeuralCleanseResult) -> tuple[bool, int | None]:
    """Backdoored when Neural Cleanse flags a class; that class is the suspected target."""
    target = cleanse.suspected_target
    return target is not None, target


def neuron_evidence(cleanse: NeuralCleanseResult, neurons: DormantNeuronsResult) -> str:
    """How the selective-neuron test bears on the verdict: ``agrees`` (flags Neural Cleanse's target),
    ``disagrees`` (flags another class, or flags a model Neural Cleanse passes), ``silent`` (flags nothing)."""
    if neurons.suspected_target is None:
        return "silent"
    return "agrees" if neurons.suspected_target == cleanse.suspected_target else "disagrees"


def run_audit(spec: AuditSpec, out_dir: Path) -> dict[str, Any]:
    """Audit ``spec.model``: write ``results.json``, ``report.md``/``.html`` and the recovered triggers to
    ``out_dir``; return the results."""
    from badnets.report.audit import write_audit_report

    start = time.perf_counter()
    sample, model = defender_setup(spec)
    images, classes, shape = sample.images, sample.classes, str(sample.shape)
    ensure_writable_dir(out_dir)
    model.to(resolve_device(spec.device))
    cleanse = neural_cleanse(model, images, len(classes), spec.neural_cleanse, sample.labels)
    selective = dormant_neurons(model, images, len(classes), spec.dormant)
    flagged, target = audit_verdict(cleanse)
    results = {
        "verdict": "backdoored" if flagged else "clean",
        "suspected_target": target,
        "suspected_target_name": None if target is None else classes[target],
        "anomaly_index": float(cleanse.anomaly_index.max()),
        "neuron_evidence": neuron_evidence(cleanse, selective),
        "detectors": {"neural_cleanse": cleanse.to_json(), "dormant_neurons": selective.to_json()},
        "model": {"spec": spec.model, "weights": spec.weights, "input": shape, "classes": list(classes)},
        "clean_images": len(images),
        "config": asdict(spec),
        "timing": {"seconds": time.perf_counter() - start},
        "manifest": run_manifest(asdict(spec), spec.seed, dataset_source(spec.dataset).file_hashes(spec.data_dir)),
    }
    write_audit_report(results, cleanse, images, out_dir)
    return results
