# SPDX-License-Identifier: Apache-2.0
"""Cross-check our defenses against IBM ART's on the same model, side by side in one process.

For a finished ``badnets attack`` run (its poisoned training set is rebuilt from the recorded config), run ours and
ART's Activation Clustering, Spectral Signatures and STRIP, then report for each: what was flagged, scored against
the truth (the poison manifest, the known trigger), how far the two agree, and the time ratio ART ÷ ours.
ART's Neural Cleanse is implemented for Keras models only (``KerasNeuralCleanse``), so it cannot run on these
PyTorch models and is left out; the report says so.

    pip install -c constraints.txt -e '.[bench]'
    python benchmarks/art_crosscheck.py --run runs/a2o-7 --json runs/art-crosscheck.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from badnets._io import git_commit, read_json
from badnets.audit import AuditSpec, CleanSample, clean_sample
from badnets.data import ImageDataset
from badnets.defenses.activation_clustering import activation_clustering
from badnets.defenses.representations import penultimate_features
from badnets.defenses.spectral_signatures import spectral_signatures
from badnets.defenses.strip import StripGuard, StripSpec
from badnets.experiments.attack import AttackSpec
from badnets.experiments.run_dir import attack_training_set, load_model, recorded_attack
from badnets.triggers import apply_trigger, make_stamp


def _scored(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp, fp = int((flagged & truth).sum()), int((flagged & ~truth).sum())
    return {
        "flagged": int(flagged.sum()),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(int(truth.sum()), 1),
        "false_positive_rate": fp / max(int((~truth).sum()), 1),
    }


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    both, either = int((a & b).sum()), int((a | b).sum())
    return {"same_decision": float((a == b).mean()), "jaccard_of_flagged": both / either if either else 1.0}


@dataclass(frozen=True)
class Case:
    """What both sides get: a finished run's attack, model, rebuilt training set (and which samples are poisoned)
    and the defender's clean sample."""

    attack: AttackSpec
    model: torch.nn.Module
    train: ImageDataset
    truth: np.ndarray
    sample: CleanSample


def load_case(run: Path, clean_images: int) -> Case:
    attack = recorded_attack(run)
    train, truth = attack_training_set(run)
    sample = clean_sample(AuditSpec(model=str(run), dataset=attack.dataset, clean_images=clean_images))
    return Case(attack, load_model(run), train, truth.numpy(), sample)


def our_training_data_flags(case: Case) -> tuple[dict[str, tuple[np.ndarray, float]], float]:
    """Our Activation Clustering and Spectral Signatures: per detector its flags and seconds (each with the
    feature pass, as when run alone), and the seconds of both on one feature pass, as `badnets inspect-data` runs
    them (ART computes the activations per defense)."""
    # one untimed pass first: whichever side ran first would otherwise pay the kernels' one-time set-up (≈ 1.8 s)
    penultimate_features(case.model, case.train.images[:4096])
    start = time.perf_counter()
    features = penultimate_features(case.model, case.train.images)
    reference = penultimate_features(case.model, case.sample.images)
    feature_seconds = time.perf_counter() - start
    ours = {}
    for detector in (activation_clustering, spectral_signatures):
        flags = detector(features, case.train.labels, reference, case.sample.labels)
        ours[flags.detector] = (flags.flagged.numpy(), flags.seconds + feature_seconds)
    return ours, sum(seconds for _, seconds in ours.values()) - feature_seconds


