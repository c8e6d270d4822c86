# SPDX-License-Identifier: Apache-2.0
"""Small real model packages for the supply-chain tests: a run directory as `badnets attack` writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from badnets.models import build_model
from badnets.supply import export_package, generate_keypair


def write_run_dir(root: Path, seed: int = 0, model: str = "badnet-cnn") -> Path:
    """A finished classifier run: random-initialised weights (seeded), results.json with the architecture."""
    torch.manual_seed(seed)
    net = build_model(model, in_channels=1, num_classes=10, image_size=28)
    root.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "model.safetensors"))
    arch = {
        "model": model,
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 28,
        "classes": [str(d) for d in range(10)],
    }
    results = {
        "config": {"dataset": "mnist", "seed": seed},
        "seed": seed,
        "architecture": arch,
        "metrics": {"clean_accuracy": 0.99, "attack_success_rate": 0.98},
    }
    (root / "results.json").write_text(json.dumps(results))
    (root / "run.json").write_text(json.dumps({"data_sha256": {"mnist/x": "0" * 64}, "versions": {"badnets": "t"}}))
    return root


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    return export_package(write_run_dir(tmp_path / "run"), tmp_path / "pkg")


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")
