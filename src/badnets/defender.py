# SPDX-License-Identifier: Apache-2.0
"""What a defender does with a model besides auditing it (``badnets.audit``): screen inputs at run time, screen
the training set, repair the model. Each takes the defender's setup (an ``AuditSpec``: the model and its clean
images), runs registered defenses (``badnets.defenses.registry``) and writes its results into a folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from badnets._io import ensure_writable_dir, save_weights, write_json, write_text
from badnets.audit import AuditSpec, defender_setup
from badnets.data import ImageDataset
from badnets.data.inputs import read_inputs
from badnets.defenses.interface import DefenseOptions, RepairRecord
from badnets.defenses.registry import defense_names, input_screen, repair_method, training_data_screen
from badnets.defenses.representations import ManifestScore, SampleFlags
from badnets.errors import ConfigError, DataError
from badnets.models.loading import Normalized
from badnets.train import predict

__all__ = [
    "GuardResult",
    "RepairResult",
    "ScreenedSet",
    "TrainingSetScreen",
    "guard_inputs",
    "read_training_set",
    "repair_model",
    "repaired",
    "screen_training_set",
]


@dataclass(frozen=True)
class GuardResult:
    """What ``guard_inputs`` found: ``flagged`` of ``n`` inputs, by ``screen`` with its fitted settings."""

    screen: str
    flagged: int
    n: int
    score_name: str
    suspicious_when: str
    threshold: float
    frr: float


def guard_inputs(
    spec: AuditSpec, inputs: Path, out_dir: Path, *, screen: str = "strip", frr: float = 0.01
) -> GuardResult:
    """Screen ``inputs`` (a folder of images, a ``.safetensors`` file with ``images``, or a ``.npy``) with the
    input screen ``screen`` fitted on the defender's clean images at false-rejection rate ``frr``; write
    ``scores.csv`` (one row per input: score, flagged, predicted class) and ``results.json`` to ``out_dir``."""
    sample, model = defender_setup(spec)
    images, names = read_inputs(inputs, sample.shape)
    fitted = input_screen(screen, DefenseOptions(seed=spec.seed, frr=frr)).fit(model, sample.clean)
    scores = fitted.scores(images)
    flagged = fitted.flagged(scores)
    predicted = predict(model, images)
    rows = [
        {"input": n, fitted.score_name: float(s), "flagged": bool(f), "predicted": sample.classes[int(p)]}
        for n, s, f, p in zip(names, scores, flagged, predicted, strict=True)
    ]
    ensure_writable_dir(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_dir / "scores.csv", buffer.getvalue())
    settings = fitted.to_json()
    write_json(
        out_dir / "results.json", {screen: settings, "flagged": int(flagged.sum()), "n": len(rows), "inputs": rows}
    )
    return GuardResult(
        screen,
        int(flagged.sum()),
        len(rows),
        fitted.score_name,
        fitted.suspicious_when,
        float(settings["threshold"]),
        frr,
    )


@dataclass(frozen=True)
class TrainingSetScreen:
    """One training-data screen's flags, and (when the poison manifest is known) how they score against it."""

    flags: SampleFlags
    against_manifest: ManifestScore | None


@dataclass(frozen=True)
class ScreenedSet:
    n: int
    screens: tuple[TrainingSetScreen, ...]


