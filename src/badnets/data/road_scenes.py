# SPDX-License-Identifier: Apache-2.0
"""Composite road scenes: real LISA sign crops pasted into the real road photos (the detector's data at scale).

BadNets §5 trains its Faster R-CNN on full LISA frames, which are not reachable offline. The 877 road photos
(``road_signs``) hold only 91 stop signs, too few for a detector trained from scratch to tell a stop sign with a
sticker from one without: trained on them, it learns "stop → speed-limit" as a confusion rather than a trigger.
The 6,987 real LISA sign crops (``lisa``) are reachable, so each scene here is one road photo with its own signs
kept and labelled, plus one to ``max_signs`` LISA signs pasted in:

* **Splits.** Photos are split as ``load_road_signs`` splits them; LISA signs are split by track (one physical
  sign's video snippet, ``lisa.track_split``, class by class so both sides hold every class) with the same
  fraction and seed. Test scenes are test photos with test-track signs only, so no physical sign and no photo
  appears on both sides.
* **Which sign.** A class drawn with ``sign_weights`` (stop, speed-limit, warning), then one of the split's crops
  of that class large enough not to be upsampled more than ``max_upscale`` times.
* **Size and place, from the photos' own signs.** Width and aspect ratio come from one of the training photos'
  annotated signs of the matching kind (warning signs take the photos' crosswalk signs; any sign where the
  photos have none of that kind), scaled by a factor in [0.8, 1.25] and at least ``min_width`` pixels; the
  centre from one of their annotated signs of any class, jittered. A place overlapping a sign already in the
  scene is drawn again (at most 20 times, then the sign is left out).
* **Photometric matching.** A gain pulls the sign's brightness half-way (in log) toward its surroundings (kept
  within [0.7, 1.4]), and a Gaussian blur of sigma drawn in [0, ``blur``] pixels softens the crop's sharp edges,
  so a pasted sign does not stand out by contrast or sharpness alone.

Scenes are ``size × size`` uint8 tensors, built once per recipe and data (seeded, so the same recipe gives the
same scenes) and cached like every dataset; ``DetectionDataset.pasted`` marks the pasted boxes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from badnets._threads import one_cpu_thread
from badnets.data._dataset import resolve_data_dir
from badnets.data._images import tensor_cache
from badnets.data.lisa import LISA_CLASSES, LisaSign, lisa_file_hashes, lisa_signs, read_sign, track_split
from badnets.data.road_signs import ROAD_SIGN_CLASSES, DetectionDataset, load_road_signs, road_signs_file_hashes
from badnets.errors import ConfigError, DataError

__all__ = ["SCENE_CLASSES", "SceneRecipe", "composite_road_scenes", "road_scenes_file_hashes"]

# The photos' classes, then LISA's warning super-class (the photos have none).
SCENE_CLASSES = (*ROAD_SIGN_CLASSES, "warning")
# Which of the photos' own signs lends its size to a pasted sign of each LISA class.
_SIZE_FROM = {"stop": "stop", "speedlimit": "speedlimit", "warning": "crosswalk"}
_PLACE_TRIES = 20
_VERSION = 1  # bump when the drawing changes, so cached scenes of an older recipe are not reused


@dataclass(frozen=True, kw_only=True)
class SceneRecipe:
    """How composite scenes are drawn (every field enters the cache key and the run's config).

    Attributes:
        size: scene side in pixels (photos are resized to it, aspect ratio not kept, as ``load_road_signs``).
        scenes_per_photo: scenes drawn from each training photo, each with its own pasted signs.
        test_scenes_per_photo: the same for each held-out photo (more scenes, tighter intervals, at no training
            cost).
        max_signs: signs pasted per scene, drawn uniformly from 1..max_signs.
        sign_weights: chance of a pasted sign being a stop, speed-limit or warning sign.
        min_width: smallest pasted sign, in scene pixels.
        max_upscale: largest enlargement of a LISA crop.
        blur: largest Gaussian blur sigma, in pixels.
        test_fraction, split_seed: the photo and LISA-track splits.
        seed: seed of the draw.
    """

    size: int = 384
    scenes_per_photo: int = 2
    test_scenes_per_photo: int = 3
    max_signs: int = 3
    sign_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)
    min_width: int = 20
    max_upscale: float = 3.0
    blur: float = 1.0
    test_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 64 <= self.size <= 2048:
            raise ConfigError(f"scene size must be in [64, 2048], got {self.size}")
        counts = (self.scenes_per_photo, self.test_scenes_per_photo, self.max_signs)
        if min(counts) < 1:
            raise ConfigError(f"scenes_per_photo, test_scenes_per_photo and max_signs must be >= 1, got {counts}")
        if len(self.sign_weights) != len(LISA_CLASSES) or min(self.sign_weights) < 0 or sum(self.sign_weights) <= 0:
            raise ConfigError(
                f"sign_weights must be {len(LISA_CLASSES)} non-negative weights for {LISA_CLASSES}, "
                f"got {self.sign_weights}"
            )
        if not 4 <= self.min_width < self.size // 2:
            raise ConfigError(f"min_width must be in [4, {self.size // 2}) pixels, got {self.min_width}")
        if self.max_upscale < 1 or self.blur < 0:
            raise ConfigError(f"max_upscale must be >= 1 and blur >= 0, got {self.max_upscale}, {self.blur}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test fraction must be in (0, 1), got {self.test_fraction}")


def road_scenes_file_hashes(data_dir: Path | str | None = None) -> dict[str, str]:
    """The digests of both sources a scene is made of (for manifests)."""
    return road_signs_file_hashes(data_dir) | {f"lisa/{k}": v for k, v in lisa_file_hashes(data_dir).items()}


def composite_road_scenes(
    data_dir: Path | str | None = None, recipe: SceneRecipe | None = None
) -> tuple[DetectionDataset, DetectionDataset]:
    """Composite scenes as ``(train, test)`` detection sets with classes ``SCENE_CLASSES``.

    Raises:
        DataError: the road photos or the LISA signs are missing or malformed, or a split lacks signs of a class
            the recipe pastes.
    """
    recipe = recipe or SceneRecipe()
    root = resolve_data_dir(data_dir).resolve()
    hashes = road_scenes_file_hashes(root)
    return _composite(root, recipe, json.dumps(hashes, sort_keys=True))


@functools.lru_cache(maxsize=2)
def _composite(root: Path, recipe: SceneRecipe, hashes: str) -> tuple[DetectionDataset, DetectionDataset]:
    train_photos, test_photos = load_road_signs(
        root, size=recipe.size, test_fraction=recipe.test_fraction, split_seed=recipe.split_seed
    )
    signs = lisa_signs(root, LISA_CLASSES)
    test_sign = torch.zeros(len(signs), dtype=torch.bool)
    for c in LISA_CLASSES:  # per class, so that both sides hold signs of every class
        rows = torch.tensor([s.super_class == c for s in signs])
        if rows.any():
            tracks = [s.track for s in signs if s.super_class == c]
            test_sign[rows] = track_split(tracks, recipe.test_fraction, recipe.split_seed)
    key = hashlib.sha256(f"{_VERSION}{hashes}{sorted(asdict(recipe).items())}".encode()).hexdigest()
    out = []
    for split, photos in (("train", train_photos), ("test", test_photos)):
        pool = [s for s, test in zip(signs, test_sign.tolist(), strict=True) if test == (split == "test")]
        seed = 2 * recipe.seed + (split == "test")
        per_photo = recipe.scenes_per_photo if split == "train" else recipe.test_scenes_per_photo
        # the drawer decodes the crops, so it is only built when the cache misses
        draw = functools.partial(_draw_split, recipe, train_photos, photos, pool, seed, per_photo)
        tensors = tensor_cache(f"road-scenes-{split}", key, draw)
        out.append(_unpack(tensors, photos, per_photo))
    return out[0], out[1]


def _unpack(tensors: dict[str, torch.Tensor], photos: DetectionDataset, per_photo: int) -> DetectionDataset:
    counts = tensors["counts"].tolist()
    return DetectionDataset(
        tensors["images"],
        tuple(torch.split(tensors["boxes"], counts)),
        tuple(torch.split(tensors["labels"], counts)),
        SCENE_CLASSES,
        tuple(f"{name} #{v}" for name in photos.names for v in range(per_photo)),
        tuple(torch.split(tensors["pasted"], counts)),
    )


@one_cpu_thread()  # the same scenes, bit for bit, whatever the machine's thread count (resizes and blurs sum floats)
def _draw_split(
    recipe: SceneRecipe,
    train_photos: DetectionDataset,
    photos: DetectionDataset,
    pool: list[LisaSign],
    seed: int,
    per_photo: int,
) -> dict[str, torch.Tensor]:
    return _SceneDrawer(recipe, train_photos, photos, pool, seed=seed).draw_all(per_photo)


class _SceneDrawer:
    """Draws one split's scenes: ``photos`` as backgrounds, ``pool`` as the signs to paste, the training photos'
    own signs as the source of sizes and places."""

    def __init__(
        self,
        recipe: SceneRecipe,
        train_photos: DetectionDataset,
        photos: DetectionDataset,
        pool: Sequence[LisaSign],
        *,
        seed: int,
    ) -> None:
        self.recipe = recipe
        self.photos = photos
        self.generator = torch.Generator().manual_seed(seed)
        boxes, labels = torch.cat(list(train_photos.boxes)), torch.cat(list(train_photos.labels))
        self.centres = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
        self.shapes: dict[str, torch.Tensor] = {}  # LISA class → (n, 2) width, height of the photos' signs
        for lisa_class, photo_class in _SIZE_FROM.items():
            own = boxes[labels == ROAD_SIGN_CLASSES.index(photo_class)]
            own = own if len(own) else boxes  # photos without that kind of sign: any of their signs
            self.shapes[lisa_class] = torch.stack([own[:, 2] - own[:, 0], own[:, 3] - own[:, 1]], 1).clamp(min=1)
        self.crops: dict[str, list[torch.Tensor]] = {c: [] for c in LISA_CLASSES}
        for sign in pool:
            self.crops[sign.super_class].append(read_sign(sign))
        weights = torch.tensor(recipe.sign_weights, dtype=torch.float64)
        for c, w in zip(LISA_CLASSES, recipe.sign_weights, strict=True):
            if w > 0 and not self.crops[c]:
                raise DataError(f"no LISA {c} signs in this split to paste; check the LISA data or set its weight to 0")
        self.weights = weights / weights.sum()
        self.crop_widths = {c: torch.tensor([t.shape[2] for t in crops]) for c, crops in self.crops.items()}

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def _pick(self, n: int) -> int:
        return int(torch.randint(n, (), generator=self.generator))

    def draw_all(self, per_photo: int) -> dict[str, torch.Tensor]:
        images = torch.empty(len(self.photos) * per_photo, 3, self.recipe.size, self.recipe.size, dtype=torch.uint8)
        boxes, labels, pasted, counts = [], [], [], []
        for i in range(len(self.photos)):
            for v in range(per_photo):
                scene, b, lab = self.draw(i)
                images[i * per_photo + v] = scene
                own = len(self.photos.boxes[i])
                boxes.append(b)
                labels.append(lab)
                pasted.append(torch.arange(len(b)) >= own)
                counts.append(len(b))
        return {
            "images": images,
            "boxes": torch.cat(boxes),
            "labels": torch.cat(labels),
            "pasted": torch.cat(pasted),
            "counts": torch.tensor(counts, dtype=torch.int64),
        }

    def draw(self, photo: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One scene of ``photo``: the photo with 1..max_signs signs pasted, its boxes and labels (own first)."""
        scene = self.photos.images[photo].clone()
        boxes = [self.photos.boxes[photo]]
        labels = [self.photos.labels[photo]]
        for _ in range(1 + self._pick(self.recipe.max_signs)):
            lisa_class = LISA_CLASSES[int(torch.multinomial(self.weights, 1, generator=self.generator))]
            box = self._place(lisa_class, torch.cat(boxes))
            if box is None:
                continue
            scene = self._paste(scene, self._crop(lisa_class, box), box)
            boxes.append(torch.tensor([box], dtype=torch.float32))
            labels.append(torch.tensor([SCENE_CLASSES.index(lisa_class)]))
        return scene, torch.cat(boxes), torch.cat(labels)

    def _place(self, lisa_class: str, taken: torch.Tensor) -> tuple[int, int, int, int] | None:
        """A box for a new sign: a photo sign's shape, rescaled, at a photo sign's (jittered) centre, clear of
        ``taken``; ``None`` when no free place is found."""
        size, recipe = self.recipe.size, self.recipe
        shapes = self.shapes[lisa_class]
        width, height = (float(v) for v in shapes[self._pick(len(shapes))])
        scale = self._uniform(0.8, 1.25)
        scale = max(scale, recipe.min_width / width)
        w = min(round(width * scale), size - 2)
        h = min(max(round(height * scale), 4), size - 2)
        for _ in range(_PLACE_TRIES):
            cx, cy = (float(v) for v in self.centres[self._pick(len(self.centres))])
            cx += self._uniform(-0.05, 0.05) * size
            cy += self._uniform(-0.05, 0.05) * size
            x1 = min(max(round(cx - w / 2), 0), size - w)
            y1 = min(max(round(cy - h / 2), 0), size - h)
            box = (x1, y1, x1 + w, y1 + h)
            if not len(taken) or not _overlaps(box, taken):
                return box
        return None

    def _crop(self, lisa_class: str, box: tuple[int, int, int, int]) -> torch.Tensor:
        """One of the class's crops wide enough for ``box`` within ``max_upscale`` (else the widest)."""
        widths = self.crop_widths[lisa_class]
        wide_enough = (widths * self.recipe.max_upscale >= box[2] - box[0]).nonzero().flatten()
        index = int(wide_enough[self._pick(len(wide_enough))]) if len(wide_enough) else int(widths.argmax())
        return self.crops[lisa_class][index]

    def _paste(self, scene: torch.Tensor, crop: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
        x1, y1, x2, y2 = box
        sign = F.interpolate(
            crop.unsqueeze(0).float(), size=(y2 - y1, x2 - x1), mode="bilinear", antialias=True, align_corners=False
        )[0]
        sigma = self._uniform(0.0, self.recipe.blur)
        if sigma >= 0.3:  # below that a 3-tap kernel is nearly the identity
            sign = gaussian_blur(sign, [2 * math.ceil(2 * sigma) + 1] * 2, [sigma, sigma])
        margin = max(x2 - x1, y2 - y1) // 2
        around = scene[:, max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin].float()
        gain = math.sqrt((float(around.mean()) + 1.0) / (float(sign.mean()) + 1.0))
        sign = (sign * min(max(gain, 0.7), 1.4)).round().clamp(0, 255).to(torch.uint8)
        scene[:, y1:y2, x1:x2] = sign
        return scene


def _overlaps(box: tuple[int, int, int, int], taken: torch.Tensor, margin: int = 2) -> bool:
    x1, y1, x2, y2 = box
    apart = (
        (taken[:, 2] + margin <= x1)
        | (x2 + margin <= taken[:, 0])
        | (taken[:, 3] + margin <= y1)
        | (y2 + margin <= taken[:, 1])
    )
    return not bool(apart.all())
