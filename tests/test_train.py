# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.data import ImageDataset
from badnets.errors import ConfigError
from badnets.models import BadNetCNN, build_model
from badnets.train import TrainSpec, flip_and_shift, predict, resolve_device, train_model
from tests.conftest import synthetic_digits

SPEC = TrainSpec(epochs=3, batch_size=32, lr=3e-3, device="cpu")


def tiny(n: int = 300) -> ImageDataset:
    images, labels = synthetic_digits(n, 0)
    return ImageDataset(images.unsqueeze(1), labels.to(torch.int64), tuple("0123456789"))


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def test_paper_cnn_shapes() -> None:
    model = BadNetCNN()
    assert [tuple(p.shape) for p in model.parameters()] == [
        (16, 1, 5, 5),
        (16,),
        (32, 16, 5, 5),
        (32,),
        (512, 512),
        (512,),
        (10, 512),
        (10,),
    ]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_training_learns_and_same_seed_gives_same_weights() -> None:
    data = tiny()
    a = train_model(BadNetCNN(), data, SPEC, seed=5)
    b = train_model(BadNetCNN(), data, SPEC, seed=5)
    c = train_model(BadNetCNN(), data, SPEC, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(c), strict=True))
    assert (predict(a, data.images) == data.labels).float().mean() > 0.9


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tiny()
    reference = train_model(BadNetCNN(), data, SPEC, seed=1)

    def die_in_epoch_two(epoch: int, step: int, steps: int, loss: float) -> None:
        if epoch == 2:
            raise Interrupt

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Interrupt):
        train_model(BadNetCNN(), data, SPEC, seed=1, checkpoint=ckpt, progress=die_in_epoch_two)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = train_model(BadNetCNN(), data, SPEC, seed=1, checkpoint=ckpt)
    assert all(torch.equal(x, y) for x, y in zip(weights(reference), weights(resumed), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "train.epochs"),
        ({"batch_size": 0}, "train.batch_size"),
        ({"lr": -1.0}, "train.lr"),
        ({"device": "tpu"}, "device must be auto"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"precision": "fp16"}, "train.precision must be one of fp32, bf16"),
        ({"sam_rho": -0.1}, "train.sam_rho"),
    ],
)
def test_bad_train_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainSpec(**kwargs)  # type: ignore[arg-type]


def test_device_auto_falls_back_to_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="none is available"):
            resolve_device("cuda")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), side=st.integers(2, 12), seed=st.integers(0, 2**16), flips=st.booleans())
def test_flip_and_shift_gives_a_flipped_shifted_copy_of_each_image(n: int, side: int, seed: int, flips: bool) -> None:
    # side >= 2 and a non-square image: a flip or a shift of random pixels is (almost surely) another image, so
    # with flips off only the shifted copies may match
    images = torch.rand(n, 2, side, side + 1, generator=torch.Generator().manual_seed(seed))
    out = flip_and_shift(images, torch.Generator().manual_seed(seed), flips=flips)
    again = flip_and_shift(images, torch.Generator().manual_seed(seed), flips=flips)
    assert out.shape == images.shape and torch.equal(out, again)
    ph, pw = max(1, side // 8), max(1, (side + 1) // 8)
    for img, got in zip(images, out, strict=True):
        candidates = []
        for version in (img, img.flip(-1)) if flips else (img,):
            padded = torch.nn.functional.pad(version[None], (pw, pw, ph, ph), mode="replicate")[0]
            for dy in range(2 * ph + 1):
                for dx in range(2 * pw + 1):
                    candidates.append(padded[:, dy : dy + side, dx : dx + side + 1])
        assert any(torch.equal(got, c) for c in candidates)


def test_dropout_models_train_the_same_whatever_ran_before() -> None:
    """sign-cnn has dropout, which draws from the global RNG: training must not depend on its state, nor move it."""
    from badnets.data import ImageDataset
    from badnets.models import build_model

    generator = torch.Generator().manual_seed(0)
    data = ImageDataset(
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, 4, (64,), generator=generator),
        ("a", "b", "c", "d"),
    )
    weights = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = build_model("sign-cnn", in_channels=3, num_classes=4, image_size=32)
        before = torch.random.get_rng_state()
        train_model(model, data, TrainSpec(epochs=2, batch_size=16, device="cpu"), seed=3)
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is left alone
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_cpu_thread_count_of_the_caller_does_not_change_the_weights() -> None:
    # A study trains in one-thread worker processes, `badnets attack` in the caller's process: the same seed must
    # give the same model either way (DESIGN: same seed, same metrics, whichever worker ran it).
    before = torch.get_num_threads()
    trained = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            trained.append(weights(train_model(BadNetCNN(), tiny(), SPEC, seed=3)))
            assert torch.get_num_threads() == threads, "training must give the caller its thread count back"
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))


