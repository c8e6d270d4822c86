# SPDX-License-Identifier: Apache-2.0
"""``badnets reproduce STUDY`` and ``badnets report DIR``: the paper's case studies end to end, and their reports."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from badnets.cli._common import (
    WORKERS,
    AllowDirty,
    BackendName,
    DataDir,
    Device,
    RayAddress,
    Seeds,
    StudyOut,
    Workers,
    friendly_errors,
    out_console,
    progress_bar,
    study_backend,
)
from badnets.experiments._study import StudySummary
from badnets.studies.mnist import MnistStudySpec
from badnets.studies.traffic import TrafficStudySpec

__all__ = [
    "report",
    "reproduce_audit_round",
    "reproduce_defenses",
    "reproduce_mnist",
    "reproduce_photos",
    "reproduce_supply_chain",
    "reproduce_traffic",
    "reproduce_transfer",
]


@dataclass(frozen=True)
class StudyRun:
    """The options every ``reproduce`` command takes (``SHARED_OPTIONS``): where and how the study's models train."""

    workers: int
    data_dir: Path | None
    device: str
    allow_dirty: bool
    backend: str
    address: str | None

    def recipe(self) -> dict[str, Any]:
        """These options as the study spec's ``StudyRecipe`` fields; a study's results must name the commit that
        produced them, so a tree with uncommitted changes needs ``--allow-dirty`` (recorded)."""
        from badnets.experiments._study import check_clean_tree

        check_clean_tree(allow_dirty=self.allow_dirty)
        return {
            "workers": self.workers,
            "device": self.device,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "allow_dirty": self.allow_dirty,
        }

    def study(self, title: str, out: Path, run: Callable[..., StudySummary[Any]], spec: object) -> None:
        """``run(spec, out, progress=, backend=)`` (a study's ``run_*`` function) on the backend these options
        name, with a progress bar, then the study's summary table."""
        backend = study_backend(self.backend, self.address, self.workers)
        with progress_bar(title) as progress:
            task = progress.add_task("models", total=None, status="")

            def on_job(done: int, total: int, name: str) -> None:
                progress.update(task, total=total, completed=done, status=name)

            summary = run(spec, out, progress=on_job, backend=backend)
        out_console.print(summary.console_table())
        out_console.print(f"report: {out / 'report.md'} and {out / 'report.html'}")


SHARED_OPTIONS: dict[str, tuple[Any, Any]] = {  # StudyRun's fields: (annotation, default)
    "workers": (Workers, WORKERS),
    "data_dir": (DataDir, None),
    "device": (Device, "auto"),
    "allow_dirty": (AllowDirty, False),
    "backend": (BackendName, "local"),
    "address": (RayAddress, None),
}


def study_command(command: Callable[..., None]) -> Callable[..., None]:
    """A ``reproduce`` command: ``command``'s own options followed by ``SHARED_OPTIONS``, which it receives as one
    ``run: StudyRun``; one place declares them, so every study's ``--help`` lists them alike."""
    hints = get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values() if p.name != "run"
    ]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in SHARED_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_shared_options(**options: Any) -> None:
        run = StudyRun(**{name: options.pop(name) for name in SHARED_OPTIONS})
        command(**options, run=run)

    with_shared_options.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    with_shared_options.__annotations__ = {p.name: p.annotation for p in own + shared} | {"return": None}
    return friendly_errors(with_shared_options)


@study_command
def reproduce_mnist(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced run (~2 min on 2 CPU cores) that still shows the attack.")
    ] = False,
    seeds: Annotated[
        int | None, typer.Option(help="Seeds for baseline / all-to-all / sweep (default 3; quick 1).")
    ] = None,
    *,
    run: StudyRun,
) -> None:
    """The paper's whole MNIST case study: baseline, all-to-all, 90 single-target pairs, fraction sweep, conv1."""
    from badnets.studies.mnist import run_mnist_study

    spec = MnistStudySpec.preset(quick=quick, seeds=seeds, **run.recipe())
    run.study("reproduce mnist", out, run_mnist_study, spec)


@study_command
def reproduce_traffic(
    out: StudyOut,
    quick: Annotated[
        bool,
        typer.Option(
            help="Reduced run (two triggers, one seed, 4 epochs, 3-epoch detectors; ≈ 25 min on 2 CPU cores)."
        ),
    ] = False,
    detector: Annotated[
        bool,
        typer.Option(
            help="Also train Faster R-CNN detectors (baseline, single- and random-target BadNets; slowest part)."
        ),
    ] = True,
    scenes: Annotated[
        bool,
        typer.Option(
            "--scenes/--photos-only",
            help="Detectors train and test on composite scenes (real LISA signs pasted into the road photos) and are "
            "also scored on the real held-out photos; --photos-only: on the 877 road photos alone.",
        ),
    ] = True,
    detector_epochs: Annotated[int | None, typer.Option(help="Detector training epochs (default 12; quick 3).")] = None,
    detector_size: Annotated[
        int | None, typer.Option(help="Detector input side in pixels (default 320; quick 224).")
    ] = None,
    detector_stride: Annotated[
        int, typer.Option(help="Detector backbone's feature stride: 4 (resolves small stickers) or 8 (2.5x faster).")
    ] = 4,
    detector_min_sign_width: Annotated[
        int,
        typer.Option(
            help="Detector BadNets leave attacked signs narrower than this many pixels clean in their triggered "
            "copies (the sticker is a pixel or two there); 0: every attacked sign, as the paper."
        ),
    ] = 0,
    pretrained: Annotated[
        bool, typer.Option(help="Detectors start from COCO MobileNetV3 weights (torchvision; needs internet once).")
    ] = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            help="Keep every finished detector's records (no weights) in this folder as it finishes, and restore "
            "them into OUT first: detectors trained on other machines (e.g. the folder committed to git) are not "
            "trained again.",
        ),
    ] = None,
    seeds: Seeds = None,
    *,
    run: StudyRun,
) -> None:
    """The paper's traffic-sign study: sign classifiers on LISA (baseline, stop→speed-limit and random-target
    BadNets for the yellow square, bomb and flower; backdoor neurons of the last conv layer) and Faster R-CNN
    detectors on composite road scenes, real LISA signs pasted into real road photos (baseline, and per trigger a
    stop→speed-limit and a random-target BadNet), scored on held-out scenes and on the real held-out photos."""
    from badnets.studies.traffic import run_traffic_study

    sizes = {"detector_epochs": detector_epochs, "detector_size": detector_size}
    spec = TrafficStudySpec.preset(
        quick=quick,
        seeds=seeds,
        **run.recipe(),
        detector=detector,
        detector_scenes=scenes,
        detector_stride=detector_stride,
        detector_min_sign_width=detector_min_sign_width,
        pretrained=pretrained,
        **{k: v for k, v in sizes.items() if v is not None},
    )
    run.study("reproduce traffic", out, functools.partial(run_traffic_study, archive=archive), spec)


