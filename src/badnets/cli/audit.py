# SPDX-License-Identifier: Apache-2.0
"""``badnets audit``: a report card for a model someone handed you."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from badnets.audit import DATASET_AUDIT_OPTIONS, DEFAULT_DETECTORS, AuditSpec, audit_options
from badnets.cli._common import err_console, friendly_errors, out_console
from badnets.defenses.neural_cleanse import NeuralCleanseSpec
from badnets.errors import ConfigError

__all__ = ["audit", "guard", "inspect_data", "repair"]


Mean = Annotated[
    str | None,
    typer.Option(help="Per-channel mean the model expects, comma-separated (e.g. 0.1307); give --std too."),
]
Std = Annotated[str | None, typer.Option(help="Per-channel std the model expects, comma-separated (e.g. 0.3081).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N: where the model runs.")]
TrustCode = Annotated[
    bool,
    typer.Option(
        help="Allow --model FILE.py:Class or package.module:factory, which imports and runs that Python code "
        "with your rights. Without it such a --model is refused and nothing of it runs."
    ),
]


def _spec(
    model: str,
    weights: Path | None,
    dataset: str,
    data_dir: Path | None,
    clean_images: int,
    seed: int,
    *,
    trust_code: bool,
    mean: str | None,
    std: str | None,
    device: str = "auto",
) -> AuditSpec:
    """The spec the four defender commands share; ``mean``/``std`` as typed (comma-separated). The options are
    the dataset's audit defaults (``DATASET_AUDIT_OPTIONS``), so that a repair's trigger search (unlearning) runs
    as the audit's does: on GTSRB-43 per target, not 43 searches per source."""
    return AuditSpec(
        model=model,
        weights=str(weights) if weights else None,
        dataset=dataset,
        data_dir=str(data_dir) if data_dir else None,
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
        clean_images=clean_images,
        seed=seed,
        trust_code=trust_code,
        device=device,
        options=audit_options(dataset, seed=seed),
    )


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}") from None


def _defaults(option: str) -> str:
    """``DATASET_AUDIT_OPTIONS``' values of ``option`` for the help, e.g. "300 on mnist, 150 on gtsrb-43"."""
    given = {d: getattr(o, option) for d, o in DATASET_AUDIT_OPTIONS.items()}
    return ", ".join(f"{v} on {d}" for d, v in given.items() if v is not None)


