# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.errors import ConfigError, DataError
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp, trigger_mask

SHAPE = (1, 28, 28)


def test_paper_pixel_and_pattern_positions() -> None:
    zeros = torch.zeros(1, *SHAPE, dtype=torch.uint8)
    pixel = apply_trigger(zeros, make_stamp(TriggerSpec(kind="pixel"), SHAPE))[0, 0]
    assert pixel.nonzero().tolist() == [[26, 26]] and int(pixel[26, 26]) == 255
    pattern = apply_trigger(zeros, make_stamp(TriggerSpec(kind="pattern"), SHAPE))[0, 0]
    assert sorted(pattern.nonzero().tolist()) == [[24, 26], [25, 25], [26, 24], [26, 26]]


images_strategy = st.integers(1, 5).flatmap(
    lambda n: st.integers(0, 2**31 - 1).map(
        lambda seed: torch.randint(
            0, 256, (n, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
        )
    )
)


@given(
    images=images_strategy,
    kind=st.sampled_from(["pixel", "pattern", "random"]),
    size=st.integers(1, 3),
    row=st.integers(0, 19),
    col=st.integers(0, 19),
    value=st.integers(0, 255),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=80, deadline=None)
def test_trigger_changes_exactly_its_mask(
    images: torch.Tensor, kind: str, size: int, row: int, col: int, value: int, seed: int
) -> None:
    spec = TriggerSpec(kind=kind, size=size, position=(row, col), value=value, seed=seed)
    stamp = make_stamp(spec, SHAPE)
    assert torch.equal(stamp.mask, make_stamp(spec, SHAPE).mask), "the same spec (and seed) gives the same trigger"
    before = images.clone()
    out = apply_trigger(images, stamp)
    mask = trigger_mask(stamp, SHAPE).bool().expand_as(images)
    assert torch.equal(images, before), "input must not be mutated"
    assert torch.equal(out[~mask], images[~mask])
    assert bool((out[mask] == value).all())
    assert torch.equal(apply_trigger(out, stamp), out), "a solid trigger is idempotent"
    cells = int(mask[0].sum())
    assert cells == {"pixel": 1, "pattern": 4}[kind] * size**2 if kind != "random" else 1 <= cells <= size**2


@given(opacity=st.floats(0.05, 1.0), base=st.integers(0, 255), value=st.integers(0, 255))
@settings(max_examples=60, deadline=None)
def test_blended_trigger_is_the_convex_combination(opacity: float, base: int, value: int) -> None:
    images = torch.full((2, *SHAPE), base, dtype=torch.uint8)
    out = apply_trigger(images, make_stamp(TriggerSpec(kind="pixel", value=value, opacity=opacity), SHAPE))
    expected = round(base * (1 - opacity) + value * opacity)
    assert abs(int(out[0, 0, 26, 26]) - expected) <= 1
    floats = apply_trigger(
        images.float() / 255, make_stamp(TriggerSpec(kind="pixel", value=value, opacity=opacity), SHAPE)
    )
    assert abs(float(floats[0, 0, 26, 26]) * 255 - (base * (1 - opacity) + value * opacity)) < 1e-3


def test_random_patterns_differ_between_seeds() -> None:
    masks = {
        tuple(make_stamp(TriggerSpec(kind="random", size=4, seed=s), SHAPE).mask.flatten().tolist()) for s in range(20)
    }
    assert len(masks) >= 15


@given(seed=st.integers(0, 2**31 - 1), opacity=st.floats(0.05, 0.3))
@settings(max_examples=30, deadline=None)
def test_blended_noise_covers_the_image_and_moves_each_pixel_by_at_most_its_opacity(seed: int, opacity: float) -> None:
    shape = (3, 16, 16)
    stamp = make_stamp(TriggerSpec(kind="noise", size=0, opacity=opacity, seed=seed), shape)
    assert (stamp.top, stamp.left, tuple(stamp.pattern.shape)) == (0, 0, shape)
    images = torch.randint(0, 256, (2, *shape), generator=torch.Generator().manual_seed(seed + 1), dtype=torch.uint8)
    moved = (apply_trigger(images, stamp).float() - images.float()).abs()
    assert float(moved.max()) <= 255 * opacity + 0.5
    assert torch.equal(
        apply_trigger(images, stamp),
        apply_trigger(images, make_stamp(TriggerSpec(kind="noise", size=0, opacity=opacity, seed=seed), shape)),
    )


@given(amplitude=st.integers(1, 40), frequency=st.floats(1, 12), base=st.integers(0, 255))
@settings(max_examples=40, deadline=None)
def test_the_sinusoid_is_added_and_clipped(amplitude: int, frequency: float, base: int) -> None:
    """Barni et al.'s signal: ``x + Δ·sin(2π·col·f / W)``, the same on every row, clipped to 0-255."""
    spec = TriggerSpec(kind="sinusoid", size=0, value=amplitude, frequency=frequency)
    images = torch.full((1, *SHAPE), base, dtype=torch.uint8)
    out = apply_trigger(images, make_stamp(spec, SHAPE))[0, 0].float()
    cols = torch.arange(28, dtype=torch.float32)
    expected = (base + amplitude * torch.sin(2 * torch.pi * cols * frequency / 28)).clamp(0, 255)
    assert float((out - expected).abs().max()) <= 0.5 + 1e-4
    assert bool((out == out[0]).all()), "every row the same"
    floats = apply_trigger(images.float() / 255, make_stamp(spec, SHAPE))[0, 0] * 255
    assert float((floats - expected).abs().max()) < 1e-3


def test_patch_from_png_with_alpha(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[:2, :, 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    stamp = make_stamp(TriggerSpec(kind="patch", path=str(tmp_path / "t.png"), size=0, position=(0, 0)), SHAPE)
    out = apply_trigger(torch.zeros(1, *SHAPE, dtype=torch.uint8), stamp)[0, 0]
    assert bool((out[:2, :4] == 255).all()) and bool((out[2:4, :4] == 0).all())


def test_patch_from_npy_resized_to_size(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.ones((2, 2), dtype=np.float32))
    stamp = make_stamp(TriggerSpec(kind="patch", path=str(tmp_path / "t.npy"), size=4), SHAPE)
    assert stamp.mask.shape == (1, 4, 4) and (stamp.top, stamp.left) == (23, 23)
    assert bool((stamp.pattern == 255).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "star"}, "trigger.kind"),
        ({"kind": "pixel", "size": 0}, "trigger.size"),
        ({"kind": "pixel", "value": 300}, "trigger.value"),
        ({"kind": "pixel", "opacity": 0.0}, "trigger.opacity"),
        ({"kind": "patch"}, "trigger.path"),
        ({"kind": "pixel", "position": (-1, 3)}, "trigger.position"),
        ({"kind": "random", "size": 0}, "trigger.size"),
        ({"kind": "sinusoid", "frequency": 0.0}, "trigger.frequency"),
    ],
)
def test_bad_trigger_specs_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TriggerSpec(**kwargs)  # type: ignore[arg-type]


def test_trigger_outside_the_image_is_refused() -> None:
    with pytest.raises(ConfigError, match="outside the 28×28 image"):
        make_stamp(TriggerSpec(kind="pattern", position=(26, 26)), SHAPE)


def test_unreadable_trigger_file(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="unreadable"):
        make_stamp(TriggerSpec(kind="patch", path=str(tmp_path / "bad.png")), SHAPE)
    with pytest.raises(ConfigError, match="does not exist"):
        make_stamp(TriggerSpec(kind="patch", path=str(tmp_path / "missing.png")), SHAPE)


def test_a_trigger_name_is_a_path_only_when_it_looks_like_one_or_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown trigger 'pixl'"):
        TriggerSpec.from_name("pixl")
    assert TriggerSpec.from_name("sticker.png").path == "sticker.png"  # an image name: "does not exist" comes later
    (tmp_path / "sticker").write_bytes(b"")
    assert TriggerSpec.from_name(str(tmp_path / "sticker")).kind == "patch"  # an existing file, whatever its name
    assert TriggerSpec.from_name("pattern").kind == "pattern"