@study_command
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
    *,
    run: StudyRun,
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
        **run.recipe(),
    )
    run.study("reproduce transfer", out, run_transfer_study, spec)


@study_command
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
    *,
    run: StudyRun,
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
        **run.recipe(),
    )
    run.study("reproduce photos", out, run_photo_study, spec)


@study_command
def reproduce_supply_chain(
    out: StudyOut,
    quick: Annotated[bool, typer.Option(help="Reduced run (10 models of one epoch; a few minutes).")] = False,
    *,
    run: StudyRun,
) -> None:
    """The Caffe-Model-Zoo replay (paper §6): a zoo of real models, six ways to swap one for a BadNet, and
    whether no defense, a listed hash, an author signature, TUF, or TUF + signature stops each."""
    from badnets.studies.supply_chain import SupplyChainSpec, run_supply_chain_study

    spec = SupplyChainSpec.preset(quick=quick, **run.recipe())
    run.study("reproduce supply-chain", out, run_supply_chain_study, spec)


@study_command
def reproduce_defenses(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced zoo (2 clean + 6 MNIST BadNets of one epoch, 2 sign models).")
    ] = False,
    traffic: Annotated[bool, typer.Option(help="Include the LISA sign classifiers.")] = True,
    *,
    run: StudyRun,
) -> None:
    """The defense scoreboard: train a zoo of clean and backdoored models, then score every detector (audit,
    STRIP, Activation Clustering, Spectral Signatures) and mitigation (unlearning, Fine-Pruning) on it."""
    from badnets.studies.defenses import DefenseStudySpec, run_defense_study

    spec = DefenseStudySpec.preset(quick=quick, traffic=traffic, **run.recipe())
    run.study("reproduce defenses", out, run_defense_study, spec)


@study_command
def reproduce_audit_round(
    out: StudyOut,
    quick: Annotated[
        bool, typer.Option(help="Reduced rounds (8 / 4 / 8 models of one or a few epochs; minutes on 2 CPU cores).")
    ] = False,
    models: Annotated[
        int | None,
        typer.Option(min=2, help="Models in the test round; the train and validation rounds scale with it."),
    ] = None,
    rounds: Annotated[
        str | None,
        typer.Option(
            help="Only these rounds, comma-separated, e.g. train,validation (the train round always; the repairs "
            "only with their round): with --archive, scores the rounds finished so far without training the rest.",
        ),
    ] = None,
    chunk: Annotated[
        int,
        typer.Option(
            min=0,
            help="Train, audit and repair this many models before starting the next ones (0: whole rounds, the "
            "busiest workers); with --archive, a stopped round loses at most one chunk.",
        ),
    ] = 0,
    archive: Annotated[
        Path | None,
        typer.Option(
            help="Keep every finished model's records (no weights) in this folder, each chunk's as soon as it is "
            "done, and restore them into OUT first: a round carried across machines that do not share OUT "
            "(e.g. the folder committed to git) never repeats a finished model.",
        ),
    ] = None,
    *,
    run: StudyRun,
) -> None:
    """The audit judged like a trojan-detection round: train, validation and test rounds of clean and backdoored
    MNIST and GTSRB-43 models drawn by a seeded generator (other triggers, rates, mappings and recipes), with
    every model's ground truth in results.json. Hours on 2 cores at the default size; re-run to resume."""
    from badnets.studies.audit_round import AuditRoundSpec, run_audit_round

    only = None if rounds is None else [name.strip() for name in rounds.split(",") if name.strip()]
    spec = AuditRoundSpec.preset(quick=quick, models=models, only=only, chunk=chunk, **run.recipe())
    run.study("reproduce audit-round", out, functools.partial(run_audit_round, archive=archive), spec)


@friendly_errors
def report(
    directory: Annotated[Path, typer.Argument(help="A study, attack-run or audit directory (it holds results.json).")],
    rejudge: Annotated[
        bool,
        typer.Option(
            "--rejudge",
            help="Judge the targets again with this version's judge, from the numbers results.json records "
            "(nothing is re-run; the file notes it in targets_judged); the studies judged by targets.",
        ),
    ] = False,
) -> None:
    """Re-render report.md (and report.html) from results.json alone: no data, no models, no training."""
    from badnets.studies.reports import rejudge_directory, render_directory

    kind = rejudge_directory(directory) if rejudge else render_directory(directory)
    written = [f for f in ("report.md", "report.html") if (directory / f).is_file()]
    out_console.print(f"rendered the {kind} report: {', '.join(str(directory / f) for f in written)}", soft_wrap=True)