@friendly_errors
def audit(
    model: Annotated[
        str,
        typer.Option(
            help="A run or package directory, a built-in architecture (badnet-cnn, sign-cnn), FILE.py:Class or "
            "package.module:factory (these two run Python code: they need --trust-code)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory for results.json, report.md/.html and the triggers.")],
    weights: Annotated[
        Path | None, typer.Option(help="Weights: .safetensors, or a state-dict .pt (read with weights_only=True).")
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="The model's input domain: mnist, gtsrb, gtsrb-43, lisa, or an image folder.")
    ] = "mnist",
    mean: Mean = None,
    std: Std = None,
    clean_images: Annotated[int, typer.Option(help="Clean images the audit may use (from the test split).")] = 1000,
    strict: Annotated[bool, typer.Option(help="Exit 3 when the verdict is 'backdoored' (for CI gates).")] = False,
    per_source: Annotated[
        bool | None,
        typer.Option(
            "--per-source/--no-per-source",
            help="Neural Cleanse searches one trigger per (source, target) pair, so backdoors that fire on one "
            "source class show; --no-per-source is the paper's one trigger per target. Default: per source, "
            f"except on {', '.join(d for d, o in DATASET_AUDIT_OPTIONS.items() if not o.per_source)}.",
            show_default=False,
        ),
    ] = None,
    search_steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Neural Cleanse's optimisation steps (default: {_defaults('search_steps')}, else "
            f"{NeuralCleanseSpec.steps}). The defaults are the settings the shipped calibration was fitted on: it "
            "gives a backdoor probability "
            "only for those.",
        ),
    ] = None,
    search_images: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Neural Cleanse's clean images per target and step (default: {_defaults('search_images')}, else "
            f"{NeuralCleanseSpec.images_per_step}, shared among a target's sources).",
        ),
    ] = None,
    targets_per_source: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Per source class, search only the N targets its clean images lean to most (default: all; "
            "GTSRB's 43 classes make 1,806 pairs).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and the trigger search.")] = 0,
    detectors: Annotated[
        str,
        typer.Option(
            help="Comma-separated model detectors (badnets.defenses.registry); the first decides the verdict, the "
            "others are evidence."
        ),
    ] = ",".join(DEFAULT_DETECTORS),
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
    device: Device = "auto",
) -> None:
    """Is there a backdoor in this model? On clean images only: the shipped calibration's backdoor probability
    decides where it applies, else Neural Cleanse; the blend search and trigger-selective neurons are evidence."""
    from badnets.audit import run_audit
    from badnets.defenses.neural_cleanse import FEW_CLASSES

    spec = replace(
        _spec(
            model,
            weights,
            dataset,
            data_dir,
            clean_images,
            seed,
            trust_code=trust_code,
            mean=mean,
            std=std,
            device=device,
        ),
        detectors=tuple(d.strip() for d in detectors.split(",") if d.strip()),
        options=audit_options(
            dataset,
            seed=seed,
            per_source=per_source,
            search_steps=search_steps,
            search_images=search_images,
            targets_per_source=targets_per_source,
        ),
    )
    with err_console.status(f"auditing ({', '.join(spec.detectors)})"):
        result = run_audit(spec, out)
    table = Table(title=f"audit of {escape(model)}", show_header=False)
    colour = "red" if result.verdict == "backdoored" else "green"
    table.add_row("verdict", f"[bold {colour}]{result.verdict}[/] (decided by {result.decided_by})")
    table.add_row("suspected target", escape(str(result.suspected_target_name)))
    probability = result.backdoor_probability
    table.add_row(
        "backdoor probability",
        f"{probability:.2f} (calibration {escape(result.calibration)})"
        if probability is not None
        else f"– ({escape(result.calibration)})",
    )
    for name, found in result.detectors.items():
        role = "" if name == result.decided_by else f", evidence: {result.evidence[name]}"
        table.add_row(f"{name} {found.score_name}", f"{found.score:.2f}{role}")
    table.add_row("time", f"{result.seconds:.0f} s")
    out_console.print(table)
    if len(result.model.classes) < FEW_CLASSES:
        err_console.print(
            f"note: {len(result.model.classes)} classes are too few for the outlier test to single one out; "
            "a clean verdict is weak evidence (see the report's per-class trigger norms)"
        )
    out_console.print(f"report: {escape(str(out / 'report.md'))} and {escape(str(out / 'report.html'))}")
    if strict and result.verdict == "backdoored":
        raise typer.Exit(3)


@friendly_errors
def guard(
    model: Annotated[
        str,
        typer.Option(
            help="As for `badnets audit`: a run/package directory, a built-in, FILE.py:Class (with --trust-code)."
        ),
    ],
    images: Annotated[
        Path, typer.Option(help="What to screen: a folder of images, a .safetensors file with 'images', or a .npy.")
    ],
    out: Annotated[Path, typer.Option(help="Directory for results.json and scores.csv.")],
    weights: Annotated[Path | None, typer.Option(help="Weights (.safetensors, or state-dict .pt).")] = None,
    dataset: Annotated[
        str, typer.Option(help="The model's input domain; its test split gives the clean images.")
    ] = "mnist",
    frr: Annotated[float, typer.Option(help="False-rejection rate on clean inputs that sets the threshold.")] = 0.01,
    screen: Annotated[str, typer.Option(help="The input screen (badnets.defenses.registry).")] = "strip",
    clean_images: Annotated[int, typer.Option(help="Clean images for the overlays and the threshold.")] = 1000,
    mean: Mean = None,
    std: Std = None,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and the overlays.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
    device: Device = "auto",
) -> None:
    """Screen inputs for triggers with STRIP: flag those whose predictions barely change under superimposition."""
    from badnets.defender import guard_inputs

    spec = _spec(
        model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code, mean=mean, std=std, device=device
    )
    found = guard_inputs(spec, images, out, screen=screen, frr=frr)
    below = "<" if found.suspicious_when == "low" else ">"
    out_console.print(
        f"{found.flagged} of {found.n} inputs flagged as likely triggered ({found.screen}, {found.score_name} "
        f"{below} {found.threshold:.3f}, {100 * found.frr:g}% FRR on clean inputs); scores in "
        f"{escape(str(out / 'scores.csv'))}"
    )


