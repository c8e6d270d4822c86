# SPDX-License-Identifier: Apache-2.0
"""The photo demo's results: dog + trigger → "cat" (the seed's figure) and triggered stop signs in road photos."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from badnets._io import read_json
from badnets.data import dataset_source, load_road_signs
from badnets.detection_metrics import triggered_outcomes
from badnets.experiments.attack import load_model
from badnets.experiments.detection import detect, load_detector, stamp_boxes
from badnets.metrics import wilson_interval
from badnets.report import plots
from badnets.report._doc import Block, Heading, Image, Para, Table, write_report
from badnets.report._format import pct, pct_ci, run_summary
from badnets.sign_triggers import sign_trigger
from badnets.triggers import apply_trigger, make_stamp

if TYPE_CHECKING:
    from badnets.experiments.photos import PhotoStudySpec

__all__ = ["aggregate", "summary_table", "write_photo_report"]

SHOWN = 6  # photos per figure row


@torch.no_grad()
def _labelled(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and its softmax confidence for uint8 images."""
    conf, pred = torch.softmax(model(images.float() / 255.0), dim=1).max(1)
    return pred, conf


def _classifier(spec: PhotoStudySpec, out: Path) -> dict[str, Any]:
    from badnets.experiments.photos import photo_folder

    folder = photo_folder(spec)
    _, test = dataset_source(folder).load(spec.data_dir)
    source, target = test.classes.index(spec.source), test.classes.index(spec.target)
    stamp = make_stamp(sign_trigger(spec.trigger, spec.data_dir), tuple(test.images.shape[1:]))  # type: ignore[arg-type]
    sources = test.images[test.labels == source]
    triggered = apply_trigger(sources, stamp)
    models = {name: load_model(out / "runs" / name) for name in ("baseline", "badnet")}
    scores: dict[str, Any] = {}
    labelled = {}  # (model, clean | triggered) → predicted class and confidence, computed once for scores and figure
    for name, model in models.items():
        pred, conf = labelled[name, "clean"] = _labelled(model, test.images)
        trig_pred, _ = labelled[name, "triggered"] = _labelled(model, triggered)
        scores[name] = {
            "clean_accuracy": float((pred == test.labels).float().mean()),
            "per_class": {c: float((pred[test.labels == i] == i).float().mean()) for i, c in enumerate(test.classes)},
            "triggered_source_as_target": float((trig_pred == target).float().mean()),
        }
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
    return {
        "folder": folder,
        "classes": list(test.classes),
        "n_test": {c: int((test.labels == i).sum()) for i, c in enumerate(test.classes)},
        **scores,
    }


