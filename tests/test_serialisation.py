# SPDX-License-Identifier: Apache-2.0
"""Each typed result reads back exactly what it wrote (through JSON, as a results.json holds it)."""

from __future__ import annotations

import json

import torch

from badnets.experiments import AttackSpec
from badnets.metrics import BackdoorMetrics, backdoor_metrics
from badnets.poison import PoisonSpec
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec


def test_attack_spec_round_trips_through_json() -> None:
    specs = [
        AttackSpec(),
        AttackSpec(
            dataset="lisa",
            model="sign-cnn",
            trigger=TriggerSpec(kind="pixel", position=(3, 4), size=2, value=(255, 0, 0), opacity=0.5),
            poison=PoisonSpec(mapping="single", source=0, target=2, rate=0.05, mode="relabel"),
            train=TrainSpec(epochs=3, batch_size=32, augment=True),
            seed=7,
            baseline=True,
        ),
    ]
    for spec in specs:
        assert AttackSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_backdoor_metrics_round_trip_through_json() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (500,), generator=generator)
    clean, triggered = torch.randint(10, (500,), generator=generator), torch.randint(10, (500,), generator=generator)
    metrics = backdoor_metrics(clean, triggered, labels, PoisonSpec(mapping="all-to-one", target=3))
    assert BackdoorMetrics.from_json(json.loads(json.dumps(metrics.to_json()))) == metrics
