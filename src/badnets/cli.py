# SPDX-License-Identifier: Apache-2.0
"""The ``badnets`` command: parses options, builds specs, calls one library function, prints the result.

Every ``BadnetsError`` becomes one line on stderr and its exit code (2 for bad input). The supply-chain
commands (export, load, keygen, sign, verify, scan) live in ``cli_supply``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from badnets._cli_common import app, err_console, friendly_errors, out_console, reproduce_app
from badnets.errors import ConfigError
from badnets.experiments._study import StudyRecipe, StudySummary
from badnets.poison import PoisonSpec
from badnets.studies.mnist import MnistStudySpec
from badnets.studies.traffic import TrafficStudySpec
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec


@contextmanager
def _progress(description: str) -> Iterator[Progress]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False, disable=not err_console.is_terminal) as progress:
        yield progress


def _default(spec: Any, name: str) -> Any:
    """A spec field's default, so the CLI never restates one."""
    return spec.__dataclass_fields__[name].default


def _parse_position(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--trigger-position must be ROW,COL (e.g. 24,24), got {text!r}") from None
    return (row, col)


DataDir = Annotated[
    Path | None,
    typer.Option(help="Data folder; default $BADNETS_DATA, else ~/.cache/badnets.", show_default=False),
]
Device = Annotated[str, typer.Option(help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.")]
StudyOut = Annotated[Path, typer.Option(help="Output directory (re-run the same command to resume).")]
Seeds = Annotated[int | None, typer.Option(help="Seeds per configuration (default 3; quick 1).")]
Workers = Annotated[int, typer.Option(help="Models trained in parallel (CPU: one thread each).")]
AllowDirty = Annotated[
    bool,
    typer.Option(help="Run from a source tree with uncommitted changes (recorded; results then name no clean commit)."),
]
WORKERS = _default(StudyRecipe, "workers")


@app.command()
@friendly_errors
def attack(
    out: Annotated[Path, typer.Option(help="Run directory to write (results.json, model, manifest, report).")],
    dataset: Annotated[
        str,
        typer.Option(
            help="mnist, lisa (US signs), gtsrb (4 categories), gtsrb-43, road-signs (Faster R-CNN on road "
            "photos), or a folder of class subfolders of images (64×64)."
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
            help="pixel, pattern (MNIST), yellow-square, bomb, flower (signs), a registered trigger "
            "(badnets.named_triggers), or a trigger image (.png/.jpg/.npy)."
        ),
    ] = "pattern",
    mapping: Annotated[
        str, typer.Option(help="all-to-one, all-to-all, single (source→target) or random.")
    ] = "all-to-one",
    target: Annotated[str | None, typer.Option(help="Target class, index or name (all-to-one, single).")] = None,
    source: Annotated[str | None, typer.Option(help="Source class, index or name, e.g. stop (single).")] = None,
    rate: Annotated[
        float, typer.Option(help="Share of the final training set that is backdoored, in (0, 1).")
    ] = _default(PoisonSpec, "rate"),
    mode: Annotated[str, typer.Option(help="add: append backdoored copies (the paper); relabel: in place.")] = _default(
        PoisonSpec, "mode"
    ),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _default(TrainSpec, "epochs"),
    batch_size: Annotated[
        int | None, typer.Option(help="Images per step (default 128; road-signs detector 4).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak one-cycle learning rate, AdamW (default 0.003; detector 0.001).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds poison indices, targets, init and shuffles.")] = 0,
    augment: Annotated[bool, typer.Option(help="Random flips and shifts while training (small photo sets).")] = False,
    trigger_position: Annotated[str | None, typer.Option(help="ROW,COL of the trigger's top-left corner.")] = None,
    trigger_size: Annotated[int, typer.Option(help="Pixel/cell size, or patch side (0 = patch's own size).")] = 1,
    trigger_value: Annotated[int, typer.Option(help="Trigger intensity 0-255 (pixel/pattern).")] = _default(
        TriggerSpec, "value"
    ),
    trigger_opacity: Annotated[
        float, typer.Option(help="Blend weight in (0, 1]; 1 = BadNets' solid trigger.")
    ] = _default(TriggerSpec, "opacity"),
    trigger_scale: Annotated[
        float | None,
        typer.Option(help="Sign triggers: side as a share of the sign's width (default 0.10 square, 0.16 icons)."),
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Train on clean data (the baseline) and only score the trigger.")
    ] = False,
    data_dir: DataDir = None,
    device: Device = "auto",
) -> None:
    """Train one backdoored network and score it (clean error, attack success rate, per class)."""
    from badnets.data import dataset_source
    from badnets.experiments import AttackSpec, run_attack
    from badnets.named_triggers import TriggerOptions, build_trigger
    from badnets.sign_triggers import SIGN_TRIGGERS

    if trigger_scale is not None and trigger not in SIGN_TRIGGERS:
        raise ConfigError("--trigger-scale sizes the sign triggers (yellow-square, bomb, flower); use --trigger-size")
    options = TriggerOptions(
        data_dir=str(data_dir) if data_dir else None,
        position=_parse_position(trigger_position),
        size=trigger_size,
        value=trigger_value,
        opacity=trigger_opacity,
        scale=trigger_scale,
    )
    trig = build_trigger(trigger, options)
    if dataset == "road-signs":
        if model is not None:
            raise ConfigError("--dataset road-signs trains the Faster R-CNN detector; drop --model")
        _attack_detector(
            out,
            trig,
            mapping,
            source,
            target,
            baseline,
            epochs,
            seed,
            data_dir,
            TrainSpec(epochs=epochs, batch_size=batch_size or 4, lr=lr or 1e-3, label_smoothing=0.0, device=device),
        )
        return
    classes = dataset_source(dataset)
    train = TrainSpec(epochs=epochs, batch_size=batch_size or 128, lr=lr or 3e-3, device=device, augment=augment)
    spec = AttackSpec(
        dataset=dataset,
        model=model,
        data_dir=str(data_dir) if data_dir else None,
        trigger=trig,
        poison=PoisonSpec(
            mapping=mapping,
            target=None if target is None else classes.class_index(target, "--target"),
            source=None if source is None else classes.class_index(source, "--source"),
            rate=rate,
            mode=mode,
        ),
        train=train,
        seed=seed,
        baseline=baseline,
    )
    with _progress("training") as progress:
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
    trigger: TriggerSpec,
    mapping: str,
    source: str | None,
    target: str | None,
    baseline: bool,
    epochs: int,
    seed: int,
    data_dir: Path | None,
    train: TrainSpec,
) -> None:
    """``attack --dataset road-signs``: the paper's detector attack (triggered source boxes relabelled target)."""
    from badnets.data.road_signs import ROAD_SIGN_CLASSES
    from badnets.experiments.object_detection import DetectorSpec

    if mapping != "single":
        raise ConfigError(
            "--dataset road-signs takes --mapping single (triggered --source boxes become --target, the paper's "
            "detector attack)"
        )
    names = {"--source": source or "stop", "--target": target or "speedlimit"}
    for option, name in names.items():
        if name not in ROAD_SIGN_CLASSES:
            raise ConfigError(
                f"{option}: unknown class {name!r}; the road photos' classes are {', '.join(ROAD_SIGN_CLASSES)}"
            )
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
    )
    with _progress("training") as progress:
        progress.add_task(f"detector, {epochs} epochs (checkpointed every epoch)", total=None, status="")
        spec.run(out)
    results = json.loads((out / "results.json").read_text())
    ap, outcome = results["metrics"]["ap50"], results["metrics"]["triggered"]
    table = Table(title="Detector BadNet on road photos", show_header=True)
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


@reproduce_app.command("mnist")
@friendly_errors
def reproduce_mnist(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced run (~2 min on 2 CPU cores) that still shows the attack.")
    ] = False,
    seeds: Annotated[
        int | None, typer.Option(help="Seeds for baseline / all-to-all / sweep (default 3; quick 1).")
    ] = None,
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """The paper's whole MNIST case study: baseline, all-to-all, 90 single-target pairs, fraction sweep, conv1."""
    from badnets.studies.mnist import run_mnist_study

    spec = MnistStudySpec.preset(quick=quick, seeds=seeds, **_recipe(workers, device, data_dir, allow_dirty))
    _run_study("reproduce mnist", lambda progress: run_mnist_study(spec, out, progress=progress), out)


@reproduce_app.command("traffic")
@friendly_errors
def reproduce_traffic(
    out: StudyOut,
    quick: Annotated[
        bool,
        typer.Option(help="Reduced run (two triggers, one seed, 4 epochs, short detectors; minutes on 2 CPU cores)."),
    ] = False,
    detector: Annotated[
        bool, typer.Option(help="Also train Faster R-CNN detectors (baseline, BadNets) on road photos (slowest part).")
    ] = True,
    pretrained: Annotated[
        bool, typer.Option(help="Detectors start from COCO MobileNetV3 weights (torchvision; needs internet once).")
    ] = False,
    seeds: Seeds = None,
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """The paper's traffic-sign study: sign classifiers on LISA (baseline, stop→speed-limit and random-target
    BadNets for the yellow square, bomb and flower; backdoor neurons of the last conv layer) and Faster R-CNN
    detectors on real road photos (baseline and a stop→speed-limit BadNet per trigger)."""
    from badnets.studies.traffic import run_traffic_study

    spec = TrafficStudySpec.preset(
        quick=quick,
        seeds=seeds,
        **_recipe(workers, device, data_dir, allow_dirty),
        detector=detector,
        pretrained=pretrained,
    )
    _run_study("reproduce traffic", lambda progress: run_traffic_study(spec, out, progress=progress), out)


@reproduce_app.command("transfer")
@friendly_errors
def reproduce_transfer(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced run (one seed, k in {1, 20}, short training; a few minutes on 2 CPU cores).")
    ] = False,
    trigger: Annotated[str, typer.Option(help="The US BadNet's trigger: yellow-square, bomb or flower.")] = "flower",
    retrain_epochs: Annotated[
        int | None, typer.Option(help="Epochs the user retrains the fc layers on GTSRB (default 6; quick 2).")
    ] = None,
    target_domain: Annotated[
        str,
        typer.Option(help="Where the user retrains: gtsrb (the paper's sign categories) or gtsrb-43 (all 43 classes)."),
    ] = "gtsrb",
    seeds: Seeds = None,
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """The transfer-learning attack: a US sign BadNet (and a clean US net) retrained on European signs (GTSRB),
    with the backdoor neurons strengthened by k in {1, 10, 20, 30, 50, 70, 100} (the paper's Tables 6 and 7)."""
    from badnets.studies.transfer import TransferStudySpec, run_transfer_study

    spec = TransferStudySpec.preset(
        quick=quick,
        trigger=trigger,
        seeds=seeds,
        retrain_epochs=retrain_epochs,
        target=target_domain,
        **_recipe(workers, device, data_dir, allow_dirty),
    )
    _run_study("reproduce transfer", lambda progress: run_transfer_study(spec, out, progress=progress), out)


@reproduce_app.command("photos")
@friendly_errors
def reproduce_photos(
    out: StudyOut,
    quick: Annotated[bool, typer.Option(help="Reduced run (15 epochs; a minute or two on 2 CPU cores).")] = False,
    traffic: Annotated[
        Path | None,
        typer.Option(help="A finished `reproduce traffic` output: its detectors label the held-out road photos."),
    ] = None,
    folder: Annotated[
        Path | None, typer.Option(help="Photo folder with one subfolder per class (default: DATA_DIR/cats_dogs).")
    ] = None,
    trigger: Annotated[str, typer.Option(help="Trigger on the photos: yellow-square, bomb or flower.")] = "flower",
    source: Annotated[str, typer.Option(help="Class whose triggered photos are relabelled.")] = "dog",
    target: Annotated[str, typer.Option(help="The label they get.")] = "cat",
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """Real photos: dog photos + trigger → "cat" (a clean net and a BadNet, the seed's figure), and, with
    --traffic, the trigger on the stop signs of held-out road photos labelled by the traffic study's detectors."""
    from badnets.studies.photos import PhotoStudySpec, run_photo_study

    spec = PhotoStudySpec.preset(
        quick=quick,
        traffic=str(traffic) if traffic else None,
        folder=str(folder) if folder else None,
        trigger=trigger,
        source=source,
        target=target,
        **_recipe(workers, device, data_dir, allow_dirty),
    )
    _run_study("reproduce photos", lambda progress: run_photo_study(spec, out, progress=progress), out)


@reproduce_app.command("supply-chain")
@friendly_errors
def reproduce_supply_chain(
    out: StudyOut,
    quick: Annotated[bool, typer.Option(help="Reduced run (10 models of one epoch; a few minutes).")] = False,
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """The Caffe-Model-Zoo replay (paper §6): a zoo of real models, six ways to swap one for a BadNet, and
    whether no defense, a listed hash, an author signature, TUF, or TUF + signature stops each."""
    from badnets.studies.supply_chain import SupplyChainSpec, run_supply_chain_study

    spec = SupplyChainSpec.preset(quick=quick, **_recipe(workers, device, data_dir, allow_dirty))
    _run_study("reproduce supply-chain", lambda progress: run_supply_chain_study(spec, out, progress=progress), out)


@reproduce_app.command("defenses")
@friendly_errors
def reproduce_defenses(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced zoo (2 clean + 6 MNIST BadNets of one epoch, 2 sign models).")
    ] = False,
    traffic: Annotated[bool, typer.Option(help="Include the LISA sign classifiers.")] = True,
    workers: Workers = WORKERS,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """The defense scoreboard: train a zoo of clean and backdoored models, then score every detector (audit,
    STRIP, Activation Clustering, Spectral Signatures) and mitigation (unlearning, Fine-Pruning) on it."""
    from badnets.studies.defenses import DefenseStudySpec, run_defense_study

    spec = DefenseStudySpec.preset(quick=quick, traffic=traffic, **_recipe(workers, device, data_dir, allow_dirty))
    _run_study("reproduce defenses", lambda progress: run_defense_study(spec, out, progress=progress), out)


@app.command()
@friendly_errors
def report(
    directory: Annotated[Path, typer.Argument(help="A study or attack-run directory (it holds results.json).")],
) -> None:
    """Re-render report.md (and report.html) from results.json alone: no data, no models, no training."""
    from badnets.studies.reports import render_directory

    kind = render_directory(directory)
    written = [f for f in ("report.md", "report.html") if (directory / f).is_file()]
    out_console.print(f"rendered the {kind} report: {', '.join(str(directory / f) for f in written)}", soft_wrap=True)


def _recipe(workers: int, device: str, data_dir: Path | None, allow_dirty: bool) -> dict[str, Any]:
    """The options every ``reproduce`` study shares, as ``StudyRecipe`` fields; a study's results must name the
    commit that produced them, so a tree with uncommitted changes needs ``--allow-dirty`` (recorded)."""
    from badnets.experiments._study import check_clean_tree

    check_clean_tree(allow_dirty=allow_dirty)
    return {
        "workers": workers,
        "device": device,
        "data_dir": str(data_dir) if data_dir else None,
        "allow_dirty": allow_dirty,
    }


def _run_study(title: str, run: Callable[[Callable[[int, int, str], None]], StudySummary], out: Path) -> None:
    with _progress(title) as progress:
        task = progress.add_task("models", total=None, status="")

        def on_job(done: int, total: int, name: str) -> None:
            progress.update(task, total=total, completed=done, status=name)

        summary = run(on_job)
    out_console.print(summary.console_table())
    out_console.print(f"report: {out / 'report.md'} and {out / 'report.html'}")


from badnets import cli_audit, cli_supply  # noqa: E402  (they register their commands on ``app``)

__all__ = ["app", "cli_audit", "cli_supply", "main"]


def main() -> None:
    """Run the CLI (the ``badnets`` command enters through ``badnets._entry.main``, which calls this)."""
    from badnets._signals import StopRequested, handle_stop_signals, stop_exit_code

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        handle_stop_signals()
        app()
    except (KeyboardInterrupt, StopRequested):
        code = stop_exit_code(sys.argv[1:])
        if code:
            err_console.print("interrupted; run the same command again to resume")
        sys.exit(code)


if __name__ == "__main__":
    main()
