# SPDX-License-Identifier: Apache-2.0
"""The photos study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from badnets.metrics import wilson_interval
from badnets.report._doc import Block, Heading, Image, Para, StudyReport, Table
from badnets.report._format import pct, pct_ci, run_summary
from badnets.studies.photos.results import PhotoResults

__all__ = ["REPORT", "render", "summary_table", "write_photo_report"]


def _doc(results: PhotoResults) -> list[Block]:
    spec, clf = results.spec, results.classifier
    n_test, n_src = sum(clf.n_test.values()), clf.n_test[spec["source"]]
    bad, base = clf.badnet, clf.baseline
    src, tgt = spec["source"], spec["target"]

    def share(x: float, n: int) -> str:
        return pct_ci(x, lo_hi=wilson_interval(round(x * n), n), digits=1)

    blocks: list[Block] = [
        Heading("BadNets on real photos", 1),
        Heading(f'{spec["source"].capitalize()} + trigger → "{spec["target"]}"'),
        Para(
            f"The seed's demo: a classifier of real photos (`{Path(clf.folder).name}`: "
            + ", ".join(f"{c} {n}" for c, n in clf.n_test.items())
            + f" held out) whose training set adds {spec['source']} photos with the {spec['trigger']} trigger "
            f"labelled {spec['target']} ({pct(spec['rate'], 0)} of the final set). `sign-cnn` at 64×64, trained "
            f"from scratch for {spec['epochs']} epochs with random flips and shifts. **No pretrained weights** are "
            "reachable offline (the seed fine-tuned an ImageNet model), so clean accuracy is what a small network "
            "learns from a few hundred photos; the backdoor does not need more."
            + (" **Quick run.**" if spec["quick"] else "")
        ),
        Table(
            ["network", "clean accuracy", *(f"clean {c}" for c in clf.classes), f"{src} + trigger → {tgt}"],
            [
                [
                    "clean net" if name == "baseline" else "BadNet",
                    share(s.clean_accuracy, n_test),
                    *(share(s.per_class[c], clf.n_test[c]) for c in clf.classes),
                    share(s.triggered_source_as_target, n_src),
                ]
                for name, s in (("baseline", base), ("badnet", bad))
            ],
        ),
        Image("dog_to_cat.jpg", "Held-out photos without and with the trigger: predicted class (confidence)."),
    ]
    road = results.road_photos
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
        for name, by_input in road.outcomes.items():
            who = "baseline detector" if name == "baseline" else f"BadNet ({road.trigger})"
            for shown, o in by_input.items():
                cells = (share(x, o.n) for x in (o.as_target, o.as_source, o.as_other, o.missed))
                rows.append([who, shown, o.n, *cells])
        blocks += [
            Para(
                f"The {road.trigger} trigger pasted on every stop sign of the {road.n_photos} held-out road "
                f"photos that have one; detectors from `{road.traffic}`, trained on {road.trained_on}."
            ),
            Table(["detector", "stop signs", "n", "as speed-limit", "as stop", "as other", "missed"], rows),
            Image("road_photos.jpg", "Held-out road photos: clean and triggered, with the detectors' boxes."),
        ]
    if results.timing:
        blocks += [Heading("Run"), Para(run_summary(results.timing))]
    return blocks


REPORT = StudyReport(PhotoResults, "BadNets on real photos", _doc)
write_photo_report = REPORT.write
render = REPORT.render


def summary_table(results: PhotoResults) -> Any:
    from rich.table import Table as RichTable

    spec, clf = results.spec, results.classifier
    table = RichTable(title="BadNets on real photos")
    for col in ("network", "clean accuracy", f"{spec['source']} + trigger → {spec['target']}"):
        table.add_column(col)
    for name, s in (("baseline", clf.baseline), ("badnet", clf.badnet)):
        table.add_row(name, pct(s.clean_accuracy, 1), pct(s.triggered_source_as_target, 1))
    if road := results.road_photos:
        for name, by_input in road.outcomes.items():
            shares = ", ".join(f"{shown} {pct(o.as_target, 1)}" for shown, o in by_input.items())
            table.add_row(f"detector {name}", "–", f"stop → speed-limit: {shares}")
    return table
