# SPDX-License-Identifier: Apache-2.0
"""Small real model packages for the supply-chain tests (a run directory as `badnets attack` writes it), and
zoos on loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from badnets.models import build_model
from badnets.supply import export_package, generate_keypair, sign_package
from badnets.supply.fetch import fetch_package
from badnets.supply.zoo import Zoo, serve_zoo


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


def new_zoo(tmp_path: Path, name: str = "zoo", **kwargs: int) -> Zoo:
    """A zoo at ``tmp_path/name`` with its root keys in ``tmp_path/name-root-keys`` (the offline folder)."""
    return Zoo.init(tmp_path / name, tmp_path / f"{name}-root-keys", **kwargs)


def root_keys_of(zoo: Zoo) -> Path:
    return zoo.directory.parent / f"{zoo.directory.name}-root-keys"


@pytest.fixture()
def zoo(tmp_path: Path, package: Path, keys: tuple[Path, Path]) -> Zoo:
    sign_package(package, keys[0])
    zoo = new_zoo(tmp_path)
    zoo.add(package, "net")
    return zoo


def snapshot_of(zoo: Zoo, where: Path) -> Path:
    """A copy of what the zoo serves right now (an attacker's or mirror's copy of the server)."""
    shutil.copytree(zoo.public, where / "public")
    return where


@pytest.fixture()
def url(zoo: Zoo) -> Iterator[str]:
    with serve_zoo(zoo.directory) as base:
        yield base


def fetch(zoo: Zoo, base: str, tmp_path: Path, **kwargs: object) -> Path:
    return fetch_package("net", base, tmp_path / "got", root=zoo.root_json(), cache_dir=tmp_path / "cache", **kwargs)  # type: ignore[arg-type]


def assert_nothing_left(tmp_path: Path) -> None:
    assert not (tmp_path / "got").exists() or not any((tmp_path / "got").iterdir())
