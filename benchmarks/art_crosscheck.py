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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from badnets._io import git_commit, read_json
from badnets.audit import AuditSpec, clean_sample
from badnets.defenses.activation_clustering import activation_clustering
from badnets.defenses.representations import penultimate_features
from badnets.defenses.spectral_signatures import spectral_signatures
from badnets.defenses.strip import StripGuard, StripSpec
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


def crosscheck(run: Path, clean_images: int = 2000) -> dict[str, Any]:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.defences.transformer.poisoning import STRIP
    from art.estimators.classification import PyTorchClassifier

    attack = recorded_attack(run)
    model = load_model(run)
    train, truth_t = attack_training_set(run)
    sample = clean_sample(AuditSpec(model=str(run), dataset=attack.dataset, clean_images=clean_images))
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
    truth = truth_t.numpy()
    out: dict[str, Any] = {
        "run": str(run),
        "model_git_commit": read_json(run / "run.json").get("git_commit"),  # the code that trained the model
        "git_commit": git_commit(),  # the code that ran this cross-check
        "n_train": len(truth),
        "poisoned": int(truth.sum()),
    }

    # one untimed pass first: whichever side ran first would otherwise pay the kernels' one-time set-up (≈ 1.8 s)
    penultimate_features(model, train.images[:4096])
    start = time.perf_counter()
    features = penultimate_features(model, train.images)
    reference = penultimate_features(model, sample.images)
    feature_seconds = time.perf_counter() - start
    ours = {}
    for detector in (activation_clustering, spectral_signatures):
        flags = detector(features, train.labels, reference, sample.labels)
        ours[flags.detector] = (flags.flagged.numpy(), flags.seconds + feature_seconds)
    # `badnets inspect-data` runs both detectors on one feature pass; ART computes the activations per defense
    both_ours = sum(seconds for _, seconds in ours.values()) - feature_seconds

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

    stamp = make_stamp(attack.trigger, sample.shape)
    rest = sample.rest
    sources = rest.labels != attack.poison.target
    clean_x = rest.images[sources][:1000]
    triggered_x = apply_trigger(clean_x, stamp)
    start = time.perf_counter()
    guard = StripGuard.fit(model, sample.images[:1000], StripSpec(frr=0.01))
    ours_flags = np.concatenate([guard.flagged(guard.scores(x)).numpy() for x in (clean_x, triggered_x)])
    ours_seconds = time.perf_counter() - start
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
