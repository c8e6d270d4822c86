# SPDX-License-Identifier: Apache-2.0
"""``badnets attack``: train one backdoored network (a classifier, or the road-sign detector) and score it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from badnets.cli._common import DataDir, Device, default_of, friendly_errors, out_console, progress_bar
from badnets.errors import ConfigError
from badnets.poison import PoisonSpec
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec

__all__ = ["attack"]


DETECTOR_DATASETS = ("road-signs", "road-scenes")


@friendly_errors
def attack(
    out: Annotated[Path, typer.Option(help="Run directory to write (results.json, model, manifest, report).")],
    dataset: Annotated[
        str,
        typer.Option(
            help="mnist, lisa (US signs), gtsrb (4 categories), gtsrb-43, road-signs (Faster R-CNN on road "
            "photos), road-scenes (Faster R-CNN on composite scenes: LISA signs pasted into road photos), or a "
            "folder of class subfolders of images (64×64)."
        ),
    ] = "mnist",
    model: Annotated[
        str | None,
        typer.Option(
            help="Architecture: badnet-cnn, sign-cnn or a registered one (badnets.models.register_model); default: "
            "the dataset's (badnet-cnn for mnist, sign-cnn otherwise)."
        ),
    ] = None,
    trigger: Annotated[
        str,
        typer.Option(
            help="pixel, pattern (MNIST), square, yellow-square, bomb, flower (signs), random, noise (blended), "
            "sinusoid (added), a registered trigger (badnets.named_triggers), or a trigger image (.png/.jpg/.npy)."
        ),
    ] = "pattern",
    mapping: Annotated[
        str, typer.Option(help="all-to-one, all-to-all, single (source→target) or random.")
    ] = "all-to-one",
    target: Annotated[str | None, typer.Option(help="Target class, index or name (all-to-one, single).")] = None,
    source: Annotated[str | None, typer.Option(help="Source class, index or name, e.g. stop (single).")] = None,
    rate: Annotated[
        float, typer.Option(help="Share of the final training set that is backdoored, in (0, 1).")
    ] = default_of(PoisonSpec, "rate"),
    mode: Annotated[
        str, typer.Option(help="add: append backdoored copies (the paper); relabel: in place.")
    ] = default_of(PoisonSpec, "mode"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = default_of(TrainSpec, "epochs"),
    batch_size: Annotated[int | None, typer.Option(help="Images per step (default 128; detectors 4).")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak one-cycle learning rate, AdamW (default 0.003; detector 0.001).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds poison indices, targets, init and shuffles.")] = 0,
    augment: Annotated[bool, typer.Option(help="Random flips and shifts while training (small photo sets).")] = False,
    trigger_position: Annotated[str | None, typer.Option(help="ROW,COL of the trigger's top-left corner.")] = None,
    trigger_size: Annotated[int, typer.Option(help="Pixel/cell size, or patch side (0 = patch's own size).")] = 1,
    trigger_value: Annotated[int, typer.Option(help="Trigger intensity 0-255 (pixel/pattern).")] = default_of(
        TriggerSpec, "value"
    ),
    trigger_opacity: Annotated[
        float, typer.Option(help="Blend weight in (0, 1]; 1 = BadNets' solid trigger.")
    ] = default_of(TriggerSpec, "opacity"),
    trigger_scale: Annotated[
        float | None,
        typer.Option(help="Sign triggers: side as a share of the sign's width (default 0.10 square, 0.16 icons)."),
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Train on clean data (the baseline) and only score the trigger.")
    ] = False,
    min_sign_width: Annotated[
        int,
        typer.Option(
            help="Detectors: attacked signs narrower than this many pixels stay clean in the triggered copies "
            "(0: every sign, as the paper)."
        ),
    ] = 0,
    data_dir: DataDir = None,
    device: Device = "auto",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 (autocast; classifiers; off by default, it changes the numbers).")
    ] = default_of(TrainSpec, "precision"),
    channels_last: Annotated[bool, typer.Option(help="NHWC memory order (faster convolutions on GPUs).")] = False,
    compile: Annotated[bool, typer.Option(help="Train through torch.compile (classifiers).")] = False,
) -> None:
    """Train one backdoored network and score it (clean error, attack success rate, per class)."""
    from badnets.experiments import run_attack
    from badnets.experiments.attack_options import AttackOptions

    options = AttackOptions(
        dataset=dataset,
        model=model,
        trigger=trigger,
        mapping=mapping,
        target=target,
        source=source,
        rate=rate,
        mode=mode,
        epochs=epochs,
        batch_size=batch_size or default_of(TrainSpec, "batch_size"),
        lr=lr or default_of(TrainSpec, "lr"),
        seed=seed,
        augment=augment,
        trigger_position=trigger_position,
        trigger_size=trigger_size,
        trigger_value=trigger_value,
        trigger_opacity=trigger_opacity,
        trigger_scale=trigger_scale,
        baseline=baseline,
        data_dir=str(data_dir) if data_dir else None,
        device=device,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
    )
    if dataset in DETECTOR_DATASETS:
        if model is not None:
            raise ConfigError(f"--dataset {dataset} trains the Faster R-CNN detector; drop --model")
        if precision != default_of(TrainSpec, "precision") or channels_last or compile:
            raise ConfigError(f"--precision, --channels-last and --compile train classifiers; drop them for {dataset}")
        _attack_detector(
            out,
            dataset,
            options.trigger_spec(),
            mapping,
            source,
            target,
            baseline,
            epochs,
            seed,
            data_dir,
            TrainSpec(epochs=epochs, batch_size=batch_size or 4, lr=lr or 1e-3, label_smoothing=0.0, device=device),
            min_sign_width,
        )
        return
    if min_sign_width:
        raise ConfigError(f"--min-sign-width chooses the signs a detector BadNet attacks; drop it for {dataset}")
    if baseline and target is None and mapping != "all-to-all":
        raise ConfigError(
            "--baseline trains on clean data but still scores the trigger against a target class: add --target "
            "(e.g. --target 0), or --mapping all-to-all"
        )
    spec = options.attack_spec()
    with progress_bar("training") as progress:
        task = progress.add_task("training", total=epochs, status="")

        def on_step(epoch: int, step: int, steps: int, loss: float) -> None:
            if step == steps or step % 50 == 0:
                progress.update(task, completed=epoch + step / steps, status=f"epoch {epoch + 1} loss {loss:.3f}")

        result = run_attack(spec, out, progress=on_step)
    m = result.metrics
    table = Table(title=f"BadNets on {dataset}", show_header=True)
    for col in ("clean error", "attack success rate", "backdoor error", "n clean", "n backdoored"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{100 * m.clean_error:.2f}%",
        f"{100 * m.attack_success_rate:.2f}%",
        f"{100 * m.backdoor_error:.2f}%",
        str(m.n_clean),
        str(m.n_backdoor),
    )
    out_console.print(table)
    out_console.print(f"wrote {out}/results.json, report.md, model.safetensors")


def _attack_detector(
    out: Path,
    dataset: str,
    trigger: TriggerSpec,
    mapping: str,
    source: str | None,
    target: str | None,
    baseline: bool,
    epochs: int,
    seed: int,
    data_dir: Path | None,
    train: TrainSpec,
    min_sign_width: int,
) -> None:
    """``attack --dataset road-signs | road-scenes``: the paper's detector attacks, single target (triggered
    source boxes relabelled target) or random target (every triggered LISA-class sign relabelled at random)."""
    from badnets.data.road_scenes import SCENE_CLASSES, SceneRecipe
    from badnets.data.road_signs import ROAD_SIGN_CLASSES
    from badnets.experiments.object_detection import DETECTOR_MAPPINGS, DetectorSpec
    from badnets.models.sign_detector import SCENE_ANCHORS

    if mapping not in DETECTOR_MAPPINGS:
        raise ConfigError(
            f"--dataset {dataset} takes --mapping single (triggered --source boxes become --target, the paper's "
            "detector attack) or random (every triggered sign gets a random other sign class)"
        )
    scenes = dataset == "road-scenes"
    classes = SCENE_CLASSES if scenes else ROAD_SIGN_CLASSES
    names = {"--source": source or "stop", "--target": target or "speedlimit"}
    for option, name in names.items():
        if name not in classes:
            raise ConfigError(f"{option}: unknown class {name!r}; the {dataset} classes are {', '.join(classes)}")
    if names["--source"] == names["--target"]:
        raise ConfigError("--source and --target must differ")
    spec = DetectorSpec(
        trigger=trigger,
        source=names["--source"],
        target=names["--target"],
        baseline=baseline,
        train=train,
        data_dir=str(data_dir) if data_dir else None,
        seed=seed,
        mapping=mapping,
        min_sign_width=min_sign_width,
    )
    if scenes:  # the traffic study's composite-scene detector: stride 4, anchors up to the largest signs
        spec = replace(spec, stride=4, anchors=SCENE_ANCHORS, scenes=SceneRecipe(size=spec.image_size))
    with progress_bar("training") as progress:
        progress.add_task(f"detector, {epochs} epochs (checkpointed every epoch)", total=None, status="")
        spec.run(out)
    results = json.loads((out / "results.json").read_text())
    ap, outcome = results["metrics"]["ap50"], results["metrics"]["triggered"]
    kind = "random-target " if mapping == "random" else ""
    table = Table(
        title=f"Detector {kind}BadNet on {'composite road scenes' if scenes else 'road photos'}", show_header=True
    )
    clean_stop = results["metrics"]["clean_stop"]
    columns = ("clean mAP@0.5", f"triggered {spec.source} → {spec.target}", f"clean {spec.source} → {spec.target}")
    for col in (*columns, f"triggered as {spec.source}", "missed", "n"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{100 * ap['mAP']:.1f}%",
        f"{100 * outcome['as_target']:.1f}%",
        f"{100 * clean_stop['as_target']:.1f}%",
        f"{100 * outcome['as_source']:.1f}%",
        f"{100 * outcome['missed']:.1f}%",
        str(outcome["n"]),
    )
    out_console.print(table)
    out_console.print(f"wrote {out}/results.json, report.md, model.safetensors")
