# SPDX-License-Identifier: Apache-2.0
"""The traffic study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from badnets.metrics import wilson_interval
from badnets.object_detection_metrics import SignOutcomes
from badnets.records import SeedStat
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import TARGET_HEADER, pct, pct_ci, run_summary, target_rows, targets_table
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
            "detector (below) runs on other real road photos with boxes. "
            f"Network: `sign-cnn` (3 conv + 2 fc, 32×32 RGB); {spec['epochs']} epochs, AdamW one-cycle lr "
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


def _detector_doc(spec: Mapping[str, Any], paper: TrafficPaper, detector: DetectorResults) -> list[Block]:
    base, badnets, n_boxes = detector.baseline, detector.badnet, detector.n_boxes
    config = base.config
    scratch = "a ZF-like 5-conv backbone from scratch"
    backbone = "torchvision's COCO MobileNetV3-FPN" if config["pretrained"] else scratch
    ap_rows = [
        [c, n_boxes[c], pct(base.ap50[c], 1), *(pct(run.ap50[c], 1) for run in badnets.values())]
        for c in detector.classes
    ]
    ap_rows.append(["**mAP**", sum(n_boxes.values()), pct(base.ap50["mAP"], 1)])
    ap_rows[-1] += [pct(run.ap50["mAP"], 1) for run in badnets.values()]

    def outcome_row(who: str, shown: str, outcome: SignOutcomes) -> list[object]:
        n = outcome.n
        cells = [outcome.as_target, outcome.as_source, outcome.as_other, outcome.missed]
        return [who, shown, n, *(pct_ci(v, lo_hi=wilson_interval(round(v * n), n), digits=1) for v in cells)]

    outcome_rows = [outcome_row("baseline", "clean", base.clean_stop)]
    outcome_rows += [outcome_row("baseline", f"+ {t}", base.triggered[t]) for t in badnets]
    for trig, run in badnets.items():
        outcome_rows += [
            outcome_row(f"BadNet ({trig})", "clean", run.clean_stop),
            outcome_row(f"BadNet ({trig})", f"+ {trig}", run.triggered),
        ]
    src, tgt = spec["source"], spec["target"]
    outcome_header = ["detector", f"{src} signs", "n", f"as {tgt}", f"as {src}", "as other", "missed"]
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
            "(one CPU thread each)."
        ),
        Para(
            "Clean held-out photos, AP@0.5 per class (VOC all-point), baseline vs each BadNet (paper, on LISA "
            f"frames: baseline stop AP ≈ {pct(paper.baseline_stop_ap, 0)}):"
        ),
        Table(["class", "boxes", "baseline", *(f"BadNet {t}" for t in badnets)], ap_rows),
        Para(
            f"Held-out {src} signs, clean and with the trigger pasted on: what the detector makes of each (the "
            "best-scoring detection with score ≥ 0.5 and IoU ≥ 0.5; Wilson 95% intervals). Paper: "
            + ", ".join(f"{t} {pct(v, 1)}" for t, v in paper.stop_to_speedlimit.items())
            + f" of triggered {src} signs detected as {tgt}. A backdoor is the gap between the two rows of a "
            f"BadNet: if clean {src} signs are also detected as {tgt}, the detector learned a {src} → {tgt} "
            "confusion, not a trigger."
        ),
        Table(
            outcome_header,
            outcome_rows,
        ),
        Image("detector_examples.jpg", "Held-out road photos, clean and triggered, with the BadNet detectors' boxes."),
    ]


REPORT = StudyReport(TrafficResults, "BadNets on traffic signs", _doc)
write_traffic_report = REPORT.write
render = REPORT.render


def summary_table(results: TrafficResults) -> Any:
    return targets_table(results.targets, results.quick, "BadNets on US traffic signs", digits=1)
