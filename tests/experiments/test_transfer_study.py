# SPDX-License-Identifier: Apache-2.0
"""The transfer-learning attack: k-strengthening, fc-only retraining, and the study end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from badnets.data import ImageDataset
from badnets.errors import ConfigError
from badnets.models import SignCNN, build_model
from badnets.neurons import channel_activations
from badnets.records import to_json
from badnets.studies.traffic import TrafficStudySpec
from badnets.studies.transfer import TransferStudySpec, run_transfer_study, strengthen
from badnets.train import TrainSpec, train_model
from tests.conftest import REAL_DATA
from tests.data.test_gtsrb import write_npz
from tests.data.test_lisa import write_staged_crops


def test_strengthening_multiplies_only_the_chosen_neurons_activations() -> None:
    torch.manual_seed(0)
    model = build_model("sign-cnn", in_channels=3, num_classes=3, image_size=32)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    before = channel_activations(model, "conv3", images)
    strengthen(model, "conv3", (3, 5), 10.0)
    after = channel_activations(model, "conv3", images)
    assert torch.allclose(after[:, [3, 5]], 10 * before[:, [3, 5]], rtol=1e-4, atol=1e-6)  # ReLU(k·z) = k·ReLU(z)
    others = [c for c in range(128) if c not in (3, 5)]
    assert torch.equal(after[:, others], before[:, others])


def test_retraining_only_the_fc_layers_keeps_the_conv_layers() -> None:
    model = build_model("sign-cnn", in_channels=3, num_classes=4, image_size=32)
    assert isinstance(model, SignCNN)
    conv = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("conv")}
    fc_before = model.fc2.weight.detach().clone()
    data = ImageDataset(
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8), torch.arange(64) % 4, ("a", "b", "c", "d")
    )
    train_model(model, data, TrainSpec(epochs=1, batch_size=16), seed=0, layers=("fc1", "fc2"))
    for name, p in model.named_parameters():
        if name.startswith("conv"):
            assert torch.equal(p.detach(), conv[name]), name
    assert not torch.equal(model.fc2.weight.detach(), fc_before)


def test_bad_transfer_spec() -> None:
    with pytest.raises(ConfigError, match="ks must be"):
        TransferStudySpec(ks=(1, -2))
    with pytest.raises(ConfigError, match="trigger must be one of"):
        TransferStudySpec.preset(quick=True, trigger="pixel")
    with pytest.raises(ConfigError, match="target domain"):
        TransferStudySpec.preset(quick=True, target="swedish")
    assert TransferStudySpec.preset(quick=False, target="gtsrb-43").target == "gtsrb-43"


@pytest.mark.parametrize(("target", "classes"), [("gtsrb", 4), ("gtsrb-43", 43)])
def test_tiny_transfer_study_writes_tables_6_and_7(tmp_path: Path, target: str, classes: int) -> None:
    data = tmp_path / "data"
    write_staged_crops(data, tracks_per_tag=6, frames=2)
    write_npz(data, n=86)
    us = TrafficStudySpec(triggers=("yellow-square",), seeds=1, epochs=1, workers=1, data_dir=str(data))
    spec = TransferStudySpec(us=us, ks=(1, 10), retrain_epochs=1, target=target)
    summary = run_transfer_study(spec, tmp_path / "out")
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert set(results["badnet_by_k"]) == {"1", "10"}
    assert len(results["baseline"]["clean"]) == classes + 1 and "average" in results["baseline"]["clean"]
    if target == "gtsrb":
        assert set(results["baseline"]["clean"]) == {"prohibitory", "mandatory", "warning", "other", "average"}
    assert len(results["targets"]) == 3 and to_json(summary.results.targets) == results["targets"]
    assert all(t["limit"] for t in results["targets"])  # every target states our limit
    md = (out / "report.md").read_text()
    assert "Table 6" in md and "Table 7" in md and "Substitution" in md
    assert (out / "transfer_k.png").stat().st_size > 1000
    assert len(json.loads((out / "invocations.json").read_text())) == 1


@pytest.mark.slow
def test_real_quick_transfer_runs(tmp_path: Path) -> None:
    if REAL_DATA is None or not (REAL_DATA / "gtsrb" / "train.npz").is_file():
        pytest.skip("LISA crops and GTSRB not staged: set BADNETS_DATA to ../shared/data")
    spec = TransferStudySpec.preset(quick=True, data_dir=str(REAL_DATA), workers=2)
    results = run_transfer_study(spec, tmp_path / "out").results
    assert results.us.badnet_asr.mean > 0.8
    assert results.baseline.clean["average"].mean > 0.6  # fc retraining on frozen US features still works
