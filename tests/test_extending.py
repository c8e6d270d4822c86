# SPDX-License-Identifier: Apache-2.0
"""A dataset, a model and one defense of each job, registered through the public API (as ``docs/extending.md``
shows), run end to end by the CLI commands and the defense scoreboard without touching either."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from badnets.cli import app
from badnets.data import DatasetSource, ImageDataset, register_dataset
from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.registry import defense_names, register_defense
from badnets.defenses.representations import SampleFlags
from badnets.errors import ConfigError
from badnets.models import register_model
from badnets.train import TrainSpec, predict, train_model

runner = CliRunner()
CLASSES = ("dark", "mid", "light")
CORNER = (slice(None), slice(None), slice(4, 7), slice(4, 7))  # where a 3×3 pixel trigger sits on 8×8


def _toy_split(n: int, seed: int) -> ImageDataset:
    """8×8 gray images whose brightness gives the class, with noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    base = (labels.float() * 80 + 20).view(-1, 1, 1, 1)
    noise = torch.randn(n, 1, 8, 8, generator=generator) * 12
    return ImageDataset((base + noise).clamp(0, 255).to(torch.uint8), labels, CLASSES)


class ToyNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.head = nn.Linear(8 * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(torch.relu(self.conv(x)).flatten(1))
        return logits


def _corner(images: torch.Tensor) -> torch.Tensor:
    return images[CORNER].float().mean(dim=(1, 2, 3))


@dataclass(frozen=True)
class CornerFinding:
    suspected_target: int | None
    score: float
    seconds: float
    score_name: str = "corner_share"

    def to_json(self) -> dict[str, Any]:
        return {"suspected_target": self.suspected_target, "corner_share": self.score}


@dataclass(frozen=True)
class CornerDetector:
    """A toy that knows where triggers sit: a bright corner sending most images to one class is a backdoor."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="test-corner-detector", init=False)

    def detect(self, model: nn.Module, clean: CleanData) -> CornerFinding:
        start = time.perf_counter()
        stamped = clean.images.clone()
        stamped[CORNER] = 255
        counts = torch.bincount(predict(model, stamped), minlength=clean.num_classes)
        share = float(counts.max()) / len(stamped)
        target = int(counts.argmax()) if share >= 0.9 else None
        return CornerFinding(target, share, time.perf_counter() - start)


@dataclass(frozen=True)
class CornerFilter:
    threshold: float
    score_name: str = "corner_brightness"
    suspicious_when: Literal["low", "high"] = "high"

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        return _corner(inputs)

    def flagged(self, scores: torch.Tensor) -> torch.Tensor:
        return scores > self.threshold

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


@dataclass(frozen=True)
class CornerScreen:
    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="test-corner-screen", init=False)

    def fit(self, model: nn.Module, clean: CleanData) -> CornerFilter:
        return CornerFilter(float(torch.quantile(_corner(clean.images), 1 - self.options.frr)))


@dataclass(frozen=True)
class CornerDataScreen:
    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="test-corner-data", init=False)

    def screen(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clean: CleanData) -> SampleFlags:
        limit = float(_corner(clean.images).max())
        score = _corner(images)
        return SampleFlags(self.name, score, score > limit, {}, 0.0)


@dataclass(frozen=True)
class FineTuned:
    method: str
    epochs: int

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "epochs": self.epochs}


@dataclass(frozen=True)
class CleanFineTune:
    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="test-clean-fine-tune", init=False)

    def repair(self, model: nn.Module, clean: CleanData) -> FineTuned:
        classes = tuple(str(c) for c in range(clean.num_classes))
        spec = TrainSpec(epochs=self.options.epochs, batch_size=32, lr=1e-3)
        train_model(model, ImageDataset(clean.images, clean.labels, classes), spec, seed=self.options.seed, init=False)
        return FineTuned(self.name, self.options.epochs)


@pytest.fixture(scope="module")
def registered() -> None:
    train, test = _toy_split(600, 0), _toy_split(300, 1)
    register_dataset("test-toy-set", DatasetSource(lambda _d: (train, test), lambda _d: {}, CLASSES))
    register_model("test-toy-net", ToyNet)
    register_defense("test-corner-detector", "model", CornerDetector)
    register_defense("test-corner-screen", "inputs", CornerScreen)
    register_defense("test-corner-data", "training-data", CornerDataScreen)
    register_defense("test-clean-fine-tune", "repair", CleanFineTune)


def test_registration_refuses_a_taken_name_or_an_unknown_job(registered: None) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_defense("strip", "inputs", CornerScreen)
    with pytest.raises(ConfigError, match="model, inputs, training-data or repair"):
        register_defense("test-other", "weights", CornerScreen)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("mnist", DatasetSource(lambda _d: (_toy_split(3, 0),) * 2, lambda _d: {}, CLASSES))
    with pytest.raises(ConfigError, match="already registered"):
        register_model("badnet-cnn", ToyNet)
    assert defense_names("model")[-1] == "test-corner-detector" and defense_names("model")[0] == "neural_cleanse"


def test_registered_dataset_model_and_defenses_run_end_to_end(registered: None, tmp_path: Path) -> None:
    run = tmp_path / "run"
    attack = [
        "attack",
        "--dataset",
        "test-toy-set",
        "--model",
        "test-toy-net",
        "--trigger",
        "pixel",
        "--trigger-size",
        "3",
    ]
    attack += ["--target", "2", "--rate", "0.2"]
    result = runner.invoke(app, [*attack, "--epochs", "4", "--batch-size", "32", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    attacked = json.loads((run / "results.json").read_text())
    assert attacked["architecture"]["model"] == "test-toy-net"
    assert attacked["metrics"]["attack_success_rate"] > 0.9

    common = ["--model", str(run), "--dataset", "test-toy-set", "--clean-images", "100"]
    audited = runner.invoke(
        app, ["audit", *common, "--detectors", "test-corner-detector", "--out", str(tmp_path / "a")]
    )
    assert audited.exit_code == 0, audited.output
    audit = json.loads((tmp_path / "a" / "results.json").read_text())
    assert (audit["verdict"], audit["suspected_target"], audit["decided_by"]) == (
        "backdoored",
        2,
        "test-corner-detector",
    )
    assert "test-corner-detector" in (tmp_path / "a" / "report.md").read_text()
    # no calibration is fitted on a registered detector's evidence: the probability is left out, and said so
    assert audit["backdoor_probability"] is None and "backdoor probability" in audited.output
    from badnets.audit_result import AuditResult

    assert AuditResult.from_json(audit).to_json() == audit  # the one serialise/parse pair round-trips

    inputs = _toy_split(20, 2).images
    inputs[10:][CORNER] = 255
    from safetensors.torch import save_file

    save_file({"images": inputs}, str(tmp_path / "inputs.safetensors"))
    guard = ["guard", *common, "--images", str(tmp_path / "inputs.safetensors"), "--screen", "test-corner-screen"]
    guarded = runner.invoke(app, [*guard, "--out", str(tmp_path / "g")])
    assert guarded.exit_code == 0, guarded.output
    flags = [row["flagged"] for row in json.loads((tmp_path / "g" / "results.json").read_text())["inputs"]]
    assert flags == [False] * 10 + [True] * 10

    inspected = runner.invoke(app, ["inspect-data", *common, "--data", str(run), "--out", str(tmp_path / "i")])
    assert inspected.exit_code == 0, inspected.output
    screened = json.loads((tmp_path / "i" / "results.json").read_text())["detectors"]
    assert set(screened) == set(defense_names("training-data"))
    assert screened["test-corner-data"]["against_manifest"]["recall"] == 1.0

    repaired = runner.invoke(
        app, ["repair", *common, "--method", "test-clean-fine-tune", "--epochs", "1", "--out", str(tmp_path / "r")]
    )
    assert repaired.exit_code == 0, repaired.output
    record = json.loads((tmp_path / "r" / "results.json").read_text())
    assert record["repair"] == {"method": "test-clean-fine-tune", "epochs": 1}
    assert record["before"]["attack_success_rate"] > 0.9

    from badnets.studies.defenses.results import ModelEvaluation
    from badnets.studies.defenses.spec import EvalSpec

    evaluation = EvalSpec(
        run_dir=str(run), model_detectors=defense_names("model"), clean_images=100, nc_steps=10, repair_epochs=1
    )
    timing = evaluation.run(tmp_path / "eval")
    scored = ModelEvaluation.from_json(json.loads((tmp_path / "eval" / "results.json").read_text()))
    # the scoreboard job's time is its evaluation's (it once stopped the clock before evaluating: 0 s)
    assert timing["evaluate_seconds"] == timing["job_seconds"] >= scored.audit.seconds > 0
    assert scored.audit.detectors["test-corner-detector"].suspected_target == 2
    assert scored.inputs["test-corner-screen"].auroc == 1.0
    assert scored.training_data["test-corner-data"].recall == 1.0
    assert scored.repair is not None and set(scored.repair) == set(defense_names("repair"))
    # a registered defense's results are written and read back under its name
    assert ModelEvaluation.from_json(json.loads(json.dumps(scored.to_json()))) == scored
