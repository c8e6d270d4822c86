# SPDX-License-Identifier: Apache-2.0
"""Activation Clustering (Chen et al., 2018): which training samples carry a backdoor?

Reduce each class's representations (``badnets.defenses.representations``) to 10 dimensions (PCA), split them
into two clusters (k-means), and call the cluster farther from the class's clean reference centroid poisoned when
it lies ``min_separation`` robust standard deviations (of the clean references' own distances) or more from it. In
a poisoned class, samples farther from the centroid than the clean references reach are flagged too: a poison
drawn from nine source classes does not always fall into one k-means cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.representations import (
    SampleFlags,
    by_class,
    robust_z,
    screen_representations,
    top_directions,
)

__all__ = ["ActivationClustering", "ClusteringSpec", "activation_clustering"]


@dataclass(frozen=True, kw_only=True)
class ClusteringSpec:
    """``min_separation``: robust z of the far cluster's median distance from the class's clean centroid above
    which the class counts as poisoned; ``fpr``: share of clean references allowed beyond the per-sample limit."""

    dims: int = 10
    min_separation: float = 3.0
    fpr: float = 0.01
    seed: int = 0


def _pca_basis(x: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and the top ``dims`` principal directions of ``x``."""
    mean = x.mean(0)
    return mean, top_directions(x - mean, dims)


def _silhouette(x: torch.Tensor, labels: torch.Tensor, sample: int = 2000, seed: int = 0) -> float:
    """Mean silhouette of a 2-cluster split (on at most ``sample`` points, for speed)."""
    if len(x) > sample:
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:sample]
        x, labels = x[keep], labels[keep]
    d = torch.cdist(x, x)
    own, other = labels[:, None] == labels[None, :], labels[:, None] != labels[None, :]
    a = (d * own).sum(1) / (own.sum(1) - 1).clamp_min(1)
    b = (d * other).sum(1) / other.sum(1).clamp_min(1)
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    return float(s.mean())


def activation_clustering(
    features: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    spec: ClusteringSpec | None = None,
) -> SampleFlags:
    """Activation Clustering on ``(N, D)`` training representations, with clean ``reference`` representations."""
    from scipy.cluster.vq import kmeans2

    cfg = spec or ClusteringSpec()

    def rule(x: torch.Tensor, ref: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        mean, basis = _pca_basis(x, cfg.dims)
        reduced, ref = (x - mean) @ basis, (ref - mean) @ basis
        centre = ref.mean(0)
        _, assign_np = kmeans2(reduced.double().numpy(), 2, minit="++", seed=np.random.default_rng(cfg.seed + c))
        assign = torch.from_numpy(assign_np).long()
        ref_distance = (ref - centre).norm(dim=1)
        z = robust_z((reduced - centre).norm(dim=1), ref_distance)
        cluster_z = torch.stack([z[assign == k].median() if (assign == k).any() else z.new_tensor(0.0) for k in (0, 1)])
        far = int(cluster_z.argmax())
        poisoned_class = bool(cluster_z[far] >= cfg.min_separation)
        # k-means may leave part of a poison that came from several source classes in the near cluster; any
        # sample farther from the clean centroid than the clean references reach is flagged with the far cluster
        limit = float(torch.quantile(robust_z(ref_distance, ref_distance), 1 - cfg.fpr))
        flagged = ((assign == far) | (z > limit)) & poisoned_class
        info = {
            "far_cluster_share": float((assign == far).float().mean()),
            "far_cluster_z": float(cluster_z[far]),
            "silhouette": _silhouette(reduced, assign, seed=cfg.seed),
            "flagged": float(poisoned_class),
        }
        return z, flagged, info

    return by_class("activation_clustering", features, labels, reference, reference_labels, rule)


@dataclass(frozen=True)
class ActivationClustering:
    """Activation Clustering as a training-data screen (``badnets.defenses.interface``); its time includes
    reading the representations."""

    options: DefenseOptions = field(default_factory=DefenseOptions)
    name: str = field(default="activation_clustering", init=False)

    def screen(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clean: CleanData) -> SampleFlags:
        spec = ClusteringSpec(seed=self.options.seed)

        def detect(x: torch.Tensor, y: torch.Tensor, ref: torch.Tensor, ref_y: torch.Tensor) -> SampleFlags:
            return activation_clustering(x, y, ref, ref_y, spec)

        return screen_representations(model, images, labels, (clean.images, clean.labels), detect)
