# SPDX-License-Identifier: Apache-2.0
"""The benchmark's baselines must compute what ours computes, or the ratios compare different work."""

from __future__ import annotations

from pathlib import Path

import torch

from badnets.data import ImageDataset
from badnets.triggers import TriggerSpec, apply_trigger, make_stamp
from benchmarks.run import PILDataset, pil_poison
from tests.conftest import synthetic_digits


def test_pil_reference_poisons_exactly_like_apply_trigger() -> None:
    images, _ = synthetic_digits(20, 0)
    ours = apply_trigger(images.unsqueeze(1), make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28)))[:, 0]
    assert torch.equal(torch.from_numpy(pil_poison(images.numpy())), ours)


def test_pil_dataset_yields_what_the_trainer_sees() -> None:
    images, labels = synthetic_digits(5, 0)
    data = ImageDataset(images.unsqueeze(1), labels.to(torch.int64), tuple("0123456789"))
    x, y = PILDataset(data, {4: 7})[3]
    assert PILDataset(data, {4: 7})[4][1] == 7
    assert torch.allclose(x, images[3:4].float() / 255) and y == 3


def test_art_crosscheck_runs_our_side_on_a_finished_run(tiny_mnist: Path, tmp_path: Path) -> None:
    """ART is a `[bench]` extra CI does not install; our side of the cross-check runs here, so an API it calls
    cannot vanish unseen (it once called a StripGuard method the defense interface had renamed)."""
    from typer.testing import CliRunner

    from badnets.cli import app
    from benchmarks.art_crosscheck import load_case, our_strip_flags, our_training_data_flags, strip_inputs

    run = tmp_path / "run"
    args = ["attack", "--out", str(run), "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--target", "7"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    case = load_case(run, clean_images=100)
    flags, both_seconds = our_training_data_flags(case)
    assert set(flags) == {"activation_clustering", "spectral_signatures"} and both_seconds > 0
    assert all(f.shape == case.truth.shape and f.dtype == bool for f, _ in flags.values())
    clean_x, triggered_x = strip_inputs(case, n=50)
    assert len(clean_x) == len(triggered_x) > 0 and not torch.equal(clean_x, triggered_x)
    strip_flags, seconds = our_strip_flags(case, clean_x, triggered_x)
    assert strip_flags.shape == (2 * len(clean_x),) and strip_flags.dtype == bool and seconds > 0


def test_the_scaling_projection_schedules_like_the_pool() -> None:
    """FIFO list scheduling: each job to the first free slot; one slot runs them back to back."""
    from benchmarks.scaling import simulate

    assert simulate([3, 1, 1, 1], 1, 1) == 6
    assert simulate([3, 1, 1, 1], 1, 2) == 3  # 3 | 1+1+1
    assert simulate([1, 1, 1, 3], 2, 1) == 4  # 1+1 | 1+3
    assert simulate([5.0] * 8, 4, 2) == 5.0


def test_the_scaling_time_model_separates_fixed_and_per_epoch_cost() -> None:
    """Cells timed at two epoch counts give back each cell's fixed cost and per-image-epoch cost; a 1-node
    projection whose cells all share one model is the schedule of the exact job times."""
    from badnets.sweep import SweepResults, SweepRow
    from benchmarks.scaling import JobTime, epoch_images, fit_job_times, projected_hours, simulate

    truth = {"a": JobTime(4.0, 2e-4), "b": JobTime(9.0, 3e-4)}
    rates = {"a": 0.05, "b": 0.1}

    def timed(epochs: int) -> SweepResults:
        rows = [
            SweepRow(
                cell, {"rate": rates[cell]}, 0.99, 0.01, 1.0, 0.0, 100, t.seconds(epoch_images(rates[cell]) * epochs)
            )
            for cell, t in truth.items()
        ]
        return SweepResults(["rate"], rows, {}, {}, "local")

    fitted = fit_job_times(timed(1), timed(3), 1, 3)
    for got, want in zip(fitted, truth.values(), strict=True):
        assert abs(got.fixed - want.fixed) < 1e-6 and abs(got.per_image_epoch - want.per_image_epoch) < 1e-12
    work = [6e5, 3e5, 6e5]
    one = projected_hours([truth["a"]], work, nodes=1)
    assert abs(one["hours_median"] * 3600 - simulate([truth["a"].seconds(w) for w in work], 1, 2)) < 1e-6


def test_the_gpu_benchmarks_run_on_the_cpu(tiny_mnist: Path) -> None:
    """The GPU-only parts of benchmarks/run.py run here on the CPU, so a lent GPU's minutes are not spent on a
    crash."""
    from badnets.data import load_mnist
    from benchmarks.run import gpu_variants, models_per_hour

    train, _ = load_mnist(tiny_mnist)
    variants = gpu_variants(train, "cpu", str(tiny_mnist), 2, ("bf16", "channels_last"))
    assert set(variants) == {"fp32", "bf16", "channels_last"}
    assert all(0 <= v["clean_accuracy"] <= 1 and v["speed_vs_fp32"] > 0 for v in variants.values())  # type: ignore[index]
    assert set(models_per_hour("cpu", str(tiny_mnist), 100, (1,))) == {"1"}
