# SPDX-License-Identifier: Apache-2.0
"""Neural Cleanse: the anomaly index by hand and its properties, and the per-source search on a hand-built model
whose backdoor fires on one source class only."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from badnets.defenses.neural_cleanse import NeuralCleanseSpec, leaning_targets, mad_anomaly_index, neural_cleanse
from badnets.errors import ConfigError

K, SIDE, SOURCE, TARGET = 6, 12, 0, 3


def test_mad_anomaly_index_by_hand() -> None:
    l1 = torch.tensor([10.0, 11.0, 9.0, 10.0, 1.0])
    index = mad_anomaly_index(l1)
    # log norms: median log 10; |log l1 - log 10| = 0, log 1.1, log(10/9), 0, log 10 → median log 1.1
    consistency = 1.4826 * math.log(1.1)
    assert index[4] == pytest.approx(math.log(10) / consistency, rel=1e-5)
    assert index[2] == pytest.approx(math.log(10 / 9) / consistency, rel=1e-5)
    assert index[1] == 0 and index[0] == 0 and int(index.argmax()) == 4


def test_even_count_uses_the_midpoint_median() -> None:
    # numpy's median of 4 values is the midpoint of the middle two; torch.median would take the lower one
    index = mad_anomaly_index(torch.tensor([1.0, 4.0, 16.0, 64.0]))
    log4 = math.log(4)  # logs 0, 1, 2, 3 (× log 4): median 1.5, deviations 1.5 .5 .5 1.5 → MAD 1
    assert index[0] == pytest.approx(1.5 * log4 / (1.4826 * log4), rel=1e-5)


norms = st.lists(st.floats(0.5, 500.0), min_size=3, max_size=20)


@given(norms, st.floats(0.01, 100.0))
@settings(max_examples=60, deadline=None)
def test_index_is_scale_free_and_non_negative(l1: list[float], scale: float) -> None:
    base = mad_anomaly_index(torch.tensor(l1, dtype=torch.float64))
    scaled = mad_anomaly_index(torch.tensor(l1, dtype=torch.float64) * scale)
    assert (base >= 0).all()
    assert torch.allclose(base, scaled, rtol=1e-6, atol=1e-6)


@given(norms, st.data())
@settings(max_examples=60, deadline=None)
def test_a_smaller_trigger_never_looks_less_suspicious(l1: list[float], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(l1) - 1))
    before = mad_anomaly_index(torch.tensor(l1, dtype=torch.float64))
    shrunk = list(l1)
    shrunk[i] = l1[i] / 2
    after = mad_anomaly_index(torch.tensor(shrunk, dtype=torch.float64))
    # the median and MAD may move, but class i only goes further below the median
    assert after[i] >= before[i] - 1e-9 or before[i] == 0


class BandNet(nn.Module):
    """Class c is a bright band of rows 2c, 2c+1. A backdoor: the bottom-right pixel sends *source-class* images,
    and only those, to the target class."""

    def __init__(self, lean: float = 0.0) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(10.0))
        self.lean = lean  # how much the source's clean images lean to the target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x[:, 0].view(len(x), K, 2, SIDE).mean(dim=(2, 3))  # (B, K) band brightness
        backdoor = torch.zeros_like(bands)
        backdoor[:, TARGET] = (40 * x[:, 0, -1, -1] + self.lean) * bands[:, SOURCE]
        return self.gain * bands + backdoor


def _band_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % K
    images = torch.randint(0, 20, (n, 1, SIDE, SIDE), generator=generator, dtype=torch.uint8)
    rows = torch.arange(SIDE)
    band = (rows[None] // 2 == labels[:, None])[:, None, :, None]  # (n, 1, SIDE, 1)
    images = torch.where(band, torch.full_like(images, 200), images)
    images[:, 0, -1, -1] = 0  # the trigger pixel is dark on clean images
    return images, labels


def test_per_source_search_finds_a_backdoor_of_one_source_class() -> None:
    images, labels = _band_images(240)
    model = BandNet()
    assert bool((model(images.float() / 255).argmax(1) == labels).all())
    spec = NeuralCleanseSpec(steps=300, images_per_step=30)
    found = neural_cleanse(model, images, K, spec, labels)
    assert found.flagged == [TARGET] and found.suspected_target == TARGET
    assert found.sources is not None and found.sources[TARGET] == SOURCE
    assert found.l1[TARGET] < 3  # about the one trigger pixel
    sources, masks, _ = found.triggers_for(TARGET)
    assert sorted(s for s in sources if s is not None) == [s for s in range(K) if s != TARGET]
    assert masks.shape == (K - 1, 1, SIDE, SIDE)
    record = found.record()  # every search's source, target and norm, for the audit's per-source evidence
    assert list(zip(record.trial_sources, record.trial_targets, strict=True)) == found.trials
    smallest = min(l1 for (s, t), l1 in zip(found.trials, record.trial_l1, strict=True) if t == TARGET)
    assert smallest == pytest.approx(float(found.l1[TARGET]), rel=1e-5)
    # the paper's search asks one trigger to move every class: here it must also light up the source's band
    every_class = neural_cleanse(model, images, K, NeuralCleanseSpec(steps=300, images_per_step=30, per_source=False))
    assert every_class.l1[TARGET] > 2 * found.l1[TARGET]


def test_per_source_search_needs_labels_of_two_classes() -> None:
    images, _ = _band_images(12)
    with pytest.raises(ConfigError, match="labels"):
        neural_cleanse(BandNet(), images, K, NeuralCleanseSpec(steps=10))
    with pytest.raises(ConfigError, match="two classes"):
        neural_cleanse(BandNet(), images, K, NeuralCleanseSpec(steps=10), torch.zeros(12, dtype=torch.long))


def test_a_source_scan_finds_the_one_source_with_a_short_route_and_where_it_leads() -> None:
    """The single-target backdoor's source leaves its class with the one trigger pixel, to the target; every
    other source needs a band's worth of pixels."""
    from badnets.defenses.neural_cleanse import scan_sources

    images, labels = _band_images(240)
    scan = scan_sources(BandNet(), images, labels, K, NeuralCleanseSpec(steps=300, images_per_step=8))
    assert scan.sources == list(range(K))
    smallest = int(scan.l1.argmin())
    assert scan.sources[smallest] == SOURCE and scan.reached[smallest] == TARGET
    assert float(scan.l1[smallest]) < 3 and float(scan.l1.median()) > 3 * float(scan.l1[smallest])
    assert bool((scan.asr >= 0.99).all())  # every source was moved out of its class


