# SPDX-License-Identifier: Apache-2.0
"""The transfer-learning attack (BadNets §5.3, Tables 6 and 7).

1. The attacker trains a US sign BadNet (triggered stop → speed-limit); a clean US net is the baseline.
2. The attacker finds the BadNet's backdoor neurons (last conv layer, ``neurons.dedicated_units``) and may
   strengthen them: their input weights (and bias) are multiplied by ``k``, so they fire ``k``× harder.
3. A user downloads the net, keeps its conv layers and retrains the fully connected layers on clean signs of
   another country: here GTSRB's prohibitory / mandatory / warning / other (the Swedish set is not reachable).
4. Scored on the user's clean test signs and on the same signs with the trigger pasted on the sign's box.

The trigger's occlusion lowers any net's accuracy, so the attack's effect is the BadNet's triggered accuracy
against the clean US net's after the same retraining.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from badnets._io import ensure_writable_dir, read_json, run_manifest, write_json
from badnets.data import SOURCES, ImageDataset
from badnets.errors import ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import FinishedJobs
from badnets.experiments.run_dir import load_model, run_dir
from badnets.models import build_model
from badnets.neurons import backdoor_neurons
from badnets.records import to_json
from badnets.sign_triggers import SIGN_TRIGGERS, sign_trigger
from badnets.studies.traffic.spec import TrafficStudySpec, attack_spec, single_target
from badnets.studies.transfer.results import DomainAccuracy
from badnets.train import TrainSpec, one_cpu_thread, predict, train_model
from badnets.triggers import TriggerSpec, apply_trigger_in_boxes

__all__ = [
    "FC_LAYERS",
    "LAST_CONV",
    "RetrainSpec",
    "TransferStudySpec",
    "find_backdoor_neurons",
    "retrain_jobs",
    "score_domain",
    "strengthen",
    "us_jobs",
]

LAST_CONV = "conv3"


FC_LAYERS = ("fc1", "fc2")


def strengthen(model: torch.nn.Module, layer: str, units: tuple[int, ...], k: float) -> None:
    """Multiply the input weights and bias of ``units`` of conv ``layer`` by ``k`` (in place): ReLU(k·z) = k·ReLU(z)."""
    conv = model.get_submodule(layer)
    assert isinstance(conv, torch.nn.Conv2d)
    if units and k != 1:
        with torch.no_grad():
            conv.weight[list(units)] *= k
            if conv.bias is not None:
                conv.bias[list(units)] *= k


def find_backdoor_neurons(
    clean_net: torch.nn.Module, badnet: torch.nn.Module, images: torch.Tensor, trigger: TriggerSpec
) -> tuple[int, ...]:
    """Channels of the last conv layer whose gain on triggered ``images`` beats every channel of the clean net."""
    triggered = apply_trigger_in_boxes(images, trigger, None)
    return tuple(backdoor_neurons(clean_net, badnet, LAST_CONV, images, triggered).backdoor_neurons)


@dataclass(frozen=True, kw_only=True)
class RetrainSpec:
    """The user's step: keep a downloaded net's conv layers, retrain its fc layers on the target domain.

    Attributes:
        source_run: run directory of the downloaded (US) net.
        units, k: backdoor neurons and the factor the attacker strengthened them by before publishing.
        dataset: target-domain dataset key; its test set is scored clean and with ``trigger`` in each sign box.
    """

    source_run: str
    units: tuple[int, ...] = ()
    k: float = 1.0
    dataset: str = "gtsrb"
    data_dir: str | None = None
    trigger: TriggerSpec = field(default_factory=TriggerSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0

    @one_cpu_thread()
    def run(self, out_dir: Path) -> dict[str, float]:
        """Retrain and score into ``out_dir/results.json`` (resuming from ``checkpoint.pt``); returns the timing."""
        if (out_dir / "results.json").is_file():
            return dict(read_json(out_dir / "results.json").get("timing", {}))
        t0 = time.perf_counter()
        train, test = SOURCES[self.dataset].load(self.data_dir)
        arch = read_json(Path(self.source_run) / "results.json")["architecture"]
        model = build_model(
            arch["model"], in_channels=arch["in_channels"], num_classes=train.num_classes, image_size=arch["image_size"]
        )
        downloaded = load_file(str(Path(self.source_run) / "model.safetensors"))
        model.load_state_dict({n: w for n, w in downloaded.items() if not n.startswith(FC_LAYERS)}, strict=False)
        strengthen(model, LAST_CONV, self.units, self.k)
        ensure_writable_dir(out_dir)
        hashes = SOURCES[self.dataset].file_hashes(self.data_dir)
        write_json(out_dir / "run.json", run_manifest(asdict(self), self.seed, hashes))
        t1 = time.perf_counter()
        train_model(model, train, self.train, seed=self.seed, checkpoint=out_dir / "checkpoint.pt", layers=FC_LAYERS)
        t2 = time.perf_counter()
        scores = score_domain(model, test, self.trigger)
        timing = {"train_seconds": t2 - t1, "evaluate_seconds": time.perf_counter() - t2}
        timing["job_seconds"] = time.perf_counter() - t0
        write_json(out_dir / "results.json", {"config": asdict(self), "metrics": to_json(scores), "timing": timing})
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)
        return timing


def score_domain(model: torch.nn.Module, test: ImageDataset, trigger: TriggerSpec) -> DomainAccuracy:
    """Accuracy per class and overall on clean test images and on the same images with the trigger on the sign."""
    clean = predict(model, test.images)
    trig = predict(model, apply_trigger_in_boxes(test.images, trigger, test.boxes))

    def per_class(preds: torch.Tensor) -> dict[str, float]:
        by_class = {name: float((preds[test.labels == c] == c).float().mean()) for c, name in enumerate(test.classes)}
        return {**by_class, "average": float((preds == test.labels).float().mean())}

    scores = per_class(clean)
    return DomainAccuracy(
        clean=scores,
        triggered=per_class(trig),
        n={name: int((test.labels == c).sum()) for c, name in enumerate(test.classes)},
        clean_accuracy=scores["average"],
    )


@dataclass(frozen=True, kw_only=True)
class TransferStudySpec:
    """What the transfer study trains.

    Attributes:
        us: how the US nets are trained (the traffic study's recipe; its ``triggers[0]`` is the backdoor).
        ks: strengthening factors (the paper's Table 7).
        retrain_epochs: epochs of fc retraining on the target domain.
        target: target-domain dataset (``gtsrb``: grouped into the paper's categories it has; ``gtsrb-43``: its
            43 classes, a harder domain).
    """

    us: TrafficStudySpec = field(default_factory=lambda: TrafficStudySpec(triggers=("flower",)))
    ks: tuple[float, ...] = (1, 10, 20, 30, 50, 70, 100)
    retrain_epochs: int = 6
    target: str = "gtsrb"
    quick: bool = False

    def __post_init__(self) -> None:
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ConfigError(f"ks must be positive factors, got {list(self.ks)}")
        if self.retrain_epochs < 1:
            raise ConfigError(f"retrain_epochs must be >= 1, got {self.retrain_epochs}")
        if self.target not in SOURCES:
            raise ConfigError(f"the target domain must be one of {sorted(SOURCES)}, got {self.target!r}")

    @property
    def trigger(self) -> str:
        return self.us.triggers[0]

    @classmethod
    def preset(
        cls,
        *,
        quick: bool,
        trigger: str = "flower",
        seeds: int | None = None,
        retrain_epochs: int | None = None,
        target: str = "gtsrb",
        **us: Any,
    ) -> TransferStudySpec:
        """The full study, or ``quick``: one seed, k ∈ {1, 20}, short training; ``retrain_epochs`` overrides.
        ``target`` is the user's domain (``gtsrb`` or ``gtsrb-43``)."""
        if trigger not in SIGN_TRIGGERS:
            raise ConfigError(f"trigger must be one of {list(SIGN_TRIGGERS)}, got {trigger!r}")
        us_spec = TrafficStudySpec(triggers=(trigger,), detector=False, **us)  # the US nets are classifiers
        if quick:
            us_spec = replace(us_spec, seeds=seeds or 1, epochs=4, quick=True)
            return cls(us=us_spec, ks=(1, 20), retrain_epochs=retrain_epochs or 2, target=target, quick=True)
        full = cls(us=us_spec if seeds is None else replace(us_spec, seeds=seeds), target=target)
        return full if retrain_epochs is None else replace(full, retrain_epochs=retrain_epochs)


def us_jobs(spec: TransferStudySpec) -> list[Job]:
    us = spec.us
    jobs = []
    for seed in range(us.seeds):
        jobs.append(Job(f"us/baseline/s{seed}", attack_spec(us, spec.trigger, single_target(us), seed, baseline=True)))
        jobs.append(Job(f"us/badnet/s{seed}", attack_spec(us, spec.trigger, single_target(us), seed)))
    return dedupe_jobs(jobs)


def retrain_jobs(spec: TransferStudySpec, out_dir: Path) -> Callable[[FinishedJobs], list[Job]]:
    """The retraining jobs; they need the trained US nets (to find the backdoor neurons), hence a second phase."""

    def build(_runs: FinishedJobs) -> list[Job]:
        us = spec.us
        _, us_test = SOURCES["lisa"].load(us.data_dir)
        stops = us_test.images[us_test.labels == single_target(us).source]
        trigger = sign_trigger(spec.trigger, us.data_dir)
        train = us.train_spec(spec.retrain_epochs)
        jobs = []
        for seed in range(us.seeds):
            clean_dir, bad_dir = run_dir(out_dir, f"us/baseline/s{seed}"), run_dir(out_dir, f"us/badnet/s{seed}")
            units = find_backdoor_neurons(load_model(clean_dir), load_model(bad_dir), stops, trigger)
            base = RetrainSpec(
                source_run=str(clean_dir.resolve()),
                dataset=spec.target,
                data_dir=us.data_dir,
                trigger=trigger,
                train=train,
                seed=seed,
            )
            jobs.append(Job(f"transfer/baseline/s{seed}", base))
            for k in spec.ks:
                bad = replace(base, source_run=str(bad_dir.resolve()), units=units, k=float(k))
                jobs.append(Job(f"transfer/badnet/k{k:g}/s{seed}", bad))
        return dedupe_jobs(jobs)

    return build
