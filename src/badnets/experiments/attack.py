# SPDX-License-Identifier: Apache-2.0
"""One BadNets attack (paper §3–4): poison the training set, train the network, score clean and triggered.

A run directory holds ``results.json`` (the source of truth; written last, so its presence means the run
finished), ``model.safetensors``, ``poison_manifest.json``, ``run.json`` (the manifest needed to repeat it) and
``report.md``. While training, ``checkpoint.pt`` holds the last finished epoch; running the same spec into the
same directory again resumes from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from badnets._io import ensure_writable_dir, read_json, run_manifest, save_weights, write_json, write_text
from badnets.data import ImageDataset, dataset_source
from badnets.errors import ConfigError
from badnets.experiments._config import same_config
from badnets.metrics import BackdoorMetrics, backdoor_metrics
from badnets.models import MODELS, build_model
from badnets.poison import PoisonSpec, poison_dataset
from badnets.report.attack import attack_report_md
from badnets.train import ProgressFn, TrainSpec, one_cpu_thread, predict, train_model
from badnets.triggers import Stamp, TriggerSpec, apply_trigger, make_stamp

__all__ = ["AttackData", "AttackResult", "AttackSpec", "evaluate_attack", "run_attack"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackData:
    """A dataset loaded once and shared by many runs (a sweep ships it to remote workers once): the train and test
    sets and the SHA-256 of the files they came from, for each run's manifest."""

    train: ImageDataset
    test: ImageDataset
    file_hashes: dict[str, str]
    default_model: str


@dataclass(frozen=True, kw_only=True)
class AttackSpec:
    """One attack run.

    Attributes:
        dataset: a key of ``badnets.data.SOURCES`` or a folder of class subfolders of images.
        model: a key of ``badnets.models.MODELS``; ``None`` = the dataset's ``default_model`` (the paper's
            CNN for MNIST, a ZF-like conv stack for sign crops and image folders).
        data_dir: data folder (``None``: ``$BADNETS_DATA`` or ``~/.cache/badnets``).
        trigger: the backdoor trigger.
        poison: the poisoning; with ``baseline=True`` it only says how the trigger is scored.
        train: the training recipe.
        seed: fixes poison indices, random targets, initial weights and shuffles.
        baseline: train on the clean set (the paper's baseline network) and score the trigger anyway.
        save_model: write ``model.safetensors``.
    """

    dataset: str = "mnist"
    model: str | None = None
    data_dir: str | None = None
    trigger: TriggerSpec = field(default_factory=TriggerSpec)
    poison: PoisonSpec = field(default_factory=lambda: PoisonSpec(mapping="all-to-one", target=0))
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0
    baseline: bool = False
    save_model: bool = True

    def __post_init__(self) -> None:
        dataset_source(self.dataset)  # a bad name or folder fails here, before anything runs
        if self.model is not None and self.model not in MODELS:
            raise ConfigError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    @property
    def model_name(self) -> str:
        return self.model or dataset_source(self.dataset).default_model

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> AttackSpec:
        """The spec ``to_json`` wrote (lists back to tuples; fields a run made before they existed keep their
        defaults)."""
        trigger: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config["trigger"].items()}
        names = ("dataset", "model", "data_dir", "seed", "baseline", "save_model")
        plain: dict[str, Any] = {k: config[k] for k in names if k in config}
        return cls(
            **plain,
            trigger=TriggerSpec(**trigger),
            poison=PoisonSpec(**config["poison"]),
            train=TrainSpec(**config["train"]) if "train" in config else TrainSpec(),
        )

    def data_key(self) -> tuple[str, str | None]:
        """Runs with equal keys train on the same data (``load_data``)."""
        return (self.dataset, self.data_dir)

    def load_data(self) -> AttackData:
        """The train and test sets this spec trains and scores on, with their files' hashes."""
        source = dataset_source(self.dataset)
        train, test = source.load(self.data_dir)
        return AttackData(train, test, source.file_hashes(self.data_dir), source.default_model)

    def run(self, out_dir: Path, data: AttackData | None = None) -> dict[str, float]:
        """``run_attack`` into ``out_dir`` (a study or sweep job); returns the timing."""
        return run_attack(self, out_dir, data=data).timing


