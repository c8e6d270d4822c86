# SPDX-License-Identifier: Apache-2.0
"""Scoring an audit round: unlearned backdoors are left out, the target is judged on detected single-target
models only, and the breakdowns compare each group with the clean models of its datasets."""

from __future__ import annotations

import math

import pytest

from badnets.studies.audit_round.analysis import breakdown, detection_score
from badnets.studies.audit_round.results import AuditedRoundModel, TrainedRoundModel


def model(name: str, dataset: str, family: str | None, *, learned: bool = True, target: int | None = 3,
          suspected: int | None = 3, mapping: str = "all-to-one") -> AuditedRoundModel:  # fmt: skip
    backdoored = family is not None
    truth = TrainedRoundModel(
        name=name,
        round="test",
        dataset=dataset,
        family=family,
        mapping=mapping if backdoored else None,
        target=target if backdoored and mapping != "all-to-all" else None,
        source=None,
        rate=0.1 if backdoored else None,
        trigger={"kind": "random"} if backdoored else None,
        epochs=3,
        clean_accuracy=0.98,
        attack_success_rate=(0.99 if learned else 0.3) if backdoored else None,
        learned=learned if backdoored else None,
        seconds=1.0,
    )
    return AuditedRoundModel(truth, evidence={}, suspected_target=suspected, seconds=1.0)


MODELS = [
    model("c1", "mnist", None, suspected=None),
    model("c2", "mnist", None, suspected=None),
    model("c3", "gtsrb-43", None, suspected=None),
    model("b1", "mnist", "patch"),
    model("b2", "mnist", "blend", suspected=5),  # detected, wrong target
    model("b3", "gtsrb-43", "sticker", mapping="all-to-all"),
    model("u1", "mnist", "patch", learned=False),  # not learned: left out whatever it scores
]
P = {"c1": 0.1, "c2": 0.6, "c3": 0.2, "b1": 0.9, "b2": 0.7, "b3": 0.4, "u1": 0.0}


def test_the_round_score_leaves_unlearned_backdoors_out() -> None:
    score = detection_score(MODELS, P)
    assert (score.n_backdoored, score.n_clean) == (3, 3)
    # positives 0.9, 0.7, 0.4 against negatives 0.1, 0.6, 0.2: 8 of 9 pairs ranked right
    assert score.auroc == pytest.approx(8 / 9)
    expected = -(math.log(0.9) + math.log(0.7) + math.log(0.4) + math.log(0.9) + math.log(0.4) + math.log(0.8)) / 6
    assert score.cross_entropy == pytest.approx(expected)
    assert score.target_correct == 0.5  # b1 right, b2 wrong; b3 (all-to-all) has no single target
    assert score.tpr_at_5_fpr == pytest.approx(2 / 3)  # above the highest clean score, 0.6


def test_breakdowns_compare_each_group_with_the_clean_models_of_its_datasets() -> None:
    by_family = breakdown(MODELS, P, "family")
    assert set(by_family) == {"blend", "patch", "sticker"}
    assert (by_family["patch"].n_backdoored, by_family["patch"].n_clean) == (1, 2)  # mnist clean models only
    assert (by_family["sticker"].n_backdoored, by_family["sticker"].n_clean) == (1, 1)
    by_dataset = breakdown(MODELS, P, "dataset")
    assert by_dataset["gtsrb-43"].auroc == 1.0 and by_dataset["mnist"].n_backdoored == 2
    assert set(breakdown(MODELS, P, "mapping")) == {"all-to-one", "all-to-all"}
    with pytest.raises(ValueError, match="breakdown by"):
        breakdown(MODELS, P, "colour")
