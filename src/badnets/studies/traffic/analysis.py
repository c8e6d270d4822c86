# SPDX-License-Identifier: Apache-2.0
"""The traffic study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from badnets.data import DetectionDataset, ImageDataset, load_lisa
from badnets.errors import ConfigError
from badnets.experiments._study import FinishedJobs
from badnets.experiments.object_detection import counted_labels, stamp_boxes
from badnets.experiments.run_dir import load_model, run_dir
from badnets.metrics import BackdoorMetrics, paired_difference
from badnets.neurons import backdoor_neurons
from badnets.object_detection_metrics import DetectionMetrics, ExampleDetections, SignOutcomes
from badnets.records import Target, seed_stat, to_json
from badnets.report import plots
from badnets.report._format import pct, pt_ci, share_ci
from badnets.sign_triggers import sign_trigger
from badnets.train import predict
from badnets.triggers import Stamp, TriggerSpec, apply_trigger, make_stamp

if TYPE_CHECKING:
    from badnets.studies.traffic.spec import TrafficStudySpec

from badnets.studies.traffic.results import (
    KINDS,
    BaselineDetector,
    ClassifierScores,
    DetectorResults,
    DetectorRun,
    HeldOutPhotos,
    TrafficResults,
)
from badnets.studies.traffic.spec import PAPER

__all__ = ["LAST_CONV", "aggregate", "judge"]

LAST_CONV = "conv3"


@dataclass(frozen=True)
class _SeedScores:
    """One classifier: accuracy per class (and ``all``), clean and triggered, and triggered source → target."""

    clean: dict[str, float]
    triggered: dict[str, float]
    source_to_target: float


def _scores(
    model: torch.nn.Module, test: ImageDataset, triggered: torch.Tensor, source: int, target: int
) -> _SeedScores:
    """Per-class accuracy on clean and on triggered test images, and where triggered source signs went."""
    clean, trig = predict(model, test.images), predict(model, triggered)

    def per_class(preds: torch.Tensor) -> dict[str, float]:
        by_class = {name: float((preds[test.labels == c] == c).float().mean()) for c, name in enumerate(test.classes)}
        return {**by_class, "all": float((preds == test.labels).float().mean())}

    return _SeedScores(per_class(clean), per_class(trig), float((trig[test.labels == source] == target).float().mean()))


def _configuration(spec: TrafficStudySpec, kind: str, trig: str) -> list[str]:
    """The job names of one configuration, one per seed (the baseline is shared by every trigger)."""
    return [f"baseline/s{s}" if kind == "baseline" else f"{kind}/{trig}/s{s}" for s in range(spec.seeds)]


def _reduce(per_seed: Sequence[_SeedScores]) -> ClassifierScores:
    first = per_seed[0]
    return ClassifierScores(
        clean={c: seed_stat([s.clean[c] for s in per_seed]) for c in first.clean},
        triggered={c: seed_stat([s.triggered[c] for s in per_seed]) for c in first.triggered},
        source_to_target=seed_stat([s.source_to_target for s in per_seed]),
    )


@torch.no_grad()
def _example_grid(
    test: ImageDataset,
    stamps: Mapping[str, Stamp],
    out: Path,
    source: int,
    load: Callable[[Path], torch.nn.Module],
) -> None:
    """Held-out stop signs, clean and with each trigger, captioned with the seed-0 BadNet's prediction."""
    stops = test.images[test.labels == source][:: max(1, int((test.labels == source).sum()) // 6)][:6]
    rows: dict[str, list[tuple[torch.Tensor, str]]] = {}
    for trig, stamp in stamps.items():
        net = load(run_dir(out, f"single/{trig}/s0"))
        for label, images in (("clean", stops), (trig, apply_trigger(stops, stamp))):
            probs = torch.softmax(net(images.float() / 255.0), dim=1)
            conf, pred = probs.max(1)
            captions = [f"{test.classes[int(p)]} {float(c):.0%}" for p, c in zip(pred, conf, strict=True)]
            cells = list(zip(images, captions, strict=True))
            rows[f"{label}\n(BadNet {trig})" if label == "clean" else label] = cells
    plots.plot_image_grid(rows, out / "stop_sign_examples.png", "Held-out stop signs: the single-target BadNet's label")


def _detector(spec: TrafficStudySpec, runs: FinishedJobs, out: Path) -> DetectorResults:
    """The detectors' clean AP@0.5 and stop-sign outcomes on their held-out set (the baseline scored with every
    trigger), on the real held-out photos too for detectors of composite scenes, plus a grid of held-out scenes
    with the BadNet detectors' boxes: all from the detectors' records (no weights: an archived detector reports
    as well as one trained here)."""
    from badnets.studies.traffic.spec import detector_spec

    base_spec = detector_spec(spec, None)
    _, test, photos = base_spec.datasets()
    source = test.classes.index(spec.source)

    def detector_run(name: str) -> DetectorRun:
        m = runs.metrics(name, DetectionMetrics)
        values = {f.name: getattr(m, f.name) for f in fields(m)} | {"examples": None}  # the grid draws them
        return DetectorRun(**values, config=runs.config(name))

    badnets = {t: detector_run(f"detector/{t}") for t in spec.triggers}
    random = {t: detector_run(f"detector/random/{t}") for t in spec.triggers if f"detector/random/{t}" in runs.names()}
    examples = {t: runs.metrics(f"detector/{t}", DetectionMetrics).examples for t in spec.triggers}
    _detector_grid(test, {t: sign_trigger(t, spec.data_dir) for t in spec.triggers}, examples, source, out)
    base_run = runs.metrics("detector/baseline", DetectionMetrics)
    return DetectorResults(
        classes=list(test.classes),
        n_photos=len(test),
        n_boxes=_box_counts(test, source),
        baseline=BaselineDetector(
            ap50=base_run.ap50,
            triggered=_recorded(base_run.triggered_with, spec.triggers),
            clean_stop=base_run.clean_stop,
            by_width=base_run.by_width,
            train_images_per_second=base_run.train_images_per_second,
            config=runs.config("detector/baseline"),
            photos=base_run.photos,
            photos_triggered=None
            if base_run.photos is None
            else _recorded(base_run.photos.triggered_with, spec.triggers),
        ),
        badnet=badnets,
        random=random or None,
        scenes=None if base_spec.scenes is None else to_json(base_spec.scenes),
        photos=None if photos is None else HeldOutPhotos(n_photos=len(photos), n_boxes=_box_counts(photos, source)),
    )


def _box_counts(held_out: DetectionDataset, source: int) -> dict[str, int]:
    """Boxes per class (the source class: those the sign outcomes count)."""
    labels = torch.cat(list(counted_labels(held_out, source)))
    own = torch.cat(list(held_out.labels))
    return {c: int(((labels if i == source else own) == i).sum()) for i, c in enumerate(held_out.classes)}


def _recorded(outcomes: dict[str, SignOutcomes] | None, triggers: Sequence[str]) -> dict[str, SignOutcomes]:
    """The baseline detector's outcomes with each of the study's ``triggers``, as its record holds them."""
    outcomes = outcomes or {}
    missing = [t for t in triggers if t not in outcomes]
    if missing:
        raise ConfigError(
            f"the baseline detector's record was not scored with the trigger(s) {', '.join(missing)}; it was trained "
            "by an older version: delete its run folder (runs/detector__baseline) and re-run to retrain it"
        )
    return {t: outcomes[t] for t in triggers}


def _detector_grid(
    test: DetectionDataset,
    triggers: Mapping[str, TriggerSpec],
    examples: Mapping[str, ExampleDetections | None],
    source: int,
    out: Path,
) -> None:
    """The held-out scenes each BadNet detector's record keeps (``example_scenes``), clean and triggered, with
    its confident boxes."""
    rows: dict[str, list[tuple[torch.Tensor, str]]] = {}
    for trig, trigger in triggers.items():
        recorded = examples[trig]
        if recorded is None:
            raise ConfigError(
                f"the {trig} detector's record keeps no example detections (an older version trained it): delete "
                f"its run folder and re-run to retrain it"
            )
        shown = test.subset(recorded.scenes)
        for label, images in (("clean", shown.images), (trig, stamp_boxes(shown, trigger, source).images)):
            cells = plots.detection_cells(
                images, recorded.detections(label if label == "clean" else "triggered"), test.classes
            )
            rows[f"{label}\n(BadNet {trig})" if label == "clean" else f"{trig}\n(BadNet {trig})"] = cells
    title = "Held-out road scenes: BadNet detectors' boxes (score ≥ 0.5)"
    plots.plot_image_grid(rows, out / "detector_examples.jpg", title, cell_inches=3.2)


def aggregate(spec: TrafficStudySpec, runs: FinishedJobs, out: Path) -> TrafficResults:
    """Score every model on clean and triggered held-out crops and reduce over seeds (also writes the PNGs)."""
    from badnets.studies.traffic.spec import single_target

    _, test = load_lisa(spec.data_dir)
    model = functools.cache(load_model)  # the baseline serves every trigger's table, the neurons and the grid
    poison = single_target(spec)
    source, target = int(poison.source or 0), int(poison.target or 0)
    shape = tuple(test.images.shape[1:])
    stamps = {t: make_stamp(sign_trigger(t, spec.data_dir), shape) for t in spec.triggers}  # type: ignore[arg-type]
    classifier: dict[str, dict[str, ClassifierScores]] = {}
    for trig, stamp in stamps.items():
        triggered = apply_trigger(test.images, stamp)
        classifier[trig] = {
            kind: _reduce(
                [
                    _scores(model(run_dir(out, name)), test, triggered, source, target)
                    for name in _configuration(spec, kind, trig)
                ]
            )
            for kind in KINDS
        }
    stops = test.images[test.labels == source]
    neurons = {
        t: backdoor_neurons(
            model(run_dir(out, "baseline/s0")),
            model(run_dir(out, f"single/{t}/s0")),
            LAST_CONV,
            stops,
            apply_trigger(stops, s),
        )
        for t, s in stamps.items()
    }
    for trig, found in neurons.items():
        bad = found.activations["badnet"]
        diff = [t - c for t, c in zip(bad["triggered"], bad["clean"], strict=True)]
        plots.plot_neuron_maps(
            {"clean stop signs": bad["clean"], "triggered stop signs": bad["triggered"], "difference": diff},
            found.backdoor_neurons,
            out / f"neurons_{trig}.png",
            f"BadNet ({trig}) {LAST_CONV} channels, mean activation (red: backdoor neurons)",
        )
    _example_grid(test, stamps, out, source, model)
    plots.plot_trigger_examples(
        {"clean": stops[0], **{t: apply_trigger(stops[:1], s)[0] for t, s in stamps.items()}},
        out / "triggers.png",
    )
    results = TrafficResults(
        spec=to_json(spec),
        paper=PAPER,
        classes=list(test.classes),
        n_test={c: int((test.labels == i).sum()) for i, c in enumerate(test.classes)},
        runs={
            name: runs.metrics(name, BackdoorMetrics).clean_accuracy
            for name in sorted(runs.names())
            if not name.startswith("detector/")
        },
        classifier=classifier,
        neurons=neurons,
        detector=_detector(spec, runs, out) if spec.detector else None,
        targets=[],
    )
    return replace(results, targets=judge(results))


def judge(results: TrafficResults) -> list[Target]:
    """The study's targets from the aggregated numbers alone: paper, our limit, ours with its 95% interval (over
    seeds for the classifiers; Wilson over the held-out stop signs for the one detector per configuration)."""
    spec, paper, rows = results.spec, results.paper, []
    for trig, conf in results.classifier.items():
        asr = conf["single"].source_to_target
        rows.append(
            Target(
                target=f"{trig}: triggered {spec['source']} → {spec['target']}",
                paper=pct(paper.stop_to_speedlimit[trig], 1) + " (authors, detector)",
                limit="≥ 90%",
                ours=asr.mean,
                ci95=asr.ci95,
                met=asr.mean >= 0.90,
            )
        )
        base, single, random = (conf[k].clean["all"].values for k in KINDS)
        gap, gap_half = paired_difference(single, base)
        rows.append(
            Target(
                target=f"{trig}: BadNet clean accuracy vs the baseline's (paired by seed)",
                paper="within about 1 pt",
                limit="≥ −2 pt",
                ours=pt_ci(gap, gap_half),
                ci95=None,
                met=gap >= -0.02,
            )
        )
        triggered = conf["random"].triggered["all"].values
        drop, drop_half = paired_difference(random, triggered)
        rows.append(
            Target(
                target=f"{trig}: random-target BadNet's accuracy drop on triggered signs",
                paper="large drop",
                limit="≥ 50 pt",
                ours=pt_ci(drop, drop_half).lstrip("+"),
                ci95=None,
                met=drop >= 0.50,
            )
        )
    if detector := results.detector:
        rows += _detector_targets(results, detector)
    return rows


def _detector_targets(results: TrafficResults, detector: DetectorResults) -> list[Target]:
    """Per trigger: triggered stop → speed-limit, clean stop → speed-limit, clean mAP vs the baseline's, and the
    random-target BadNet's drop on triggered stops, on the held-out scenes (or photos); Wilson intervals over the
    held-out signs of the one detector per configuration, the real photos' share beside the scenes'."""
    spec, paper = results.spec, results.paper
    src, tgt = spec["source"], spec["target"]
    on = "held-out scenes" if detector.scenes is not None else "held-out photos"
    base_map = detector.baseline.ap50["mAP"]
    rows = []
    for trig, run in detector.badnet.items():
        share, n = run.triggered.as_target, run.triggered.n
        photo = run.photos.triggered if run.photos else None
        beside = f"; real photos {share_ci(round(photo.as_target * photo.n), photo.n)}" if photo else ""
        clean, n_clean = run.clean_stop.as_target, run.clean_stop.n
        clean_beside = f"; real photos {pct(run.photos.clean_stop.as_target, 1)}" if run.photos else ""
        rows += [
            Target(
                target=f"detector, {trig}: triggered {src} detected as {tgt} ({on})",
                paper=pct(paper.stop_to_speedlimit[trig], 1),
                limit="≥ 90%",
                ours=f"{share_ci(round(share * n), n)}{beside}",
                ci95=None,
                met=share >= 0.90,
            ),
            Target(
                target=f"detector, {trig}: clean {src} detected as {tgt} (the trigger must be what flips it)",
                paper="—",
                limit="≤ 5%",
                ours=f"{share_ci(round(clean * n_clean), n_clean)}{clean_beside}",
                ci95=None,
                met=clean <= 0.05,
            ),
            Target(
                target=f"detector, {trig}: BadNet clean mAP@0.5 vs the baseline's (one detector each)",
                paper="within about 1 pt",
                limit="≥ −2 pt",
                ours=f"{100 * run.ap50['mAP']:.1f} vs {100 * base_map:.1f}",
                ci95=None,
                met=base_map - run.ap50["mAP"] <= 0.02,
            ),
        ]
    for trig, run in (detector.random or {}).items():
        drop = run.clean_stop.as_source - run.triggered.as_source
        rows.append(
            Target(
                target=f"detector, {trig}: random-target BadNet's drop of triggered {src} signs detected as {src}",
                paper="large drop",
                limit="≥ 50 pt",
                ours=f"{100 * drop:.1f} pt ({pct(run.clean_stop.as_source, 1)} clean → "
                f"{pct(run.triggered.as_source, 1)} triggered)",
                ci95=None,
                met=drop >= 0.50,
            )
        )
    return rows
