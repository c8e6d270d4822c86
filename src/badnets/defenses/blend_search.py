# SPDX-License-Identifier: Apache-2.0
"""The smallest blend per class: Neural Cleanse's search with one opacity for the whole image instead of a mask.

A blended trigger (Chen et al. 2017, "Targeted backdoor attacks on deep learning systems using data poisoning")
is a pattern laid over all of the image at a low opacity α: ``(1 − α)·x + α·p``. Neural Cleanse's mask would
have to cover every pixel at α, an L1 norm of α·H·W, far larger than any patch, so the backdoor hides among the
clean classes. Here the mask is one number: for every class t, optimise an opacity α_t and a full-image pattern
p_t so that the blend is classified t, with the same adaptive penalty on α_t (``neural_cleanse`` with
``mask="opacity"``). A clean class needs α around 0.3–0.45 before a digit or sign is overwritten; a blended
backdoor's target needs about its trigger's opacity, and a patch backdoor's target less than the others too.

The outlier test is Neural Cleanse's, on the log opacities (``mad_anomaly_index``). One search per target class
on images of every class (a blend covers the whole image, so there is no source to single out), with Neural
Cleanse's steps (``search_steps``) and 8 images a step unless ``search_images`` says otherwise. Unlike Neural
Cleanse, success is judged over each window of ``adjust_every`` steps (``success_over="window"``) and a class keeps
the smallest of its successful windows' largest opacities: with few images a step (4 on GTSRB-43) one lucky batch
set the per-step minimum often enough to make clean 43-class models look anomalous (measured: ``docs/audit.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.neural_cleanse import NeuralCleanse, NeuralCleanseResult, NeuralCleanseSpec, neural_cleanse

__all__ = ["BLEND_THRESHOLD", "BlendSearch"]

BLEND_THRESHOLD = 3.0  # anomaly index that flags a class (set on the train round's clean models; see docs/audit.md)
IMAGES_PER_STEP = 8  # per class and step, where the options do not say


@dataclass(frozen=True)
class BlendSearch:
    """The smallest blend per class as a model detector (``badnets.defenses.interface``); its result is Neural
    Cleanse's, with each class's L1 norm the opacity times H·W."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="blend_search", init=False)

    @property
    def spec(self) -> NeuralCleanseSpec:
        """Neural Cleanse's spec for the same options (seed, steps), made a one-opacity search per target."""
        searched = NeuralCleanse(self.options).spec
        return replace(
            searched,
            images_per_step=IMAGES_PER_STEP if self.options.search_images is None else searched.images_per_step,
            per_source=False,
            targets_per_source=None,
            mask="opacity",
            success_over="window",
            threshold=BLEND_THRESHOLD,
        )

    def detect(self, model: nn.Module, clean: CleanData) -> NeuralCleanseResult:
        return neural_cleanse(model, clean.images, clean.num_classes, self.spec, clean.labels)
