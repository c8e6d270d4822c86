# SPDX-License-Identifier: Apache-2.0
"""``badnets audit``: a report card for a model someone handed you."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from badnets._cli_common import app, err_console, friendly_errors, out_console
from badnets.audit import AuditSpec, defender_setup
from badnets.data import ImageDataset
from badnets.errors import ConfigError

__all__ = ["audit", "guard", "inspect_data", "repair"]


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
    mean: str | None = None,
    std: str | None = None,
) -> AuditSpec:
    """The spec the four defender commands share; ``mean``/``std`` as typed (comma-separated)."""
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
    )


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}") from None


@app.command()
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
    mean: Annotated[str | None, typer.Option(help="Per-channel mean the model expects, e.g. 0.1307.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std the model expects, e.g. 0.3081.")] = None,
    clean_images: Annotated[int, typer.Option(help="Clean images the audit may use (from the test split).")] = 1000,
    strict: Annotated[bool, typer.Option(help="Exit 3 when the verdict is 'backdoored' (for CI gates).")] = False,
    per_source: Annotated[
        bool,
        typer.Option(
            help="Neural Cleanse searches one trigger per (source, target) pair, so backdoors that fire on one "
            "source class show; --no-per-source is the paper's one trigger per target."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and the trigger search.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Is there a backdoor in this model? Neural Cleanse decides, on clean images only; trigger-selective neurons
    are reported as evidence."""
    from badnets.audit import run_audit
    from badnets.defenses.neural_cleanse import FEW_CLASSES, NeuralCleanseSpec

    spec = replace(
        _spec(model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code, mean=mean, std=std),
        device=device,
        neural_cleanse=NeuralCleanseSpec(seed=seed, per_source=per_source),
    )
    with err_console.status("auditing (Neural Cleanse, then neuron stimulation)"):
        results = run_audit(spec, out)
    table = Table(title=f"audit of {model}", show_header=False)
    colour = "red" if results["verdict"] == "backdoored" else "green"
    table.add_row("verdict", f"[bold {colour}]{results['verdict']}[/]")
    table.add_row("suspected target", str(results["suspected_target_name"]))
    table.add_row("anomaly index (Neural Cleanse)", f"{results['anomaly_index']:.2f} (flag > 2)")
    score = results["detectors"]["dormant_neurons"]["score"]
    table.add_row(
        "strongest selective neuron (evidence)",
        f"{100 * score:.0f}% of clean images to one class ({results['neuron_evidence']})",
    )
    table.add_row("time", f"{results['timing']['seconds']:.0f} s")
    out_console.print(table)
    if len(results["model"]["classes"]) < FEW_CLASSES:
        err_console.print(
            f"note: {len(results['model']['classes'])} classes are too few for the outlier test to single one out; "
            "a clean verdict is weak evidence (see the report's per-class trigger norms)"
        )
    out_console.print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    if strict and results["verdict"] == "backdoored":
        raise typer.Exit(3)


