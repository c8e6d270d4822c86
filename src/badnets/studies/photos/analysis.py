# SPDX-License-Identifier: Apache-2.0
"""The photos study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from badnets._io import read_json
from badnets.data import dataset_source
from badnets.experiments._study import FinishedJobs
from badnets.experiments.object_detection import DetectorSpec, detect, load_detector, stamp_boxes
from badnets.experiments.run_dir import load_model, run_dir
from badnets.metrics import BackdoorMetrics
from badnets.object_detection_metrics import triggered_outcomes
from badnets.records import from_json, to_json
from badnets.report import plots
from badnets.sign_triggers import sign_trigger
from badnets.studies.photos.results import PhotoClassifier, PhotoResults, PhotoScores, RoadPhotos
from badnets.triggers import apply_trigger, make_stamp

if TYPE_CHECKING:
    from badnets.studies.photos.spec import PhotoStudySpec

__all__ = ["SHOWN", "aggregate"]


SHOWN = 6  # photos per figure row


@torch.no_grad()
def _labelled(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and its softmax confidence for uint8 images."""
    conf, pred = torch.softmax(model(images.float() / 255.0), dim=1).max(1)
    return pred, conf


def _classifier(spec: PhotoStudySpec, out: Path) -> PhotoClassifier:
    from badnets.studies.photos.spec import photo_folder

    folder = photo_folder(spec)
    _, test = dataset_source(folder).load(spec.data_dir)
    source, target = test.classes.index(spec.source), test.classes.index(spec.target)
    stamp = make_stamp(sign_trigger(spec.trigger, spec.data_dir), tuple(test.images.shape[1:]))  # type: ignore[arg-type]
    sources = test.images[test.labels == source]
    triggered = apply_trigger(sources, stamp)
    models = {name: load_model(run_dir(out, name)) for name in ("baseline", "badnet")}
    scores: dict[str, PhotoScores] = {}
    labelled = {}  # (model, clean | triggered) → predicted class and confidence, computed once for scores and figure
    for name, model in models.items():
        pred, conf = labelled[name, "clean"] = _labelled(model, test.images)
        trig_pred, _ = labelled[name, "triggered"] = _labelled(model, triggered)
        scores[name] = PhotoScores(
            clean_accuracy=float((pred == test.labels).float().mean()),
            per_class={c: float((pred[test.labels == i] == i).float().mean()) for i, c in enumerate(test.classes)},
            triggered_source_as_target=float((trig_pred == target).float().mean()),
        )
    is_source = test.labels == source
    with_trigger = f"{spec.source} + {spec.trigger}"
    panels = (  # the clean net on triggered photos shows that the trigger alone does not make a "cat"
        (f"{spec.source}\nBadNet", sources, [t[is_source] for t in labelled["badnet", "clean"]]),
        (f"{with_trigger}\nBadNet", triggered, labelled["badnet", "triggered"]),
        (f"{with_trigger}\nclean net", triggered, labelled["baseline", "triggered"]),
    )
    rows = {}
    for label, images, (pred, conf) in panels:
        captions = [f"{test.classes[int(k)]} ({float(v):.2f})" for k, v in zip(pred[:SHOWN], conf[:SHOWN], strict=True)]
        rows[label] = list(zip(images[:SHOWN], captions, strict=True))
    plots.plot_image_grid(rows, out / "dog_to_cat.jpg", "Held-out photos: predicted class (confidence)")
    return PhotoClassifier(
        folder=folder,
        classes=list(test.classes),
        n_test={c: int((test.labels == i).sum()) for i, c in enumerate(test.classes)},
        baseline=scores["baseline"],
        badnet=scores["badnet"],
    )


def _road_photos(spec: PhotoStudySpec, out: Path) -> RoadPhotos | None:
    if spec.traffic is None:
        return None
    traffic = Path(spec.traffic)
    trained = [
        p.name.removeprefix("detector__") for p in sorted(run_dir(traffic, "detector/*").parent.glob("detector__*"))
    ]
    trained.remove("baseline")
    trigger = spec.trigger if spec.trigger in trained else "yellow-square" if "yellow-square" in trained else trained[0]
    config = read_json(run_dir(traffic, "detector/baseline") / "results.json")["config"]
    detector = replace(from_json(DetectorSpec, config, "the traffic study's baseline detector"), data_dir=spec.data_dir)
    test = detector.held_out_photos()  # in the detectors' classes: they may name a sign the photos lack
    source, target = test.classes.index(detector.source), test.classes.index(detector.target)
    with_stop = [i for i, labels in enumerate(test.labels) if bool((labels == source).any())]
    photos = test.subset(with_stop)
    stamped = stamp_boxes(photos, sign_trigger(trigger, spec.data_dir), source)
    badnet = load_detector(run_dir(traffic, f"detector/{trigger}"))
    baseline = load_detector(run_dir(traffic, "detector/baseline"))
    nets = {"baseline": baseline, trigger: badnet}
    inputs = {"clean": photos.images, "triggered": stamped.images}
    found = {(name, shown): detect(net, images) for name, net in nets.items() for shown, images in inputs.items()}
    outcomes = {
        name: {
            shown: triggered_outcomes(found[name, shown], photos.boxes, photos.labels, source, target)
            for shown in inputs
        }
        for name in nets
    }
    panels = (
        (f"clean\nBadNet ({trigger})", trigger, "clean"),
        (f"triggered\nBadNet ({trigger})", trigger, "triggered"),
        ("triggered\nbaseline detector", "baseline", "triggered"),
    )
    rows = {
        label: plots.detection_cells(inputs[shown][:SHOWN], found[name, shown][:SHOWN], test.classes)
        for label, name, shown in panels
    }
    title = "Held-out road photos with stop signs: detections (score ≥ 0.5)"
    plots.plot_image_grid(rows, out / "road_photos.jpg", title, cell_inches=3.2)
    trained_on = "road photos" if detector.scenes is None else "composite road scenes"
    return RoadPhotos(
        traffic=spec.traffic, trigger=trigger, n_photos=len(photos), outcomes=outcomes, trained_on=trained_on
    )


def aggregate(spec: PhotoStudySpec, runs: FinishedJobs, out: Path) -> PhotoResults:
    """Score both photo classifiers and, when given, the traffic study's detectors; writes the figures."""
    return PhotoResults(
        spec=to_json(spec),
        classifier=_classifier(spec, out),
        road_photos=_road_photos(spec, out),
        runs={name: runs.metrics(name, BackdoorMetrics).clean_accuracy for name in sorted(runs.names())},
    )