def test_leaning_targets_are_the_classes_a_source_leans_to_most() -> None:
    images, labels = _band_images(240)
    leaning = leaning_targets(BandNet(lean=2.0), images, labels, K, 2)
    assert sorted(leaning) == list(range(K)) and all(len(t) == 2 and s not in t for s, t in leaning.items())
    assert leaning[SOURCE][0] == TARGET  # the backdoor's pull shows on the source's clean images


def test_a_pre_screened_search_still_finds_the_one_source_backdoor() -> None:
    """Two targets per source instead of five: the (source, target) pair is among them; classes no source leans to
    are not searched (NaN norm, index 0, None in the record) and do not enter the outlier test."""
    images, labels = _band_images(240)
    model = BandNet(lean=2.0)
    found = neural_cleanse(
        model, images, K, NeuralCleanseSpec(steps=300, images_per_step=6, targets_per_source=2), labels
    )
    assert len(found.trials) == 2 * K and (SOURCE, TARGET) in found.trials
    assert found.suspected_target == TARGET and found.smallest == TARGET and found.l1[TARGET] < 3
    unsearched = [k for k in range(K) if all(t != k for _, t in found.trials)]
    assert all(math.isnan(found.l1[k]) and found.anomaly_index[k] == 0 for k in unsearched)
    record = found.record()
    assert all(record.l1[k] is None and record.sources is not None and record.sources[k] is None for k in unsearched)
    searched = found.l1[~found.l1.isnan()]
    assert torch.equal(found.anomaly_index[~found.l1.isnan()], mad_anomaly_index(searched))


def test_nan_norms_do_not_count_in_the_outlier_test() -> None:
    l1 = torch.tensor([10.0, 11.0, 9.0, 10.0, 1.0])
    with_gaps = torch.tensor([10.0, math.nan, 11.0, 9.0, math.nan, 10.0, 1.0])
    index = mad_anomaly_index(with_gaps)
    assert torch.equal(index[~with_gaps.isnan()], mad_anomaly_index(l1)) and index[1] == 0 and index[4] == 0