def strip_inputs(case: Case, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` clean test images of the attack's source classes the defender never saw, and the same triggered."""
    rest = case.sample.rest
    clean_x = rest.images[rest.labels != case.attack.poison.target][:n]
    return clean_x, apply_trigger(clean_x, make_stamp(case.attack.trigger, case.sample.shape))


def our_strip_flags(case: Case, clean_x: torch.Tensor, triggered_x: torch.Tensor) -> tuple[np.ndarray, float]:
    """Our STRIP fitted on the defender's first 1,000 clean images: flags for clean then triggered inputs, seconds."""
    start = time.perf_counter()
    guard = StripGuard.fit(case.model, case.sample.images[:1000], StripSpec(frr=0.01))
    flags = np.concatenate([guard.flagged(guard.scores(x)).numpy() for x in (clean_x, triggered_x)])
    return flags, time.perf_counter() - start


def crosscheck(run: Path, clean_images: int = 2000) -> dict[str, Any]:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.defences.transformer.poisoning import STRIP
    from art.estimators.classification import PyTorchClassifier

    case = load_case(run, clean_images)
    model, train, truth, sample = case.model, case.train, case.truth, case.sample
    k = len(sample.classes)
    classifier = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=sample.shape,
        nb_classes=k,
        clip_values=(0.0, 1.0),
    )
    x_train = train.images.float().div(255).numpy()
    y_train = np.eye(k, dtype=np.float32)[train.labels.numpy()]
    out: dict[str, Any] = {
        "run": str(run),
        "model_git_commit": read_json(run / "run.json").get("git_commit"),  # the code that trained the model
        "git_commit": git_commit(),  # the code that ran this cross-check
        "n_train": len(truth),
        "poisoned": int(truth.sum()),
    }

    ours, both_ours = our_training_data_flags(case)

    start = time.perf_counter()
    ac = ActivationDefence(classifier, x_train, y_train)
    _, is_clean = ac.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
    art_ac = (np.asarray(is_clean) == 0, time.perf_counter() - start)
    start = time.perf_counter()
    share = float(truth.mean())
    spectral = SpectralSignatureDefense(classifier, x_train, y_train, expected_pp_poison=share, batch_size=256)
    _, is_clean = spectral.detect_poison()
    art_spectral = (np.asarray(is_clean) == 0, time.perf_counter() - start)

    for name, art in (("activation_clustering", art_ac), ("spectral_signatures", art_spectral)):
        mine, seconds = ours[name]
        out[name] = {
            "ours": {**_scored(mine, truth), "seconds": seconds},
            "art": {**_scored(art[0], truth), "seconds": art[1]},
            "agreement": _agreement(mine, art[0]),
            "art_time_over_ours": art[1] / seconds,
        }

    out["both_training_data_detectors"] = {
        "ours_seconds": both_ours,
        "art_seconds": art_ac[1] + art_spectral[1],
        "art_time_over_ours": (art_ac[1] + art_spectral[1]) / both_ours,
    }

    clean_x, triggered_x = strip_inputs(case)
    ours_flags, ours_seconds = our_strip_flags(case, clean_x, triggered_x)
    start = time.perf_counter()
    probabilities = PyTorchClassifier(  # ART's STRIP takes the entropy of the outputs: give it probabilities
        model=torch.nn.Sequential(model, torch.nn.Softmax(dim=1)),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=sample.shape,
        nb_classes=k,
        clip_values=(0.0, 1.0),
    )
    strip = STRIP(probabilities)()
    strip.mitigate(sample.images[:1000].float().div(255).numpy())
    both = torch.cat([clean_x, triggered_x]).float().div(255).numpy()
    art_flags = strip.predict(both).sum(axis=1) == 0  # ART abstains (an all-zero row) on inputs it flags
    art_seconds = time.perf_counter() - start
    is_triggered = np.concatenate([np.zeros(len(clean_x), bool), np.ones(len(triggered_x), bool)])
    out["strip"] = {
        "ours": {**_scored(ours_flags, is_triggered), "seconds": ours_seconds},
        "art": {**_scored(art_flags, is_triggered), "seconds": art_seconds},
        "agreement": _agreement(ours_flags, art_flags),
        "art_time_over_ours": art_seconds / ours_seconds,
    }
    out["neural_cleanse"] = "not compared: ART implements Neural Cleanse for Keras models only (KerasNeuralCleanse)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `badnets attack` run directory")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = crosscheck(args.run)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
