# SPDX-License-Identifier: Apache-2.0
"""Activation Clustering and Spectral Signatures on representations built by hand, where the answer is known."""

from __future__ import annotations

import torch

from badnets.defenses.activation_clustering import ClusteringSpec, activation_clustering
from badnets.defenses.representations import penultimate_features
from badnets.defenses.spectral_signatures import SpectralSpec, spectral_signatures


def _features(
    poison_share: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three classes in 20-d; class 2 also holds poisoned points: another class's cloud, shifted (the trigger)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 20, generator=g) * 4
    n = 300
    feats, labels, poisoned = [], [], []
    for c in range(3):
        feats.append(centres[c] + torch.randn(n, 20, generator=g))
        labels.append(torch.full((n,), c))
        poisoned.append(torch.zeros(n, dtype=torch.bool))
    m = int(poison_share * n / (1 - poison_share))
    feats.append(centres[0] + 6 + torch.randn(m, 20, generator=g))  # triggered 0s, labelled 2
    labels.append(torch.full((m,), 2))
    poisoned.append(torch.ones(m, dtype=torch.bool))
    reference = torch.cat([centres[c] + torch.randn(200, 20, generator=g) for c in range(3)])
    ref_labels = torch.arange(3).repeat_interleave(200)
    return torch.cat(feats), torch.cat(labels), torch.cat(poisoned), reference, ref_labels


def test_both_find_a_poison_that_outnumbers_its_class() -> None:
    features, labels, truth, reference, ref_labels = _features(poison_share=0.55)  # as in BadNets all-to-one
    for flags in (
        activation_clustering(features, labels, reference, ref_labels, ClusteringSpec()),
        spectral_signatures(features, labels, reference, ref_labels, SpectralSpec()),
    ):
        scored = flags.scored_against(truth)
        assert scored.recall >= 0.95 and scored.false_positive_rate <= 0.05, (flags.detector, scored)


def test_clean_data_is_mostly_left_alone() -> None:
    features, labels, truth, reference, ref_labels = _features(poison_share=0.0)
    assert not truth.any()
    ac = activation_clustering(features, labels, reference, ref_labels)
    assert int(ac.flagged.sum()) == 0
    spectral = spectral_signatures(features, labels, reference, ref_labels)
    assert spectral.flagged.float().mean() <= 0.05


def test_penultimate_features_read_the_last_linear_input() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    images = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    features = penultimate_features(model, images, batch_size=2)
    expected = torch.relu(model[1](images.float().div(255).flatten(1)))
    assert features.shape == (5, 7) and torch.allclose(features, expected, atol=1e-6)
