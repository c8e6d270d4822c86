# SPDX-License-Identifier: Apache-2.0
"""Sign triggers: relative size and placement, stamping inside boxes, Noto icons and the drawn fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.errors import ConfigError
from badnets.sign_triggers import SIGN_TRIGGERS, draw_icon, sign_trigger
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp, stamp_in_box, trigger_mask
from tests.conftest import REAL_DATA


def test_yellow_square_is_a_tenth_of_the_sign_near_its_bottom() -> None:
    spec = sign_trigger("yellow-square")
    stamp = make_stamp(spec, (3, 100, 100))
    assert stamp.mask.shape[-2:] == (10, 10)
    assert (stamp.left + 5, stamp.top + 5) == (57, 82)  # centred at (0.57 w, 0.82 h)
    out = apply_trigger(torch.zeros(1, 3, 100, 100, dtype=torch.uint8), stamp)[0]
    assert out[:, 82, 57].tolist() == [116, 100, 50]
    assert int(out.sum(0).bool().sum()) == 100


@pytest.mark.parametrize("name", ["bomb", "flower"])
def test_icons_are_drawn_when_no_noto_file_is_staged(name: str, tmp_path: Path) -> None:
    spec = sign_trigger(name, data_dir=tmp_path)  # empty data dir: no triggers/noto_emoji
    assert spec.path is not None and Path(spec.path).name == f"drawn-{name}.png"
    stamp = make_stamp(spec, (3, 50, 50))
    assert stamp.mask.shape[-2:] == (8, 8)  # 16% of the side
    assert 0.2 < float(stamp.mask.mean()) < 1.0  # a shape with a transparent surround, not a square


def test_drawn_icons_differ_and_have_alpha() -> None:
    bomb, flower = draw_icon("bomb", 64), draw_icon("flower", 64)
    assert bomb.shape == flower.shape == (4, 64, 64) and bomb.dtype == torch.uint8
    assert int(bomb[3, 0, 0]) == 0 and int(bomb[3, 37, 29]) == 255  # transparent corner, opaque body
    assert not torch.equal(bomb, flower)


def test_noto_icons_are_used_when_staged() -> None:
    if REAL_DATA is None or not (REAL_DATA / "triggers" / "noto_emoji").is_dir():
        pytest.skip("Noto emoji triggers not staged: set BADNETS_DATA to a folder with triggers/noto_emoji")
    assert Path(sign_trigger("bomb", REAL_DATA).path or "").name == "bomb_u1f4a3.png"
    assert Path(sign_trigger("flower", REAL_DATA).path or "").name == "blossom_u1f33c.png"


def test_bad_sign_trigger_options() -> None:
    with pytest.raises(ConfigError, match="sign trigger must be one of"):
        sign_trigger("banana")
    with pytest.raises(ConfigError, match=r"scale must be in \(0, 1\]"):
        sign_trigger("yellow-square", scale=1.5)
    with pytest.raises(ConfigError, match="center"):
        TriggerSpec(kind="square", center=(0.5, 1.2))
    with pytest.raises(ConfigError, match="is empty"):
        stamp_in_box(sign_trigger("yellow-square"), 3, (10, 10, 10, 20))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(SIGN_TRIGGERS),
    x1=st.integers(0, 150),
    y1=st.integers(0, 100),
    w=st.integers(6, 90),
    h=st.integers(6, 90),
    cx=st.floats(0, 1),
    cy=st.floats(0, 1),
)
def test_stamp_in_box_stays_inside_the_box(
    name: str, x1: int, y1: int, w: int, h: int, cx: float, cy: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec = sign_trigger(name, data_dir=tmp_path_factory.getbasetemp(), center=(cx, cy))
    box = (x1, y1, x1 + w, y1 + h)
    stamp = stamp_in_box(spec, 3, box)
    mask = trigger_mask(stamp, (3, 200, 250))[0]
    rows, cols = mask.nonzero(as_tuple=True)
    assert len(rows) > 0
    assert y1 <= int(rows.min()) and int(rows.max()) < y1 + h
    assert x1 <= int(cols.min()) and int(cols.max()) < x1 + w
    side = stamp.mask.shape[-1]
    expected = 0.10 if name == "yellow-square" else 0.16
    assert side == max(1, round(expected * min(w, h)))