@dataclass(frozen=True)
class AttackResult:
    """A finished attack: its spec, its scores, where it lives, and how long training and scoring took."""

    spec: AttackSpec
    metrics: BackdoorMetrics
    out_dir: Path
    timing: dict[str, float] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.spec.to_json(),
            "seed": self.spec.seed,
            "architecture": self.architecture,
            "metrics": self.metrics.to_json(),
            "timing": self.timing,
        }


def evaluate_attack(model: nn.Module, test: ImageDataset, stamp: Stamp, spec: PoisonSpec) -> BackdoorMetrics:
    """Score ``model`` on the clean test set and on its triggered copy (DESIGN.md §3)."""
    preds_clean = predict(model, test.images)
    preds_triggered = predict(model, apply_trigger(test.images, stamp))
    return backdoor_metrics(preds_clean, preds_triggered, test.labels, spec)


@one_cpu_thread()
def run_attack(
    spec: AttackSpec, out_dir: Path, *, progress: ProgressFn | None = None, data: AttackData | None = None
) -> AttackResult:
    """Run (or resume) one attack into ``out_dir``; a finished run is loaded, not repeated.

    ``data`` is ``spec.load_data()`` loaded beforehand (by default the run loads it).

    Raises:
        ConfigError: bad spec or unwritable ``out_dir``.
        DataError: the dataset is missing or corrupt.
    """
    done, checkpoint = out_dir / "results.json", out_dir / "checkpoint.pt"
    if done.is_file():
        previous = read_json(done)
        if same_config(spec, previous.get("config")):
            return AttackResult(
                spec,
                BackdoorMetrics.from_json(previous["metrics"]),
                out_dir,
                previous.get("timing", {}),
                previous.get("architecture", {}),
            )
        raise ConfigError(f"{out_dir} already holds a finished run with another config; choose a new output folder")
    resumable = checkpoint.is_file() and (out_dir / "run.json").is_file()
    if resumable and not same_config(spec, read_json(out_dir / "run.json").get("config")):
        raise ConfigError(
            f"{out_dir} holds an unfinished run with another config; re-run that command to finish it, "
            "or choose a new output folder"
        )
    t0 = time.perf_counter()
    # Everything a user can get wrong is checked before the first byte is written.
    data = data or spec.load_data()
    train, test = data.train, data.test
    poison = replace(spec.poison, num_classes=train.num_classes)
    stamp = make_stamp(spec.trigger, tuple(train.images.shape[1:]))  # type: ignore[arg-type]
    poisoned = None if spec.baseline else poison_dataset(train, stamp, poison, seed=spec.seed)
    ensure_writable_dir(out_dir)
    if poisoned is not None:
        write_json(out_dir / "poison_manifest.json", poisoned.manifest.to_json())
    training_set = train if poisoned is None else poisoned.dataset
    write_json(out_dir / "run.json", run_manifest(spec.to_json(), spec.seed, data.file_hashes))
    shape = {"in_channels": int(train.images.shape[1]), "num_classes": train.num_classes}
    shape["image_size"] = int(train.images.shape[-1])
    model_name = spec.model or data.default_model
    model = build_model(model_name, **shape)
    architecture = {"model": model_name, **shape, "classes": list(train.classes)}
    t1 = time.perf_counter()
    train_model(model, training_set, spec.train, seed=spec.seed, checkpoint=checkpoint, progress=progress)
    t2 = time.perf_counter()
    metrics = evaluate_attack(model, test, stamp, poison)
    t3 = time.perf_counter()
    if spec.save_model:
        save_weights(model, out_dir / "model.safetensors")
    timing = {"train_seconds": t2 - t1, "evaluate_seconds": t3 - t2, "job_seconds": time.perf_counter() - t0}
    result = AttackResult(spec, metrics, out_dir, timing, architecture)
    write_text(out_dir / "report.md", attack_report_md(result.spec.to_json(), result.metrics))
    write_json(done, result.to_json())
    checkpoint.unlink(missing_ok=True)
    return result
