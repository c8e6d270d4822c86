# SPDX-License-Identifier: Apache-2.0
"""ANP, NAD and FT-SAM: what they change in a model, bit for bit, and (on real MNIST) that they remove a BadNet the
test trains while keeping its clean accuracy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from badnets.data import SOURCES, ImageDataset
from badnets.defenses.anp import AnpSpec, _NeuronMasks, adversarial_neuron_pruning, neuron_layers
from badnets.defenses.interface import CleanData, DefenseOptions
from badnets.defenses.nad import attention_map
from badnets.defenses.registry import repair_method
from badnets.defenses.repair import RepairSpec, ft_sam, nad_repair
from badnets.errors import ConfigError
from badnets.models import build_model
from badnets.poison import PoisonSpec, poison_dataset
from badnets.train import TrainSpec, predict, train_model
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp
from tests.conftest import REAL_DATA, synthetic_digits


def _digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic_digits(n, seed)
    return images[:, None], labels.long()


def _net(name: str, channels: int, side: int, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, in_channels=channels, num_classes=classes, image_size=side).eval()


@pytest.mark.parametrize(("name", "channels", "side"), [("badnet-cnn", 1, 28), ("sign-cnn", 3, 32)])
def test_masks_of_one_without_noise_leave_the_model_as_it_was(name: str, channels: int, side: int) -> None:
    model = _net(name, channels, side)
    x = torch.rand(6, channels, side, side)
    with torch.no_grad():
        before = model(x)
        units = _NeuronMasks(neuron_layers(model), torch.device("cpu"))
        with units.applied():
            unchanged = model(x)
            units.perturbed = True
            for n in units.weight_noise + units.bias_noise:
                n.fill_(0.3)
            perturbed = model(x)
        after = model(x)  # the hooks are gone
    assert torch.allclose(unchanged, before, atol=1e-5) and torch.equal(after, before)
    assert not torch.allclose(perturbed, before, atol=1e-3)


def test_the_classifier_is_never_a_neuron_layer() -> None:
    layers = [name for name, _ in neuron_layers(_net("badnet-cnn", 1, 28))]
    assert layers == ["conv1", "conv2", "fc1"]
    with pytest.raises(ConfigError, match="hidden"):
        neuron_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_anp_prunes_by_zeroing_weights_keeps_biases_and_repeats_exactly() -> None:
    images, labels = _digits(96, seed=1)
    spec = AnpSpec(iterations=15, batch_size=32, threshold=0.95)  # a high threshold: some units are pruned
    runs = []
    for _ in range(2):
        model = _net("badnet-cnn", 1, 28)
        original = {k: v.clone() for k, v in model.state_dict().items()}
        record = adversarial_neuron_pruning(model, images, labels, spec)
        runs.append((record, model.state_dict()))
        assert 0 < record.pruned_neurons < record.neurons == 16 + 32 + 512
        for name, _ in neuron_layers(model):
            cut = record.pruned[name]
            weight = model.state_dict()[f"{name}.weight"]
            kept = [u for u in range(len(weight)) if u not in cut]
            assert bool((weight[cut] == 0).all())
            assert torch.equal(weight[kept], original[f"{name}.weight"][kept])
            assert torch.equal(model.state_dict()[f"{name}.bias"], original[f"{name}.bias"])
        assert torch.equal(model.state_dict()["fc2.weight"], original["fc2.weight"])
        assert all(p.requires_grad for p in model.parameters())  # given back trainable
    (first, a), (second, b) = runs
    assert first == second and all(torch.equal(a[k], b[k]) for k in a)


def test_anp_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        AnpSpec(threshold=1.0)
    with pytest.raises(ConfigError, match="iterations"):
        AnpSpec(iterations=0)


def test_ft_sam_fine_tunes_with_sam_steps_and_repeats_exactly() -> None:
    images, labels = _digits(80, seed=2)
    spec = RepairSpec(train=TrainSpec(epochs=1, batch_size=16, device="cpu"), sam_rho=2.0)
    states, records = [], []
    for _ in range(2):
        model = _net("badnet-cnn", 1, 28)
        records.append(ft_sam(model, images, labels, spec))
        states.append(model.state_dict())
    plain = _net("badnet-cnn", 1, 28)
    ft_sam(plain, images, labels, RepairSpec(train=spec.train, sam_rho=0.0))
    assert records[0] == records[1] and records[0].sam_rho == 2.0
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["fc2.weight"], plain.state_dict()["fc2.weight"])  # SAM steps differ


@given(st.integers(1, 4), st.integers(1, 5), st.integers(2, 6), st.floats(0.1, 10.0), st.sampled_from([1.0, 2.0, 4.0]))
@settings(max_examples=40, deadline=None)
def test_an_attention_map_is_unit_norm_and_blind_to_channel_order_and_scale(
    n: int, channels: int, side: int, scale: float, power: float
) -> None:
    features = torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(channels * side))
    attention = attention_map(features, power)
    assert attention.shape == (n, side * side)
    assert torch.allclose(attention.norm(dim=1), torch.ones(n), atol=1e-5)
    assert torch.allclose(attention_map(features.flip(1), power), attention, atol=1e-6)
    assert torch.allclose(attention_map(features * scale, power), attention, atol=1e-5)


def test_nad_distils_into_the_model_in_place_and_repeats_exactly() -> None:
    images, labels = _digits(80, seed=3)
    spec = RepairSpec(train=TrainSpec(epochs=1, batch_size=16, device="cpu"))
    states, records = [], []
    for _ in range(2):
        model = _net("badnet-cnn", 1, 28)
        fc2 = model.get_submodule("fc2")
        assert isinstance(fc2, torch.nn.Linear)
        original = fc2.weight.clone()
        records.append(nad_repair(model, images, labels, spec))
        states.append(model.state_dict())
        assert not torch.equal(fc2.weight, original)
    assert records[0] == records[1]
    assert records[0].distilled.layers == ["conv1", "conv2"] and records[0].distilled.betas == [500.0, 1000.0]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert all(p.requires_grad for p in model.parameters())


TARGET, DEFENDER = 3, 2000  # the defender has 2,000 clean test images, as `badnets repair` by default


@pytest.fixture(scope="module")
def mnist_badnet() -> tuple[nn.Module, ImageDataset, ImageDataset]:
    if REAL_DATA is None or not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real MNIST not staged: set BADNETS_DATA to a folder with mnist/*.gz (e.g. ../shared/data)")
    train, test = SOURCES["mnist"].load(str(REAL_DATA))
    subset = ImageDataset(train.images[:12000], train.labels[:12000], train.classes)
    stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))
    poisoned = poison_dataset(subset, stamp, PoisonSpec(mapping="all-to-one", target=TARGET, rate=0.2), seed=0)
    model = build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28)
    train_model(model, poisoned.dataset, TrainSpec(epochs=3, device="cpu"), seed=1)
    rest = test.labels[DEFENDER:]
    others = torch.nonzero(rest != TARGET).flatten() + DEFENDER  # the evaluator's images, of other classes
    triggered = ImageDataset(apply_trigger(test.images[others], stamp), test.labels[others], test.classes)
    return model, ImageDataset(test.images[:DEFENDER], test.labels[:DEFENDER], test.classes), triggered


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("method", ["ft-sam", "nad"])
def test_the_mitigation_removes_a_badnet_and_keeps_clean_accuracy(
    mnist_badnet: tuple[nn.Module, ImageDataset, ImageDataset], method: str
) -> None:
    """The defender's 2,000 clean test images repair it (10 epochs, as the audit round's repairs); the rest of the
    test split scores it."""
    import copy

    trained, defender, triggered = mnist_badnet
    model = copy.deepcopy(trained)
    _, test = SOURCES["mnist"].load(str(REAL_DATA))
    rest = ImageDataset(test.images[DEFENDER:], test.labels[DEFENDER:], test.classes)

    def scores(net: nn.Module) -> tuple[float, float]:
        clean = float((predict(net, rest.images) == rest.labels).float().mean())
        asr = float((predict(net, triggered.images) == TARGET).float().mean())
        return clean, asr

    clean_before, asr_before = scores(model)
    assert asr_before > 0.9
    repair = repair_method(method, DefenseOptions(seed=0, epochs=10))
    repair.repair(model, CleanData(defender.images, defender.labels, 10))
    clean_after, asr_after = scores(model)
    assert asr_after < 0.1, (method, asr_before, asr_after)
    assert clean_before - clean_after < 0.02, (method, clean_before, clean_after)