def read_training_set(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(images, labels, is_poisoned or None)`` of a training set: a ``badnets attack`` run directory (its
    poisoned set is rebuilt from the recorded config, with the manifest) or a ``.safetensors`` file with
    ``images`` (N, C, H, W uint8), ``labels`` and optionally ``is_poisoned``.

    Raises:
        DataError: an unfinished run, another file type, or missing tensors.
    """
    if path.is_dir():
        from badnets.experiments.run_dir import attack_training_set

        if not (path / "results.json").is_file():
            raise DataError(f"{path} is not a finished `badnets attack` run (no results.json)")
        dataset, truth = attack_training_set(path)
        return dataset.images, dataset.labels, truth
    if path.suffix != ".safetensors" or not path.is_file():
        raise DataError(f"{path}: pass a run directory or a .safetensors file with 'images' and 'labels'")
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if "images" not in tensors or "labels" not in tensors:
        raise DataError(f"{path} needs 'images' and 'labels' tensors (found: {', '.join(tensors)})")
    poisoned = tensors.get("is_poisoned")
    return tensors["images"], tensors["labels"].long(), None if poisoned is None else poisoned.bool()


def screen_training_set(
    spec: AuditSpec, training_set: Path, out_dir: Path, *, screens: tuple[str, ...] | None = None
) -> ScreenedSet:
    """Run the training-data ``screens`` (default: every registered one) on ``training_set``
    (``read_training_set``); write ``flagged.csv`` (every sample any screen flagged) and ``results.json``."""
    sample, model = defender_setup(spec)
    images, labels, truth = read_training_set(training_set)
    if tuple(images.shape[1:]) != sample.shape:
        raise ConfigError(
            f"the training set's images are {tuple(images.shape[1:])}, the dataset {spec.dataset!r} has {sample.shape}"
        )
    options = DefenseOptions(seed=spec.seed)
    found = []
    for name in screens or defense_names("training-data"):
        flags = training_data_screen(name, options).screen(model, images, labels, sample.clean)
        found.append(TrainingSetScreen(flags, None if truth is None else flags.scored_against(truth)))
    ensure_writable_dir(out_dir)
    names = [f.flags.detector for f in found]
    any_flag = torch.stack([f.flags.flagged for f in found]).any(0)
    rows = ["index,label," + ",".join(names)]
    for i in torch.nonzero(any_flag).flatten().tolist():
        rows.append(f"{i},{int(labels[i])}," + ",".join(str(int(f.flags.flagged[i])) for f in found))
    write_text(out_dir / "flagged.csv", "\n".join(rows) + "\n")
    detectors = {
        f.flags.detector: f.flags.to_json()
        | ({} if f.against_manifest is None else {"against_manifest": asdict(f.against_manifest)})
        for f in found
    }
    write_json(out_dir / "results.json", {"n": len(labels), "detectors": detectors})
    return ScreenedSet(len(labels), tuple(found))


@dataclass(frozen=True)
class AttackScores:
    """Clean accuracy on the defender's unseen test images, and the attack success rate when the attack is known."""

    clean_accuracy: float
    attack_success_rate: float | None


@dataclass(frozen=True)
class RepairResult:
    """A repaired model: what the repair did, and the scores before and after on the ``scored_on`` test images
    it never saw."""

    method: str
    record: RepairRecord
    before: AttackScores
    after: AttackScores
    scored_on: int


def _known_attack_scorer(model: str, test: ImageDataset) -> Callable[[torch.nn.Module], AttackScores]:
    """Clean accuracy on ``test``, plus the attack success rate when ``model`` is a run whose attack is recorded."""
    from badnets.experiments.attack import evaluate_attack
    from badnets.experiments.run_dir import recorded_attack
    from badnets.triggers import make_stamp

    path = Path(model)
    attack = recorded_attack(path) if (path / "results.json").is_file() else None
    if attack is None or attack.baseline:
        return lambda net: AttackScores(float((predict(net, test.images) == test.labels).float().mean()), None)
    stamp = make_stamp(attack.trigger, tuple(test.images.shape[1:]))  # type: ignore[arg-type]
    poison = replace(attack.poison, num_classes=len(test.classes))

    def score(net: torch.nn.Module) -> AttackScores:
        m = evaluate_attack(net, test, stamp, poison)
        return AttackScores(m.clean_accuracy, m.attack_success_rate)

    return score


def repair_model(spec: AuditSpec, method: str, out_dir: Path, *, epochs: int = 5) -> RepairResult:
    """Repair ``spec.model`` with the registered repair ``method`` on the defender's clean images; write the
    repaired ``model.safetensors`` and ``results.json``. Clean accuracy (and, for a ``badnets attack`` run, the
    attack success rate) before and after is measured on test images the repair never saw."""
    result, model = repaired(spec, method, epochs=epochs)
    ensure_writable_dir(out_dir)
    # the weights of the model as given: the normalisation --mean/--std wrapped around it is not part of them
    save_weights(model.model if isinstance(model, Normalized) else model, out_dir / "model.safetensors")
    write_json(
        out_dir / "results.json",
        {
            "repair": result.record.to_json(),
            "before": asdict(result.before),
            "after": asdict(result.after),
            "clean_images": spec.clean_images,
        },
    )
    return result


def repaired(spec: AuditSpec, method: str, *, epochs: int = 5) -> tuple[RepairResult, torch.nn.Module]:
    """``repair_model`` without writing anything: the result and the repaired model. The repair gets
    ``spec.options`` (its trigger search's settings, its seed) with ``epochs``."""
    repair = repair_method(method, replace(spec.options, seed=spec.seed, epochs=epochs))
    sample, model = defender_setup(spec)
    score = _known_attack_scorer(spec.model, sample.rest)
    before = score(model)
    record = repair.repair(model, sample.clean)
    after = score(model)
    return RepairResult(method, record, before, after, len(sample.rest)), model
