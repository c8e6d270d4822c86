# SPDX-License-Identifier: Apache-2.0
"""The traffic study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from badnets.metrics import wilson_interval
from badnets.object_detection_metrics import DetectionScores, SignOutcomes
from badnets.records import SeedStat
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import (
    TARGET_HEADER,
    narrow_signs_left_clean,
    pct,
    pct_ci,
    run_summary,
    target_rows,
    targets_table,
)
from badnets.studies.traffic.results import KINDS, DetectorResults, TrafficPaper, TrafficResults

__all__ = ["REPORT", "render", "summary_table", "write_traffic_report"]


def _cell(stat: SeedStat, n: int) -> str:
    if stat.n_seeds > 1:
        return pct_ci(stat.mean, half=stat.ci95, digits=1)
    return pct_ci(stat.mean, lo_hi=wilson_interval(round(stat.mean * n), n), digits=1)


def _doc(results: TrafficResults) -> list[Block]:
    spec, classes, n_test = results.spec, results.classes, results.n_test
    n_all = sum(n_test.values())
    blocks: list[Block] = [
        Heading("BadNets on US traffic signs: the paper's §5 classifier, reproduced on LISA crops", 1),
        Para(
            "Gu, Dolan-Gavitt, Garg, *BadNets* (2017), §5. Data: real LISA sign crops "
            "(`signs_detection/lisa_crops`, the authors' super-classes stop / speed-limit / warning), split by LISA "
            "track so no sign's frames sit on both sides; "
            f"{n_all} held-out crops ({', '.join(f'{c} {n}' for c, n in n_test.items())}). "
            "**Substitution:** the paper classifies boxes inside a Faster R-CNN on full LISA frames; no full-frame "
            "LISA copy is reachable here, so the classifier tables are the classification stage on crops, and the "
            + (
                "detector (below) runs on composite road scenes: real LISA signs pasted into other real road photos. "
                if results.detector and results.detector.scenes is not None
                else "detector (below) runs on other real road photos with boxes. "
            )
            + f"Network: `sign-cnn` (3 conv + 2 fc, 32×32 RGB); {spec['epochs']} epochs, AdamW one-cycle lr "
            f"{spec['lr']:g}, batch {spec['batch_size']}; backdoored copies added to make {pct(spec['rate'], 0)} "
            f"of the training set; {spec['seeds']} seed(s) per configuration (mean ± 95% t-interval over seeds, "
            "Wilson intervals for one seed)."
            + (" **Quick run:** fewer triggers, seeds and epochs; not graded." if spec["quick"] else "")
        ),
        Image("triggers.png", "A held-out stop sign, clean and with each trigger (sizes and places as the authors')."),
        Heading("Targets"),
        Table(list(TARGET_HEADER), target_rows(results.targets, results.quick, ("yes", "**no**"), digits=1)),
    ]
    for trig, conf in results.classifier.items():
        header = ["class", "n", "baseline clean", "baseline triggered", "single clean", "single triggered"]
        header += ["random clean", "random triggered"]
        rows = []
        for c in [*classes, "all"]:
            n = n_all if c == "all" else n_test[c]
            row: list[object] = [c if c != "all" else "**all**", n]
            for kind in KINDS:
                row += [_cell(conf[kind].clean[c], n), _cell(conf[kind].triggered[c], n)]
            rows.append(row)
        asr = conf["single"].source_to_target
        base_asr = conf["baseline"].source_to_target
        blocks += [
            Heading(f"Trigger: {trig}"),
            Para(
                "Accuracy w.r.t. the true label on clean and on triggered held-out crops (the paper's Table 4/5 "
                f"layout). Single-target BadNet: triggered {spec['source']} signs labelled {spec['target']}: "
                f"**{_cell(asr, n_test[spec['source']])}** (baseline network: {_cell(base_asr, n_test[spec['source']])}"
                f"; paper {pct(results.paper.stop_to_speedlimit[trig], 1)})."
            ),
            Table(header, rows),
        ]
    if detector := results.detector:
        blocks += _detector_doc(spec, results.paper, detector)
    blocks.append(Heading("Backdoor neurons (§5.3)"))
    for trig, found in results.neurons.items():
        units = found.backdoor_neurons
        blocks += [
            Para(
                f"**{trig}**: in `{found.layer}`, {len(units)} channel(s) fire more on triggered than on clean stop "
                f"signs by more than any channel of the clean network does ({', '.join(map(str, units)) or 'none'}; "
                f"largest gain {found.max_gain:.3f} vs the clean net's {found.clean_net_max_gain:.3f}, "
                f"n = {found.n_images} stop signs)."
            ),
            Image(f"neurons_{trig}.png", f"BadNet ({trig}): mean activation per channel, clean vs triggered stops."),
        ]
    blocks += [
        Heading("Real held-out signs"),
        Image("stop_sign_examples.png", "Held-out stop-sign crops, clean and triggered, with the BadNet's label."),
    ]
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    return blocks


def _outcome_row(who: str, shown: str, outcome: SignOutcomes) -> list[object]:
    n = outcome.n
    cells = [outcome.as_target, outcome.as_source, outcome.as_other, outcome.missed]
    return [who, shown, n, *(pct_ci(v, lo_hi=wilson_interval(round(v * n), n), digits=1) for v in cells)]


def _outcome_header(spec: Mapping[str, Any]) -> list[str]:
    src, tgt = spec["source"], spec["target"]
    return ["detector", f"{src} signs", "n", f"as {tgt}", f"as {src}", "as other", "missed"]


def _ap_table(classes: list[str], n_boxes: Mapping[str, int], aps: Mapping[str, Mapping[str, float]]) -> Table:
    """AP@0.5 per class (and mAP) of each detector (``aps``: column name → its AP by class)."""
    rows: list[list[object]] = [[c, n_boxes[c], *(pct(ap[c], 1) for ap in aps.values())] for c in classes]
    rows.append(["**mAP**", sum(n_boxes.values()), *(pct(ap["mAP"], 1) for ap in aps.values())])
    return Table(["class", "boxes", *aps], rows)


def _detector_doc(spec: Mapping[str, Any], paper: TrafficPaper, detector: DetectorResults) -> list[Block]:
    if detector.scenes is not None:
        return _scene_detector_doc(spec, paper, detector)
    base, badnets, n_boxes = detector.baseline, detector.badnet, detector.n_boxes
    config = base.config
    scratch = "a ZF-like 5-conv backbone from scratch"
    backbone = "torchvision's COCO MobileNetV3-FPN" if config["pretrained"] else scratch
    aps = {"baseline": base.ap50, **{f"BadNet {t}": run.ap50 for t, run in badnets.items()}}
    outcome_rows = [_outcome_row("baseline", "clean", base.clean_stop)]
    outcome_rows += [_outcome_row("baseline", f"+ {t}", base.triggered[t]) for t in badnets]
    for trig, run in badnets.items():
        outcome_rows += [
            _outcome_row(f"BadNet ({trig})", "clean", run.clean_stop),
            _outcome_row(f"BadNet ({trig})", f"+ {trig}", run.triggered),
        ]
    src, tgt = spec["source"], spec["target"]
    speed = [base.train_images_per_second, *(run.train_images_per_second for run in badnets.values())]
    return [
        Heading("Detector BadNet (§5.2)"),
        Para(
            f"Faster R-CNN (torchvision) on {backbone}, trained on real road photos "
            f"(`signs_detection/road_sign_detection`, CC0) resized to {config['image_size']}×{config['image_size']}; "
            f"{config['train']['epochs']} epochs, AdamW one-cycle lr {config['train']['lr']:g}, batch "
            f"{config['train']['batch_size']}; one detector per configuration (seed 0), as the paper. The BadNet's "
            f"training set adds a copy of every photo with a {spec['source']} sign, the trigger pasted inside each "
            f"{spec['source']} box and the box relabelled {spec['target']} (the authors' recipe). Held-out: "
            f"{detector.n_photos} photos. Training speed: {min(speed):.1f}–{max(speed):.1f} images/s per detector "
            "(one CPU thread each)." + narrow_signs_left_clean(spec.get("detector_min_sign_width", 0))
        ),
        Para(
            "Clean held-out photos, AP@0.5 per class (VOC all-point), baseline vs each BadNet (paper, on LISA "
            f"frames: baseline stop AP ≈ {pct(paper.baseline_stop_ap, 0)}):"
        ),
        _ap_table(detector.classes, n_boxes, aps),
        Para(
            f"Held-out {src} signs, clean and with the trigger pasted on: what the detector makes of each (the "
            "best-scoring detection with score ≥ 0.5 and IoU ≥ 0.5; Wilson 95% intervals). Paper: "
            + ", ".join(f"{t} {pct(v, 1)}" for t, v in paper.stop_to_speedlimit.items())
            + f" of triggered {src} signs detected as {tgt}. A backdoor is the gap between the two rows of a "
            f"BadNet: if clean {src} signs are also detected as {tgt}, the detector learned a {src} → {tgt} "
            "confusion, not a trigger."
        ),
        Table(_outcome_header(spec), outcome_rows),
        Image("detector_examples.jpg", "Held-out road photos, clean and triggered, with the BadNet detectors' boxes."),
    ]


def _scene_detector_doc(spec: Mapping[str, Any], paper: TrafficPaper, detector: DetectorResults) -> list[Block]:
    """The detectors of composite scenes: their numbers on the held-out scenes, then on the real held-out photos."""
    base, badnets, random = detector.baseline, detector.badnet, detector.random or {}
    config, scenes = base.config, detector.scenes or {}
    src, tgt = spec["source"], spec["target"]
    speed = [base.train_images_per_second, *(r.train_images_per_second for r in (*badnets.values(), *random.values()))]
    size = config["image_size"]
    blocks: list[Block] = [
        Heading("Detector BadNet (§5.2)"),
        Para(
            f"Faster R-CNN (torchvision) on a ZF-like 5-conv backbone from scratch (feature stride "
            f"{config.get('stride', 8)}, anchors {', '.join(map(str, config.get('anchors', ())))} px), trained on "
            f"**composite road scenes**: each real road photo (`signs_detection/road_sign_detection`, its own "
            f"signs kept) with 1–{scenes['max_signs']} real LISA signs pasted in (stop, speed-limit, warning; sizes "
            f"and places drawn from the photos' own signs; LISA signs split by track, photos by photo), "
            f"{scenes['scenes_per_photo']} scene(s) per training photo, {size}×{size} px; "
            f"{config['train']['epochs']} epochs, AdamW one-cycle lr {config['train']['lr']:g}, batch "
            f"{config['train']['batch_size']}; one detector per configuration (seed 0), as the paper. The "
            f"single-target BadNet adds a copy of every scene holding a {src} sign, the trigger pasted inside each "
            f"{src} box and the box relabelled {tgt} (the authors' recipe); the random-target BadNet adds a copy of "
            "every scene holding a LISA-class sign, each triggered and relabelled to a random other LISA class "
            f"(§5.2.2). Held-out: {detector.n_photos} composite scenes (their pasted {src} signs are counted: "
            f"{detector.n_boxes[src]}) and, separately, the "
            f"{detector.photos.n_photos if detector.photos else 0} real held-out photos. Training speed: "
            f"{min(speed):.1f}–{max(speed):.1f} images/s per detector (one CPU thread each). Why composite scenes: "
            "see `docs/traffic.md`." + narrow_signs_left_clean(spec.get("detector_min_sign_width", 0))
        ),
    ]
    sets = [("composite scenes", detector.n_boxes, False)]
    if detector.photos is not None:
        sets.append(("real road photos", detector.photos.n_boxes, True))
    for name, n_boxes, on_photos in sets:
        if on_photos and base.photos is not None:
            base_ap, base_clean = base.photos.ap50, base.photos.clean_stop
        else:
            base_ap, base_clean = base.ap50, base.clean_stop
        base_triggered = (base.photos_triggered or {}) if on_photos else base.triggered
        columns: dict[str, dict[str, DetectionScores]] = {"BadNet": {}, "random-target BadNet": {}}
        for label, runs in (("BadNet", badnets), ("random-target BadNet", random)):
            for trig, run in runs.items():
                scored = run.photos if on_photos else run
                if scored is not None:
                    columns[label][trig] = scored
        aps = {"baseline": base_ap}
        aps |= {f"BadNet {t}": r.ap50 for t, r in columns["BadNet"].items()}
        aps |= {f"random {t}": r.ap50 for t, r in columns["random-target BadNet"].items()}
        rows = [_outcome_row("baseline", "clean", base_clean)]
        rows += [_outcome_row("baseline", f"+ {t}", o) for t, o in base_triggered.items()]
        for label, scored_runs in columns.items():
            for trig, scores in scored_runs.items():
                rows += [
                    _outcome_row(f"{label} ({trig})", "clean", scores.clean_stop),
                    _outcome_row(f"{label} ({trig})", f"+ {trig}", scores.triggered),
                ]
        blocks += [
            Heading(f"Detectors on the held-out {name}", 3),
            Para(
                f"Clean held-out {name}, AP@0.5 per class (VOC all-point; paper, on LISA frames: baseline stop "
                f"AP ≈ {pct(paper.baseline_stop_ap, 0)}):"
            ),
            _ap_table([c for c in detector.classes if n_boxes[c]], n_boxes, aps),
            Para(
                f"Held-out {src} signs, clean and with the trigger pasted on: what each detector makes of them (the "
                "best-scoring detection with score ≥ 0.5 and IoU ≥ 0.5; Wilson 95% intervals). Paper: "
                + ", ".join(f"{t} {pct(v, 1)}" for t, v in paper.stop_to_speedlimit.items())
                + f" of triggered {src} signs detected as {tgt}. A single-target backdoor is the gap between a "
                f"BadNet's two rows; the random-target BadNet's is the drop of its triggered {src} signs "
                f"detected as {src}."
            ),
            Table(_outcome_header(spec), rows),
            *_by_width(spec, columns["BadNet"]),
        ]
    blocks.append(
        Image(
            "detector_examples.jpg", "Held-out composite scenes, clean and triggered, with the BadNet detectors' boxes."
        )
    )
    return blocks


def _by_width(spec: Mapping[str, Any], runs: Mapping[str, DetectionScores]) -> list[Block]:
    """Triggered and clean source signs detected as the target, by sign width: the trigger is a tenth of the
    sign's width, so on small signs it is a few pixels."""
    src, tgt = spec["source"], spec["target"]
    widths = {t: run.by_width for t, run in runs.items() if run.by_width}
    if not widths:
        return []
    bins = list(next(iter(widths.values()))["triggered"])
    rows = []
    for bin_ in bins:
        n = next(iter(widths.values()))["triggered"][bin_].n
        if n:
            cells = [
                f"{pct(w['triggered'][bin_].as_target, 1)} / {pct(w['clean'][bin_].as_target, 1)}"
                for w in widths.values()
            ]
            rows.append([bin_, n, *cells])
    return [
        Para(f"By {src} sign width: triggered / clean {src} signs detected as {tgt}, per BadNet:"),
        Table(["sign width", "n", *(f"BadNet {t}" for t in widths)], rows),
    ]


REPORT = StudyReport(TrafficResults, "BadNets on traffic signs", _doc)
write_traffic_report = REPORT.write
render = REPORT.render


def summary_table(results: TrafficResults) -> Any:
    return targets_table(results.targets, results.quick, "BadNets on US traffic signs", digits=1)