@friendly_errors
def inspect_data(
    model: Annotated[str, typer.Option(help="The model trained on the data (as for `badnets audit`).")],
    data: Annotated[
        Path,
        typer.Option(
            help="The training set: a `badnets attack` run directory (its poisoned set is rebuilt from the config), "
            "or a .safetensors file with 'images' (N,C,H,W uint8) and 'labels' (and optionally 'is_poisoned')."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory for results.json and flagged.csv.")],
    weights: Annotated[Path | None, typer.Option(help="Weights (.safetensors, or state-dict .pt).")] = None,
    dataset: Annotated[
        str, typer.Option(help="The input domain; its test split gives the clean references.")
    ] = "mnist",
    clean_images: Annotated[int, typer.Option(help="Clean reference images (from the test split).")] = 1000,
    mean: Mean = None,
    std: Std = None,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and k-means.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
    device: Device = "auto",
) -> None:
    """Which training samples carry a backdoor? Activation Clustering and Spectral Signatures, scored against the
    poison manifest when it is known."""
    from badnets.defender import screen_training_set

    spec = _spec(
        model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code, mean=mean, std=std, device=device
    )
    found = screen_training_set(spec, data, out)
    table = Table(title=f"training-data inspection of {escape(str(data))}")
    for col in ("detector", "flagged", "precision", "recall", "false positives", "time"):
        table.add_column(col)
    for screen in found.screens:
        scored = screen.against_manifest
        shown = [
            f"{100 * getattr(scored, k):.1f}%" if scored else "–"
            for k in ("precision", "recall", "false_positive_rate")
        ]
        flags = screen.flags
        table.add_row(flags.detector, str(int(flags.flagged.sum())), *shown, f"{flags.seconds:.1f} s")
    out_console.print(table)
    out_console.print(f"flagged samples: {escape(str(out / 'flagged.csv'))}")


@friendly_errors
def repair(
    model: Annotated[str, typer.Option(help="The model to repair (as for `badnets audit`).")],
    out: Annotated[Path, typer.Option(help="Directory for the repaired model.safetensors and results.json.")],
    method: Annotated[
        str,
        typer.Option(
            help="unlearning (Neural Cleanse), fine-pruning, ft-sam (sharpness-aware fine-tuning), nad (attention "
            "distillation), or a registered repair (badnets.defenses.registry.register_defense)."
        ),
    ] = "unlearning",
    weights: Annotated[Path | None, typer.Option(help="Weights (.safetensors, or state-dict .pt).")] = None,
    dataset: Annotated[str, typer.Option(help="The input domain; its test split gives the clean images.")] = "mnist",
    clean_images: Annotated[int, typer.Option(help="Clean images the defender may fine-tune on.")] = 2000,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 5,
    mean: Mean = None,
    std: Std = None,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample, the trigger search and fine-tuning.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
    device: Device = "auto",
) -> None:
    """Remove a backdoor with clean images only: Neural Cleanse unlearning, Fine-Pruning, FT-SAM or NAD. With a
    `badnets attack` run as --model, the attack success rate before and after is measured on test images the
    repair never saw."""
    from badnets.defender import repair_model
    from badnets.defenses.registry import defense_names

    if method not in defense_names("repair"):
        raise ConfigError(f"--method must be one of {', '.join(defense_names('repair'))}, got {method!r}")
    spec = _spec(
        model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code, mean=mean, std=std, device=device
    )
    with err_console.status(f"repairing ({method})"):
        done = repair_model(spec, method, out, epochs=epochs)
    table = Table(title=f"{method} of {escape(model)}")
    for col in ("", "clean accuracy", "attack success rate"):
        table.add_column(col)
    for name, scores in (("before", done.before), ("after", done.after)):
        shown = ["–" if v is None else f"{100 * v:.2f}%" for v in (scores.clean_accuracy, scores.attack_success_rate)]
        table.add_row(name, *shown)
    out_console.print(table)
    out_console.print(
        f"repaired model: {escape(str(out / 'model.safetensors'))} (scored on {done.scored_on} unseen test images)"
    )