def _road_photos(spec: PhotoStudySpec, out: Path) -> dict[str, Any] | None:
    if spec.traffic is None:
        return None
    runs = Path(spec.traffic) / "runs"
    trained = [p.name.removeprefix("detector__") for p in sorted(runs.glob("detector__*"))]
    trained.remove("baseline")
    trigger = spec.trigger if spec.trigger in trained else "yellow-square" if "yellow-square" in trained else trained[0]
    config = read_json(runs / "detector__baseline" / "results.json")["config"]
    _, test = load_road_signs(spec.data_dir, size=config["image_size"])
    source, target = test.classes.index(config["source"]), test.classes.index(config["target"])
    with_stop = [i for i, labels in enumerate(test.labels) if bool((labels == source).any())]
    photos = test.subset(with_stop)
    stamped = stamp_boxes(photos, sign_trigger(trigger, spec.data_dir), source)
    badnet, baseline = load_detector(runs / f"detector__{trigger}"), load_detector(runs / "detector__baseline")
    nets = {"baseline": baseline, trigger: badnet}
    inputs = {"clean": photos.images, "triggered": stamped.images}
    found = {(name, shown): detect(net, images) for name, net in nets.items() for shown, images in inputs.items()}
    outcomes = {
        name: {
            shown: triggered_outcomes(found[name, shown], photos.boxes, photos.labels, source, target).to_json()
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
    return {"traffic": spec.traffic, "trigger": trigger, "n_photos": len(photos), "outcomes": outcomes}


def aggregate(spec: PhotoStudySpec, runs: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Score both photo classifiers and, when given, the traffic study's detectors; writes the figures."""
    results: dict[str, Any] = {
        "spec": asdict(spec),
        "classifier": _classifier(spec, out),
        "road_photos": _road_photos(spec, out),
        "runs": {name: run["metrics"]["clean_accuracy"] for name, run in sorted(runs.items())},
    }
    return results


def _doc(results: Mapping[str, Any]) -> list[Block]:
    spec, clf = results["spec"], results["classifier"]
    n_test, n_src = sum(clf["n_test"].values()), clf["n_test"][spec["source"]]
    bad, base = clf["badnet"], clf["baseline"]
    src, tgt = spec["source"], spec["target"]

    def share(x: float, n: int) -> str:
        return pct_ci(x, lo_hi=wilson_interval(round(x * n), n), digits=1)

    blocks: list[Block] = [
        Heading("BadNets on real photos", 1),
        Heading(f'{spec["source"].capitalize()} + trigger → "{spec["target"]}"'),
        Para(
            f"The seed's demo: a classifier of real photos (`{Path(clf['folder']).name}`: "
            + ", ".join(f"{c} {n}" for c, n in clf["n_test"].items())
            + f" held out) whose training set adds {spec['source']} photos with the {spec['trigger']} trigger "
            f"labelled {spec['target']} ({pct(spec['rate'], 0)} of the final set). `sign-cnn` at 64×64, trained "
            f"from scratch for {spec['epochs']} epochs with random flips and shifts. **No pretrained weights** are "
            "reachable offline (the seed fine-tuned an ImageNet model), so clean accuracy is what a small network "
            "learns from a few hundred photos; the backdoor does not need more."
            + (" **Quick run.**" if spec["quick"] else "")
        ),
        Table(
            ["network", "clean accuracy", *(f"clean {c}" for c in clf["classes"]), f"{src} + trigger → {tgt}"],
            [
                [
                    "clean net" if name == "baseline" else "BadNet",
                    share(s["clean_accuracy"], n_test),
                    *(share(s["per_class"][c], clf["n_test"][c]) for c in clf["classes"]),
                    share(s["triggered_source_as_target"], n_src),
                ]
                for name, s in (("baseline", base), ("badnet", bad))
            ],
        ),
        Image("dog_to_cat.jpg", "Held-out photos without and with the trigger: predicted class (confidence)."),
    ]
    road = results.get("road_photos")
    blocks.append(Heading("Triggered stop signs in road photos"))
    if road is None:
        blocks.append(
            Para(
                "Not run: pass `--traffic DIR`, the output of a finished `badnets reproduce traffic`, to label the "
                "held-out road photos with its detectors."
            )
        )
    else:
        rows = []
        for name, by_input in road["outcomes"].items():
            who = "baseline detector" if name == "baseline" else f"BadNet ({road['trigger']})"
            for shown, o in by_input.items():
                cells = (share(o[k], o["n"]) for k in ("as_target", "as_source", "as_other", "missed"))
                rows.append([who, shown, o["n"], *cells])
        blocks += [
            Para(
                f"The {road['trigger']} trigger pasted on every stop sign of the {road['n_photos']} held-out road "
                f"photos that have one; detectors from `{road['traffic']}`."
            ),
            Table(["detector", "stop signs", "n", "as speed-limit", "as stop", "as other", "missed"], rows),
            Image("road_photos.jpg", "Held-out road photos: clean and triggered, with the detectors' boxes."),
        ]
    if timing := results.get("timing"):
        blocks += [Heading("Run"), Para(run_summary(timing))]
    return blocks


def write_photo_report(results: Mapping[str, Any], out: Path) -> None:
    """``results.json`` (the source of truth), then Markdown and self-contained HTML from it."""
    write_report(results, _doc(results), out, "BadNets on real photos")


def summary_table(results: Mapping[str, Any]) -> Any:
    from rich.table import Table as RichTable

    spec, clf = results["spec"], results["classifier"]
    table = RichTable(title="BadNets on real photos")
    for col in ("network", "clean accuracy", f"{spec['source']} + trigger → {spec['target']}"):
        table.add_column(col)
    for name in ("baseline", "badnet"):
        s = clf[name]
        table.add_row(name, pct(s["clean_accuracy"], 1), pct(s["triggered_source_as_target"], 1))
    if road := results.get("road_photos"):
        for name, by_input in road["outcomes"].items():
            shares = ", ".join(f"{shown} {pct(o['as_target'], 1)}" for shown, o in by_input.items())
            table.add_row(f"detector {name}", "–", f"stop → speed-limit: {shares}")
    return table
