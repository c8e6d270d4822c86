# SPDX-License-Identifier: Apache-2.0
"""The run-directory contract, in one place: where a study keeps each job's run (``runs/<name>``), how a job name
becomes a directory name, when a run counts as finished (its ``results.json``, for the same config), and how a
finished run's model, spec and training set are read back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from badnets._io import read_json
from badnets.data import ImageDataset, dataset_source
from badnets.errors import ConfigError
from badnets.experiments._config import same_config
from badnets.experiments.attack import AttackSpec
from badnets.models import build_model
from badnets.poison import poison_dataset
from badnets.triggers import make_stamp

__all__ = [
    "RUNS",
    "attack_training_set",
    "finished_run",
    "load_model",
    "recorded_attack",
    "run_dir",
    "run_dir_name",
    "weights_of",
]

RUNS = "runs"  # a study directory keeps each job's run directory under runs/


def run_dir_name(job_name: str) -> str:
    """The run directory's name for job ``job_name`` (``single/flower/s0`` → ``single__flower__s0``)."""
    return job_name.replace("/", "__")


def run_dir(study_dir: Path, job_name: str) -> Path:
    """Where job ``job_name`` of the study in ``study_dir`` keeps its run."""
    return study_dir / RUNS / run_dir_name(job_name)


def finished_run(directory: Path, spec: Any, name: str) -> bool:
    """Whether job ``name`` (``spec``) already ran into ``directory``; a finished run of another config there is an
    error, not a reuse.

    Raises:
        ConfigError: ``directory`` holds a finished run of another config.
    """
    done = directory / "results.json"
    if not done.is_file():
        return False
    recorded = read_json(done).get("config")
    if recorded is not None and not same_config(spec, recorded):
        raise ConfigError(
            f"{directory} holds a finished run of another config than job {name!r} (the study's spec "
            "changed); choose a new output folder, or delete that run directory to retrain it"
        )
    return True


def recorded_attack(run_dir: Path) -> AttackSpec:
    """The ``AttackSpec`` a finished run recorded in its ``results.json``."""
    return AttackSpec.from_json(read_json(run_dir / "results.json")["config"])


def attack_training_set(run_dir: Path) -> tuple[ImageDataset, torch.Tensor]:
    """The training set a finished run trained on, rebuilt from its recorded config (same seed → the same
    poisoned samples), and which samples carry the trigger (all False for a baseline run)."""
    spec = recorded_attack(run_dir)
    train, _ = dataset_source(spec.dataset).load(spec.data_dir)
    if spec.baseline:
        return train, torch.zeros(len(train), dtype=torch.bool)
    stamp = make_stamp(spec.trigger, tuple(train.images.shape[1:]))  # type: ignore[arg-type]
    poisoned = poison_dataset(train, stamp, replace(spec.poison, num_classes=train.num_classes), seed=spec.seed)
    return poisoned.dataset, poisoned.is_poisoned


def load_model(run_dir: Path) -> nn.Module:
    """The trained network of a finished run directory (architecture from ``results.json``, weights from safetensors).

    Runs made before ``architecture`` was recorded are MNIST runs of the paper CNN.
    """
    from safetensors.torch import load_file

    arch = read_json(run_dir / "results.json").get("architecture") or {}
    model = build_model(
        arch.get("model", "badnet-cnn"),
        in_channels=arch.get("in_channels", 1),
        num_classes=arch.get("num_classes", 10),
        image_size=arch.get("image_size", 28),
    )
    model.load_state_dict(load_file(str(weights_of(run_dir))), strict=True)
    return model.eval()


def weights_of(run_dir: Path) -> Path:
    """A finished run's weights file.

    Raises:
        ConfigError: the run has a record but no weights (restored from a records-only archive, or never saved).
    """
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(
            f"{run_dir} holds a finished run's record but not its weights (model.safetensors): a record restored "
            "from an archive keeps none; delete that folder and re-run its study to train the model here"
        )
    return weights
