# SPDX-License-Identifier: Apache-2.0
"""STRIP's parts on hand-made data: AUROC, the entropy of a model a trigger controls, reading inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from badnets.data.inputs import read_inputs
from badnets.defenses.strip import StripGuard, StripSpec
from badnets.errors import ConfigError, DataError
from badnets.metrics import auroc


def test_auroc_by_hand() -> None:
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=20), st.lists(st.floats(-5, 5), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_auroc_is_symmetric(pos: list[float], neg: list[float]) -> None:
    a, b = torch.tensor(pos), torch.tensor(neg)
    assert auroc(a, b) + auroc(b, a) == pytest.approx(1.0)


class CornerSwitch(nn.Module):
    """Class 0 whenever the bottom-right pixel is bright (the 'trigger'); otherwise the brightest row decides."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x[:, 0].mean(2)[:, :10] * 20  # 10 classes from the first 10 rows
        switch = (x[:, 0, -1, -1] > 0.9).float() * 100
        return rows + torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10) * switch[:, None]


def test_strip_separates_a_switched_model() -> None:
    generator = torch.Generator().manual_seed(0)
    clean = (torch.rand(200, 1, 12, 12, generator=generator) * 200).to(torch.uint8)
    clean[:, :, -1, -1] = 0
    triggered = clean.clone()
    triggered[:, :, -1, -1] = 255
    guard = StripGuard.fit(CornerSwitch(), clean[:100], StripSpec(frr=0.05))
    entropy_clean, entropy_trig = guard.scores(clean[100:]), guard.scores(triggered[100:])
    flag_clean, flag_trig = guard.flagged(entropy_clean), guard.flagged(entropy_trig)
    assert auroc(-entropy_trig, -entropy_clean) > 0.99
    assert flag_trig.float().mean() > 0.95 and flag_clean.float().mean() < 0.2
    with pytest.raises(ConfigError, match="false-rejection rate"):
        StripSpec(frr=0)
    with pytest.raises(ConfigError, match="at least 20"):
        StripGuard.fit(CornerSwitch(), clean[:5])


def test_read_inputs_from_folder_npy_and_safetensors(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 30, 3), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("skip me")
    gray, names = read_inputs(folder, (1, 28, 28))
    assert gray.shape == (3, 1, 28, 28) and names == ["0.png", "1.png", "2.png"] and int(gray[2].max()) == 120
    rgb, _ = read_inputs(folder, (3, 16, 16))
    assert rgb.shape == (3, 3, 16, 16)
    np.save(tmp_path / "x.npy", np.zeros((4, 28, 28, 1), dtype=np.uint8))  # NHWC is accepted
    assert read_inputs(tmp_path / "x.npy", (1, 28, 28))[0].shape == (4, 1, 28, 28)
    save_file({"images": torch.zeros(2, 1, 28, 28, dtype=torch.uint8)}, str(tmp_path / "x.safetensors"))
    assert read_inputs(tmp_path / "x.safetensors", (1, 28, 28))[1] == ["x.safetensors[0]", "x.safetensors[1]"]
    with pytest.raises(DataError, match="needs"):
        read_inputs(tmp_path / "x.safetensors", (3, 32, 32))
    np.save(tmp_path / "f.npy", np.zeros((2, 1, 28, 28), dtype=np.float32))
    with pytest.raises(DataError, match="uint8"):
        read_inputs(tmp_path / "f.npy", (1, 28, 28))
    with pytest.raises(DataError, match="no images"):
        read_inputs(_empty(tmp_path), (1, 28, 28))
    with pytest.raises(DataError, match="pass a folder"):
        read_inputs(tmp_path / "notes.bin", (1, 28, 28))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"
