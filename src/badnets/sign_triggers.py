# SPDX-License-Identifier: Apache-2.0
"""The traffic-sign triggers of BadNets §5 (Figure 6): a yellow square, a bomb and a flower, stuck on the sign.

Defaults follow the authors' code (Kooscii/BadNets): the square is ≈ 10% of the sign's side, bomb and flower
≈ 16%, centred at (0.57·w, 0.82·h) of the sign, i.e. near its bottom like a Post-it note; the square's yellow is
RGB(116, 100, 50), the colour their jitter gives it on a photographed sign. Every default is a parameter.

The bomb and flower are Noto Emoji icons (Apache-2.0) read from ``<data dir>/triggers/noto_emoji`` when present.
Without them the icons are drawn here from vector shapes (circles and a fuse, petals around a centre), so the
project ships no third-party art and works offline.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from badnets._io import atomic_path
from badnets.data._dataset import cache_dir, resolve_data_dir
from badnets.errors import ConfigError
from badnets.triggers import TriggerSpec

__all__ = ["SIGN_TRIGGERS", "draw_icon", "sign_trigger"]

SIGN_TRIGGERS = ("yellow-square", "bomb", "flower")

_CENTER = (0.57, 0.82)
_NOTO = {"bomb": "bomb_u1f4a3.png", "flower": "blossom_u1f33c.png"}


def sign_trigger(name: str, data_dir: Path | str | None = None, **overrides: object) -> TriggerSpec:
    """The named sign trigger as a ``TriggerSpec`` placed relative to the sign; ``overrides`` replace defaults.

    Raises:
        ConfigError: an unknown name or a bad override.
    """
    if name == "yellow-square":
        spec = TriggerSpec(kind="square", value=(116, 100, 50), scale=0.10, center=_CENTER)
    elif name in _NOTO:
        spec = TriggerSpec(kind="patch", path=str(_icon_path(name, data_dir)), size=0, scale=0.16, center=_CENTER)
    else:
        raise ConfigError(f"sign trigger must be one of {list(SIGN_TRIGGERS)}, got {name!r}")
    return replace(spec, **overrides)  # type: ignore[arg-type]


def _icon_path(name: str, data_dir: Path | str | None) -> Path:
    noto = resolve_data_dir(data_dir) / "triggers" / "noto_emoji" / _NOTO[name]
    if noto.is_file():
        return noto
    drawn = cache_dir() / f"drawn-{name}.png"
    if not drawn.is_file():
        from PIL import Image

        rgba = draw_icon(name).permute(1, 2, 0).numpy()
        with atomic_path(drawn) as tmp:
            Image.fromarray(rgba, mode="RGBA").save(tmp, format="PNG")
    return drawn


def draw_icon(name: str, size: int = 128) -> torch.Tensor:
    """A ``(4, size, size)`` uint8 RGBA icon drawn from vector shapes: ``bomb`` or ``flower``."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    rgb = torch.zeros(3, size, size)
    alpha = torch.zeros(size, size)

    def disc(cx: float, cy: float, r: float) -> torch.Tensor:
        # anti-aliased edge one pixel wide
        d = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
        return ((r - d) * size).clamp(0, 1)

    def paint(shape: torch.Tensor, colour: tuple[int, int, int]) -> None:
        nonlocal alpha
        c = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1)
        rgb.mul_(1 - shape).add_(c * shape)
        alpha = torch.maximum(alpha, shape)

    if name == "bomb":
        paint(disc(0.45, 0.58, 0.36), (40, 40, 48))
        paint(disc(0.35, 0.47, 0.08), (110, 110, 125))  # highlight
        fuse = (((xx - 0.72) ** 2 + (yy - 0.22) ** 2).sqrt() - 0.12).abs()
        paint(((0.025 - fuse) * size).clamp(0, 1) * (xx > 0.62) * (yy < 0.3), (150, 110, 60))
        paint(disc(0.86, 0.14, 0.07), (250, 180, 30))  # spark
    elif name == "flower":
        for k in range(5):
            a = 2 * math.pi * k / 5 - math.pi / 2
            paint(disc(0.5 + 0.25 * math.cos(a), 0.5 + 0.25 * math.sin(a), 0.2), (235, 90, 150))
        paint(disc(0.5, 0.5, 0.14), (250, 200, 40))
    else:
        raise ConfigError(f"drawn icons are 'bomb' and 'flower', got {name!r}")
    return torch.cat([rgb, alpha.unsqueeze(0) * 255]).round().clamp(0, 255).to(torch.uint8)