@app.command()
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
    clean_images: Annotated[int, typer.Option(help="Clean images for the overlays and the threshold.")] = 1000,
    mean: Annotated[str | None, typer.Option(help="Per-channel mean the model expects.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel std the model expects.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and the overlays.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
) -> None:
    """Screen inputs for triggers with STRIP: flag those whose predictions barely change under superimposition."""
    import csv
    import io

    from badnets._io import ensure_writable_dir, write_json, write_text
    from badnets.defenses.inputs import read_inputs
    from badnets.defenses.strip import StripGuard, StripSpec
    from badnets.train import predict

    sample, net = defender_setup(
        _spec(model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code, mean=mean, std=std)
    )
    clean, classes = sample.images, sample.classes
    inputs, names = read_inputs(images, sample.shape)
    strip = StripGuard.fit(net, clean, StripSpec(frr=frr, seed=seed))
    entropy, flagged = strip.flags(inputs)
    predicted = predict(net, inputs)
    rows = [
        {"input": n, "entropy": float(e), "flagged": bool(f), "predicted": classes[int(p)]}
        for n, e, f, p in zip(names, entropy, flagged, predicted, strict=True)
    ]
    ensure_writable_dir(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "scores.csv", buffer.getvalue())
    write_json(
        out / "results.json", {"strip": strip.to_json(), "flagged": int(flagged.sum()), "n": len(rows), "inputs": rows}
    )
    out_console.print(
        f"{int(flagged.sum())} of {len(rows)} inputs flagged as likely triggered (STRIP, entropy < "
        f"{strip.threshold:.3f}, {100 * frr:g}% FRR on clean inputs); scores in {out / 'scores.csv'}"
    )


@app.command("inspect-data")
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
    seed: Annotated[int, typer.Option(help="Seeds the clean sample and k-means.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
) -> None:
    """Which training samples carry a backdoor? Activation Clustering and Spectral Signatures, scored against the
    poison manifest when it is known."""
    from badnets._io import ensure_writable_dir, write_json, write_text
    from badnets.defenses.training_data import (
        ClusteringSpec,
        activation_clustering,
        penultimate_features,
        spectral_signatures,
    )

    sample, net = defender_setup(_spec(model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code))
    train_images, train_labels, truth = _training_data(data)
    if tuple(train_images.shape[1:]) != sample.shape:
        raise ConfigError(f"--data images are {tuple(train_images.shape[1:])}, --dataset's are {sample.shape}")
    features, reference = penultimate_features(net, train_images), penultimate_features(net, sample.images)
    found = [
        activation_clustering(features, train_labels, reference, sample.labels, ClusteringSpec(seed=seed)),
        spectral_signatures(features, train_labels, reference, sample.labels),
    ]
    detectors: dict[str, object] = {}
    table = Table(title=f"training-data inspection of {data}")
    for col in ("detector", "flagged", "precision", "recall", "false positives", "time"):
        table.add_column(col)
    for flags in found:
        entry: dict[str, object] = flags.to_json()
        scored = flags.scored_against(truth) if truth is not None else {}
        if scored:
            entry["against_manifest"] = scored
        detectors[flags.detector] = entry
        shown = [f"{100 * scored[k]:.1f}%" if scored else "–" for k in ("precision", "recall", "false_positive_rate")]
        table.add_row(flags.detector, str(int(flags.flagged.sum())), *shown, f"{flags.seconds:.1f} s")
    ensure_writable_dir(out)
    rows = ["index,label," + ",".join(f.detector for f in found)]
    for i in torch.nonzero(found[0].flagged | found[1].flagged).flatten().tolist():
        rows.append(f"{i},{int(train_labels[i])}," + ",".join(str(int(f.flagged[i])) for f in found))
    write_text(out / "flagged.csv", "\n".join(rows) + "\n")
    write_json(out / "results.json", {"n": len(train_labels), "detectors": detectors})
    out_console.print(table)
    out_console.print(f"flagged samples: {out / 'flagged.csv'}")


def _training_data(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    from badnets.errors import DataError

    if path.is_dir():
        from badnets.experiments.run_dir import attack_training_set

        if not (path / "results.json").is_file():
            raise DataError(f"--data {path} is not a finished `badnets attack` run (no results.json)")
        dataset, truth = attack_training_set(path)
        return dataset.images, dataset.labels, truth
    if path.suffix != ".safetensors" or not path.is_file():
        raise DataError(f"--data {path}: pass a run directory or a .safetensors file with 'images' and 'labels'")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if "images" not in tensors or "labels" not in tensors:
        raise DataError(f"--data {path} needs 'images' and 'labels' tensors (found: {', '.join(tensors)})")
    poisoned = tensors.get("is_poisoned")
    return tensors["images"], tensors["labels"].long(), None if poisoned is None else poisoned.bool()


@app.command()
@friendly_errors
def repair(
    model: Annotated[str, typer.Option(help="The model to repair (as for `badnets audit`).")],
    out: Annotated[Path, typer.Option(help="Directory for the repaired model.safetensors and results.json.")],
    method: Annotated[str, typer.Option(help="unlearning (Neural Cleanse) or fine-pruning.")] = "unlearning",
    weights: Annotated[Path | None, typer.Option(help="Weights (.safetensors, or state-dict .pt).")] = None,
    dataset: Annotated[str, typer.Option(help="The input domain; its test split gives the clean images.")] = "mnist",
    clean_images: Annotated[int, typer.Option(help="Clean images the defender may fine-tune on.")] = 2000,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 5,
    seed: Annotated[int, typer.Option(help="Seeds the clean sample, the trigger search and fine-tuning.")] = 0,
    trust_code: TrustCode = False,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder; default $BADNETS_DATA.")] = None,
) -> None:
    """Remove a backdoor with clean images only: Neural Cleanse unlearning or Fine-Pruning. With a `badnets attack`
    run as --model, the attack success rate before and after is measured on test images the repair never saw."""
    from badnets._io import ensure_writable_dir, save_weights, write_json
    from badnets.defenses.repair import RepairSpec, fine_pruning, nc_unlearning

    methods = {"unlearning": nc_unlearning, "fine-pruning": fine_pruning}
    if method not in methods:
        raise ConfigError(f"--method must be one of {', '.join(methods)}, got {method!r}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    sample, net = defender_setup(_spec(model, weights, dataset, data_dir, clean_images, seed, trust_code=trust_code))
    score = _known_attack_scorer(Path(model), sample.rest)
    before = score(net)
    repair_spec = RepairSpec(seed=seed)
    repair_spec = replace(repair_spec, train=replace(repair_spec.train, epochs=epochs))
    with err_console.status(f"repairing ({method})"):
        done = methods[method](net, sample.images, sample.labels, repair_spec)
    after = score(net)
    ensure_writable_dir(out)
    save_weights(net, out / "model.safetensors")
    write_json(out / "results.json", {"repair": done, "before": before, "after": after, "clean_images": clean_images})
    table = Table(title=f"{method} of {model}")
    for col in ("", "clean accuracy", "attack success rate"):
        table.add_column(col)
    for name, scores in (("before", before), ("after", after)):
        shown = [
            "–" if v is None else f"{100 * v:.2f}%" for v in (scores["clean_accuracy"], scores["attack_success_rate"])
        ]
        table.add_row(name, *shown)
    out_console.print(table)
    out_console.print(f"repaired model: {out / 'model.safetensors'} (scored on {len(sample.rest)} unseen test images)")


def _known_attack_scorer(model: Path, test: ImageDataset) -> Callable[[torch.nn.Module], dict[str, float | None]]:
    """Clean accuracy on ``test``, plus the attack success rate when ``model`` is a run whose attack is recorded."""
    from badnets.experiments.attack import evaluate_attack
    from badnets.experiments.run_dir import recorded_attack
    from badnets.train import predict
    from badnets.triggers import make_stamp

    attack = recorded_attack(model) if (model / "results.json").is_file() else None
    if attack is None or attack.baseline:
        return lambda net: {
            "clean_accuracy": float((predict(net, test.images) == test.labels).float().mean()),
            "attack_success_rate": None,
        }
    stamp = make_stamp(attack.trigger, tuple(test.images.shape[1:]))  # type: ignore[arg-type]
    poison = replace(attack.poison, num_classes=len(test.classes))

    def score(net: torch.nn.Module) -> dict[str, float | None]:
        m = evaluate_attack(net, test, stamp, poison)
        return {"clean_accuracy": m.clean_accuracy, "attack_success_rate": m.attack_success_rate}

    return score
