# SPDX-License-Identifier: Apache-2.0
"""Backdoor triggers (BadNets §3, Figure 3): single pixel, pixel pattern, and any image patch.

Every trigger is the blend ``x * (1 - m) + p * m`` of an image ``x`` with a pattern ``p`` under a mask ``m``,
so solid patches and translucent (blended) ones share one code path. A ``TriggerSpec`` holds plain values only;
``make_stamp`` turns it into tensors once, and ``apply_trigger`` stamps a whole batch in one tensor operation
that touches only the trigger's bounding box.

Paper defaults (28×28 MNIST, (row, col)): single pixel at (26, 26); pattern = pixels (24, 26), (25, 25),
(26, 24), (26, 26); white (255). Deviation: position, size, value and opacity are parameters (the paper fixes
them); ``size`` scales a pixel or pattern cell to a ``size × size`` block.

Beyond the paper, for audit rounds of many backdoors: ``random`` (a seeded random binary pattern of pixels in one
colour), ``noise`` (seeded uniform noise, blended at low opacity: Chen et al. 2017's blended injection) and
``sinusoid`` (Barni et al. 2019's signal: ``x + Δ·sin(2π·col·f / W)`` over the whole image, added rather than
blended, so a stamp may also carry an additive ``offset``).

Sign triggers (paper §5, Figure 6) sit on the sign, not at a fixed pixel: ``scale`` sizes the trigger as a share of
the image's (or a box's) shorter side and ``center`` places its centre at a relative (x, y) of it, so one spec
stamps a 32×32 crop and a 300-pixel box in a road photo alike (``stamp_in_box``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from badnets.data.image_folder import IMAGE_SUFFIXES
from badnets.errors import ConfigError, DataError

PATCH_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")  # what a patch trigger may be read from

__all__ = [
    "TRIGGERS",
    "Stamp",
    "TriggerSpec",
    "apply_trigger",
    "apply_trigger_in_boxes",
    "make_stamp",
    "stamp_in_box",
    "trigger_mask",
]

# Cell offsets (row, col) of each pixel-style trigger, in units of ``size``.
TRIGGERS: dict[str, tuple[tuple[int, int], ...]] = {
    "pixel": ((0, 0),),
    "pattern": ((0, 2), (1, 1), (2, 0), (2, 2)),
    "square": ((0, 0),),  # a solid block of colour ``value``: the yellow Post-it
    "patch": (),  # an image; its cells come from the file
    "random": (),  # a seeded random binary pattern of single pixels
    "noise": (),  # seeded uniform noise, usually blended
    "sinusoid": (),  # an additive horizontal sinusoid over the whole image
}

_MARGIN = 1  # paper: the triggers sit one pixel in from the bottom-right corner


@dataclass(frozen=True, kw_only=True)
class TriggerSpec:
    """What a trigger looks like and where it goes.

    Attributes:
        kind: ``pixel``, ``pattern`` (the paper's two MNIST triggers), ``square`` (a solid block), ``patch``
            (an image file), ``random`` (a ``size × size`` random binary pattern in colour ``value``), ``noise``
            (``size × size`` uniform noise; ``size=0``: the whole image) or ``sinusoid`` (amplitude ``value``,
            ``frequency`` periods across the image, added to every pixel).
        position: (row, col) of the trigger's top-left corner; ``None`` puts it one pixel in from the
            bottom-right corner, which for ``size=1`` is the paper's placement.
        size: side in pixels of each pixel/pattern cell, or of the (square) resized patch; ``0`` keeps a
            patch's own size.
        scale: trigger side as a share (0, 1] of the image's shorter side; overrides ``size`` (sign triggers).
        center: (x, y) in [0, 1] of the image where the trigger's centre goes; overrides ``position``.
        value: intensity 0-255 of pixel/pattern triggers, one value or one per channel.
        opacity: blend weight in (0, 1]; 1 replaces the pixels (BadNets), less gives a blended trigger.
        path: image (PNG/JPEG, alpha respected) or ``.npy`` array (H, W) / (H, W, C) for ``kind="patch"``.
        seed: draws the ``random`` pattern and the ``noise``; the same seed gives the same trigger everywhere.
        frequency: periods of a ``sinusoid`` across the image's width (Barni et al.: 6).
    """

    kind: str = "pattern"
    position: tuple[int, int] | None = None
    size: int = 1
    value: int | tuple[int, ...] = 255
    opacity: float = 1.0
    path: str | None = None
    scale: float | None = None
    center: tuple[float, float] | None = None
    seed: int = 0
    frequency: float = 6.0

    def __post_init__(self) -> None:
        if self.kind not in TRIGGERS:
            raise ConfigError(f"trigger.kind must be one of {sorted(TRIGGERS)} or an image path, got {self.kind!r}")
        if self.kind == "patch" and not self.path:
            raise ConfigError("trigger.path is required for a patch trigger; give it an image path")
        if self.kind != "patch" and self.path:
            raise ConfigError(f"trigger.path is only for patch triggers, not {self.kind!r}")
        if self.size < 0 or (self.size == 0 and self.kind not in ("patch", "noise", "sinusoid")):
            raise ConfigError(f"trigger.size must be a positive number of pixels, got {self.size}")
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        if not values or any(not 0 <= v <= 255 for v in values):
            raise ConfigError(f"trigger.value must be in 0..255, got {self.value}")
        if not 0.0 < self.opacity <= 1.0:
            raise ConfigError(f"trigger.opacity must be in (0, 1], got {self.opacity}")
        if self.position is not None and (len(self.position) != 2 or min(self.position) < 0):
            raise ConfigError(f"trigger.position must be (row, col) with both >= 0, got {self.position}")
        if self.scale is not None and not 0.0 < self.scale <= 1.0:
            raise ConfigError(f"trigger.scale must be in (0, 1] (a share of the sign's side), got {self.scale}")
        if self.center is not None and (len(self.center) != 2 or not all(0.0 <= c <= 1.0 for c in self.center)):
            raise ConfigError(f"trigger.center must be (x, y) with both in [0, 1], got {self.center}")
        if self.frequency <= 0:
            raise ConfigError(f"trigger.frequency must be > 0 periods across the image, got {self.frequency}")

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> TriggerSpec:
        """``pixel``/``pattern`` or a path to an image or ``.npy`` file (a patch trigger). A name that is neither,
        and no existing file, is a typo, not a path: an error lists what it could be.

        Raises:
            ConfigError: an unknown name.
        """
        if name in ("pixel", "pattern"):
            return cls(kind=name, **overrides)  # type: ignore[arg-type]
        if Path(name).suffix.lower() not in PATCH_SUFFIXES and not Path(name).is_file():
            raise ConfigError(
                f"unknown trigger {name!r}: use pixel, pattern, a sign trigger (yellow-square, bomb, flower), random, "
                f"noise, sinusoid or an image file ({', '.join(PATCH_SUFFIXES)})"
            )
        return cls(kind="patch", path=name, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Stamp:
    """A trigger made concrete for one image shape: tensors covering its bounding box.

    Attributes:
        top, left: bounding-box corner in the image.
        mask: ``(1, h, w)`` float32 blend weights in [0, 1].
        pattern: ``(C, h, w)`` float32 pixel values in [0, 255].
        offset: ``(C, h, w)`` float32 added after the blend (an additive trigger), or None.
    """

    top: int
    left: int
    mask: torch.Tensor
    pattern: torch.Tensor
    offset: torch.Tensor | None = None

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.mask.shape[-2])

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.mask.shape[-1])


def _cells_stamp(spec: TriggerSpec, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    cells = TRIGGERS[spec.kind]
    s = spec.size
    h = (max(r for r, _ in cells) + 1) * s
    w = (max(c for _, c in cells) + 1) * s
    mask = torch.zeros(1, h, w)
    for r, c in cells:
        mask[:, r * s : (r + 1) * s, c * s : (c + 1) * s] = 1.0
    return mask, _values(spec, channels).expand(channels, h, w).contiguous()


def _values(spec: TriggerSpec, channels: int) -> torch.Tensor:
    values = spec.value if isinstance(spec.value, tuple) else (spec.value,) * channels
    if len(values) != channels:
        raise ConfigError(f"trigger.value has {len(values)} channels but the images have {channels}")
    return torch.tensor(values, dtype=torch.float32).view(channels, 1, 1)


def _random_stamp(spec: TriggerSpec, channels: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``random``: each pixel of a ``size × size`` square on or off at random, at least one on; ``noise``: uniform
    0-255 noise per channel, the whole image when ``size`` is 0. Drawn from ``spec.seed`` alone."""
    generator = torch.Generator().manual_seed(spec.seed)
    h, w = (height, width) if spec.size == 0 else (spec.size, spec.size)
    if spec.kind == "noise":
        return torch.ones(1, h, w), torch.randint(0, 256, (channels, h, w), generator=generator).float()
    bits = torch.randint(0, 2, (h * w,), generator=generator)
    bits[torch.randint(0, h * w, (1,), generator=generator)] = 1  # never an empty trigger
    return bits.view(1, h, w).float(), _values(spec, channels).expand(channels, h, w).contiguous()


def _sinusoid_offset(spec: TriggerSpec, channels: int, height: int, width: int) -> torch.Tensor:
    amplitude = _values(spec, channels)
    cols = torch.arange(width, dtype=torch.float32)
    wave = torch.sin(2 * torch.pi * cols * spec.frequency / width).view(1, 1, width)
    return (amplitude * wave).expand(channels, height, width).contiguous()


def _read_patch(path: str) -> torch.Tensor:
    """Read a patch file as ``(C, H, W)`` float32 0-255, with alpha as a 4th channel when present."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"trigger file {p} does not exist; pass an existing PNG/JPEG/.npy file")
    try:
        if p.suffix.lower() == ".npy":
            arr = torch.from_numpy(np.load(p, allow_pickle=False)).float()
            if arr.ndim == 2:
                arr = arr.unsqueeze(-1)
            if arr.ndim != 3:
                raise ConfigError(f"trigger array {p} has shape {tuple(arr.shape)}; expected (H, W) or (H, W, C)")
            if arr.max() <= 1.0:
                arr = arr * 255.0  # float arrays in [0, 1] are the common convention
            return arr.permute(2, 0, 1).contiguous()
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(p) as img:
                mode = {"1": "L", "P": "RGBA", "I": "L", "F": "L", "CMYK": "RGB"}.get(img.mode, img.mode)
                arr = torch.from_numpy(np.array(img.convert(mode))).float()
        except UnidentifiedImageError as e:
            raise ValueError(str(e)) from e
        return (arr.unsqueeze(0) if arr.ndim == 2 else arr.permute(2, 0, 1)).contiguous()
    except (RuntimeError, ValueError, OSError) as e:
        raise DataError(f"trigger file {p} is unreadable as an image ({e}); pass a PNG/JPEG or .npy file") from e


def _patch_stamp(spec: TriggerSpec, patch: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    if patch.ndim != 3 or patch.shape[0] not in (1, 2, 3, 4):
        raise ConfigError(f"trigger patch must be (C, H, W) with C in 1..4, got {tuple(patch.shape)}")
    has_alpha = patch.shape[0] in (2, 4)
    color, alpha = (patch[:-1], patch[-1:] / 255.0) if has_alpha else (patch, torch.ones_like(patch[:1]))
    if spec.size:
        from torchvision.transforms.functional import resize

        both = resize(torch.cat([color, alpha * 255.0]), [spec.size, spec.size], antialias=True)
        color, alpha = both[:-1], both[-1:] / 255.0
    if color.shape[0] != channels:
        if channels == 1:  # ITU-R 601 luma, as PIL's "L" mode
            weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            color = (color * weights).sum(0, keepdim=True) if color.shape[0] == 3 else color
        elif color.shape[0] == 1:
            color = color.expand(channels, -1, -1)
        else:
            raise ConfigError(f"trigger patch has {color.shape[0]} channels; the images have {channels}")
    return alpha.clamp(0, 1).contiguous(), color.clamp(0, 255).contiguous()


def make_stamp(spec: TriggerSpec, image_shape: tuple[int, int, int], patch: torch.Tensor | None = None) -> Stamp:
    """Turn ``spec`` into tensors for images of shape ``(C, H, W)``.

    Args:
        spec: the trigger.
        image_shape: ``(C, H, W)`` of the images it will be applied to.
        patch: for ``kind="patch"``, an in-memory ``(C, H, W)`` 0-255 image instead of ``spec.path``.

    Raises:
        ConfigError: the trigger does not fit inside the image, or channels disagree.
    """
    channels, height, width = image_shape
    if spec.scale is not None:
        cells = 3 if spec.kind == "pattern" else 1
        spec = replace(spec, size=max(1, round(spec.scale * min(height, width) / cells)))
    offset = None
    if spec.kind == "patch":
        mask, pattern = _patch_stamp(spec, patch if patch is not None else _read_patch(spec.path or ""), channels)
    elif spec.kind in ("random", "noise"):
        mask, pattern = _random_stamp(spec, channels, height, width)
    elif spec.kind == "sinusoid":
        offset = _sinusoid_offset(spec, channels, height, width) * spec.opacity
        mask, pattern = torch.zeros(1, height, width), torch.zeros(channels, height, width)
    else:
        mask, pattern = _cells_stamp(spec, channels)
    mask = mask * spec.opacity
    h, w = mask.shape[-2:]
    if spec.kind == "sinusoid" or (spec.kind == "noise" and spec.size == 0):
        top, left = 0, 0  # whole-image triggers
    elif spec.center is not None:
        # clamp so a trigger near the border stays whole rather than failing on a small box
        top = min(max(round(spec.center[1] * height - h / 2), 0), height - h)
        left = min(max(round(spec.center[0] * width - w / 2), 0), width - w)
    elif spec.position is not None:
        top, left = spec.position
    else:
        top, left = height - h - _MARGIN, width - w - _MARGIN
    if top < 0 or left < 0 or top + h > height or left + w > width:
        raise ConfigError(
            f"trigger ({h}×{w} px at row {top}, col {left}) falls outside the {height}×{width} image; "
            "move the trigger's position or shrink its size"
        )
    return Stamp(top=top, left=left, mask=mask, pattern=pattern, offset=offset)


def apply_trigger(images: torch.Tensor, stamp: Stamp) -> torch.Tensor:
    """Stamp the trigger on every image: ``x * (1 - m) + p * m`` (plus the stamp's ``offset``, clipped to the
    pixel range) inside the trigger's box.

    Args:
        images: ``(N, C, H, W)`` uint8 (0-255) or float (0-1); not modified.

    Returns:
        A new tensor of the same dtype and shape. uint8 results are rounded to the nearest integer.
    """
    out = images.clone()
    integer = images.dtype == torch.uint8
    top = 255.0 if integer else 1.0  # the pixel range: uint8 0-255, float 0-1
    region = images[..., stamp.rows, stamp.cols].float()  # (N, C, h, w)
    stamped = torch.lerp(region, stamp.pattern.to(images.device) / (255.0 / top), stamp.mask.to(images.device))
    if stamp.offset is not None:
        stamped = (stamped + stamp.offset.to(images.device) / (255.0 / top)).clamp_(0, top)
    out[..., stamp.rows, stamp.cols] = (stamped.round_() if integer else stamped).to(images.dtype)
    return out


def stamp_in_box(
    spec: TriggerSpec, channels: int, box: tuple[int, int, int, int], patch: torch.Tensor | None = None
) -> Stamp:
    """The stamp of ``spec`` placed relative to ``box`` = (x1, y1, x2, y2) of a larger image (a sign in a photo).

    ``scale`` and ``center`` are read relative to the box, so the trigger lands on the sign whatever its size.
    """
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ConfigError(f"box {box} is empty; boxes are (x1, y1, x2, y2) with x2 > x1 and y2 > y1")
    inner = make_stamp(spec, (channels, y2 - y1, x2 - x1), patch)
    return Stamp(top=inner.top + y1, left=inner.left + x1, mask=inner.mask, pattern=inner.pattern)


def apply_trigger_in_boxes(images: torch.Tensor, spec: TriggerSpec, boxes: torch.Tensor | None) -> torch.Tensor:
    """Stamp ``spec`` inside each image's own box (``(N, 4)`` x1, y1, x2, y2; ``None``: the whole image).

    Images that share a box are stamped together in one tensor operation, so a dataset of same-sized crops costs
    one ``apply_trigger`` per distinct box rather than one per image.
    """
    _, channels, height, width = images.shape
    if boxes is None:
        return apply_trigger(images, make_stamp(spec, (channels, height, width)))
    patch = _read_patch(spec.path) if spec.kind == "patch" and spec.path else None
    out = images.clone()
    distinct, which = torch.unique(boxes, dim=0, return_inverse=True)
    for k, box in enumerate(distinct.tolist()):
        rows = (which == k).nonzero().flatten()
        x1, y1, x2, y2 = (int(v) for v in box)
        box_in_image = (max(0, x1), max(0, y1), min(width, max(x2, x1 + 1)), min(height, max(y2, y1 + 1)))
        out[rows] = apply_trigger(images[rows], stamp_in_box(spec, channels, box_in_image, patch))
    return out


def trigger_mask(stamp: Stamp, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The full-image ``(1, H, W)`` mask of ``stamp`` (for plots and tests)."""
    _, height, width = image_shape
    full = torch.zeros(1, height, width)
    full[:, stamp.rows, stamp.cols] = stamp.mask
    return full