def test_the_sharpness_aware_gradient_is_the_gradient_at_the_adaptive_ascent_point() -> None:
    """ASAM with |w|: the gradient replaces g by ∇L(w + ρ·w²⊙g / ‖|w|⊙g‖) and leaves the weights at w."""
    from badnets.train import _sharpness_aware_gradient

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    batch, labels = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    loss_fn = torch.nn.CrossEntropyLoss()
    rho = 0.7
    before = weights(model)
    loss_fn(model(batch), labels).backward()
    g = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    norm = torch.stack([(p.detach().abs() * gi).square().sum() for p, gi in zip(model.parameters(), g, strict=True)])
    norm = norm.sum().sqrt()
    shifted = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for q, p, gi in zip(shifted.parameters(), model.parameters(), g, strict=True):
            q.copy_(p + rho * p.square() * gi / norm)
    loss_fn(shifted(batch), labels).backward()
    _sharpness_aware_gradient(model, rho, lambda: loss_fn(model(batch), labels))
    assert all(torch.equal(a, b) for a, b in zip(weights(model), before, strict=True)), "weights back at w"
    for p, q in zip(model.parameters(), shifted.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)  # type: ignore[arg-type]
    assert not torch.allclose(model[1].weight.grad, g[0])  # type: ignore[arg-type]


def test_sharpness_aware_training_learns_and_repeats() -> None:
    data = tiny()
    spec = TrainSpec(epochs=3, batch_size=32, lr=3e-3, device="cpu", sam_rho=0.5)
    a, b = (train_model(BadNetCNN(), data, spec, seed=5) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))
    assert (predict(a, data.images) == data.labels).float().mean() > 0.9
    plain = train_model(BadNetCNN(), data, SPEC, seed=5)
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(plain), strict=True))


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"channels_last": True}])
def test_the_gpu_options_train_on_the_cpu_too(options: dict[str, object]) -> None:
    """bf16 autocast and channels-last run the same code path on the CPU as on CUDA (where they pay off), learn,
    and stay repeatable; channels-last reorders memory only, so it lands within rounding of the default."""
    data = tiny()
    spec = TrainSpec(epochs=3, batch_size=32, lr=3e-3, device="cpu", **options)  # type: ignore[arg-type]
    a, b = (train_model(BadNetCNN(), data, spec, seed=5) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))
    assert (predict(a, data.images) == data.labels).float().mean() > 0.9
    if options.get("channels_last"):
        assert isinstance(a, BadNetCNN) and a.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        default = train_model(BadNetCNN(), data, SPEC, seed=5)
        assert torch.equal(predict(a, data.images), predict(default, data.images))


COMPILED_VS_EAGER = """
import torch
from badnets.models import BadNetCNN, build_model
from badnets.train import TrainSpec, predict, train_model
from tests.test_train import SPEC, tiny

data = tiny()
compiled = train_model(BadNetCNN(), data, TrainSpec(epochs=3, batch_size=32, device="cpu", compile=True), seed=5)
eager = train_model(BadNetCNN(), data, SPEC, seed=5)
print(torch.equal(predict(compiled, data.images), predict(eager, data.images)))
"""


@pytest.mark.slow
def test_compiled_training_learns_what_eager_learns() -> None:
    """In a fresh interpreter: Inductor imports setuptools, whose distutils shim fails once another test's import
    has loaded the standard library's distutils into this process."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", COMPILED_VS_EAGER], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_a_penalty_joins_every_steps_loss_after_the_forward_pass() -> None:
    """A penalty of zero changes nothing; one that pulls the first layer's bias up moves it, and sees the
    batch the forward pass just saw."""
    images, labels = synthetic_digits(64, seed=4)
    data = ImageDataset(images[:, None], labels.long(), tuple("0123456789"))
    spec = TrainSpec(epochs=1, batch_size=16, device="cpu")
    seen: list[int] = []

    def zero(batch: torch.Tensor) -> torch.Tensor:
        seen.append(len(batch))
        return torch.zeros(())

    plain = train_model(build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28), data, spec, seed=0)
    zeroed = build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28)
    train_model(zeroed, data, spec, seed=0, penalty=zero)
    assert seen == [16] * 4
    assert all(
        torch.equal(a, b) for a, b in zip(plain.state_dict().values(), zeroed.state_dict().values(), strict=True)
    )
    pulled = build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28)
    bias = pulled.get_parameter("conv1.bias")
    train_model(pulled, data, spec, seed=0, penalty=lambda _batch: -bias.sum())
    assert float(bias.sum()) > float(plain.get_parameter("conv1.bias").sum()) + 0.01
