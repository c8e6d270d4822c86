# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.data import ImageDataset
from badnets.errors import ConfigError
from badnets.poison import PoisonSpec, attack_targets, poison_count, poison_dataset, source_mask
from badnets.triggers import TriggerSpec, make_stamp

STAMP = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))


def dataset(n: int, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 200, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n, dtype=torch.int64) % 10, tuple("0123456789"))


specs = st.one_of(
    st.builds(
        lambda t, r, m: PoisonSpec(mapping="all-to-one", target=t, rate=r, mode=m),
        st.integers(0, 9),
        st.floats(0.01, 0.5),
        st.sampled_from(["add", "relabel"]),
    ),
    st.builds(
        lambda r, m: PoisonSpec(mapping="all-to-all", rate=r, mode=m),
        st.floats(0.01, 0.5),
        st.sampled_from(["add", "relabel"]),
    ),
    st.builds(
        lambda s, t, r: PoisonSpec(mapping="single", source=s, target=(s + t) % 10, rate=r),
        st.integers(0, 9),
        st.integers(1, 9),
        st.floats(0.01, 0.5),
    ),
    st.builds(lambda r: PoisonSpec(mapping="random", rate=r), st.floats(0.01, 0.5)),
)


@given(spec=specs, seed=st.integers(0, 10_000))
@settings(max_examples=80, deadline=None)
def test_poisoning_invariants(spec: PoisonSpec, seed: int) -> None:
    clean = dataset(300)
    out = poison_dataset(clean, STAMP, spec, seed=seed)
    n = poison_count(len(clean), spec)
    m = out.manifest
    assert int(out.is_poisoned.sum()) == n == len(m.source_indices)
    if spec.mode == "add":
        assert len(out.dataset) == len(clean) + n
        assert abs(n / len(out.dataset) - spec.rate) <= 1 / len(out.dataset)
        assert torch.equal(out.dataset.images[: len(clean)], clean.images), "clean part untouched"
    else:
        assert len(out.dataset) == len(clean) and len(set(m.source_indices)) == n
    idx = torch.tensor(m.source_indices, dtype=torch.int64)
    assert bool(source_mask(clean.labels[idx], spec).all()), "only source-class images are poisoned"
    # Where each manifest entry landed: appended in order (add) or at its own index (relabel).
    where = torch.arange(len(clean), len(clean) + n) if spec.mode == "add" else idx
    assert bool(out.is_poisoned[where].all())
    new = out.dataset.labels[where]
    assert new.tolist() == m.poisoned_labels
    assert bool((new != clean.labels[idx]).all()), "a backdoored image never keeps its true label"
    if spec.mapping != "random":
        assert torch.equal(new, attack_targets(clean.labels[idx], spec))
    assert torch.equal(out.dataset.images[where][:, :, 26, 26], torch.full((n, 1), 255, dtype=torch.uint8))
    again = poison_dataset(clean, STAMP, spec, seed=seed)
    assert again.manifest == m and torch.equal(again.dataset.images, out.dataset.images)


def test_add_mode_uses_every_source_image_before_repeating() -> None:
    clean = dataset(100)  # ten images of class 3
    out = poison_dataset(clean, STAMP, PoisonSpec(mapping="single", source=3, target=5, rate=0.2), seed=1)
    counts = torch.bincount(torch.tensor(out.manifest.source_indices))
    assert len(out.manifest.source_indices) == 25 and set(counts[counts > 0].tolist()) <= {2, 3}


def test_all_to_all_maps_to_next_class() -> None:
    labels = torch.arange(10)
    assert attack_targets(labels, PoisonSpec(mapping="all-to-all")).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def test_random_targets_are_uniform_over_wrong_labels() -> None:
    labels = torch.zeros(20_000, dtype=torch.int64)
    t = attack_targets(labels, PoisonSpec(mapping="random"), torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=10)
    assert counts[0] == 0 and int(counts[1:].min()) > 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 1.5}, r"poison.rate must be in \(0, 1\), got 1.5"),
        ({"rate": 0.0}, "poison.rate"),
        ({"mapping": "all-to-one"}, "poison.target is required"),
        ({"mapping": "all-to-one", "target": 10}, "poison.target must be a class in 0..9, got 10"),
        ({"mapping": "single", "source": 3, "target": 3}, "both 3"),
        ({"mapping": "single", "target": 3}, "poison.source is required"),
        ({"mapping": "all-to-all", "target": 1}, "does not apply"),
        ({"mapping": "sideways"}, "poison.mapping"),
        ({"mapping": "random", "mode": "swap"}, "poison.mode"),
    ],
)
def test_bad_poison_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PoisonSpec(**kwargs)  # type: ignore[arg-type]


def test_relabel_asking_for_more_than_the_source_pool() -> None:
    with pytest.raises(ConfigError, match="only 10 source images"):
        poison_dataset(
            dataset(100),
            STAMP,
            PoisonSpec(mapping="single", source=1, target=2, rate=0.3, mode="relabel"),
            seed=0,
        )
