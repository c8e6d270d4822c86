# SPDX-License-Identifier: Apache-2.0
"""The audit's report card: verdict, suspected target, the recovered triggers and the per-class evidence."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from badnets.audit_result import CALIBRATED, VERDICT_PROBABILITY
from badnets.defenses.neural_cleanse import FEW_CLASSES, NeuralCleanseRecord
from badnets.defenses.stimulation import StimulationRecord
from badnets.records import from_json
from badnets.report import plots
from badnets.report._doc import Block, Heading, Image, Para, Table, write_report

if TYPE_CHECKING:
    from badnets.audit_result import AuditResult
    from badnets.defenses.neural_cleanse import NeuralCleanseResult

__all__ = ["render_audit_report", "write_audit_report"]


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _source_name(sources: Sequence[int | None] | None, k: int, classes: Sequence[str]) -> str:
    """Where class ``k``'s smallest trigger was found from: all classes, one source, or nowhere (not searched)."""
    if sources is None:
        return "all"
    source = sources[k]
    return "—" if source is None else classes[source]


def _trigger_figure(
    cleanse: NeuralCleanseResult, images: torch.Tensor, classes: Sequence[str], out: Path, suspected: int | None
) -> None:
    """Per class: the recovered mask, mask × pattern, and one clean image of another class with it stamped; and
    the ``suspected`` class's trigger alone."""
    example = images[0].float() / 255.0
    rows: dict[str, list[tuple[torch.Tensor, str]]] = {"mask": [], "mask × pattern": [], "stamped": []}
    for k, name in enumerate(classes):
        mask, pattern = cleanse.masks[k], cleanse.patterns[k]
        l1 = float(cleanse.l1[k])
        caption = (
            f"{name}: not searched" if math.isnan(l1) else f"{name}: L1 {l1:.1f}, AI {cleanse.anomaly_index[k]:.1f}"
        )
        rows["mask"].append((_as_uint8(mask), caption))
        rows["mask × pattern"].append((_as_uint8(mask * pattern), caption))
        rows["stamped"].append((_as_uint8((1 - mask) * example + mask * pattern), f"→ {name}?"))
    plots.plot_image_grid(rows, out / "triggers.png", "Neural Cleanse: the smallest trigger found for each class")
    if suspected is not None:
        k = suspected
        plots.plot_image_grid(
            {"recovered": [(_as_uint8(cleanse.masks[k] * cleanse.patterns[k]), classes[k])]},
            out / "recovered_trigger.png",
            cell_inches=2.5,
        )


_EVIDENCE = {
    "agrees": "agrees: flags the same target",
    "disagrees": "disagrees: flags another class, or a model the deciding detector passes",
    "silent": "silent: flags nothing",
}


def _decided(result: AuditResult) -> str:
    if result.decided_by == CALIBRATED:
        return (
            f"decided by the calibrated backdoor probability (backdoored from {VERDICT_PROBABILITY:.2f}, suspecting "
            "the class of the smallest recovered trigger); the detectors are its evidence"
        )
    return f"decided by `{result.decided_by}`; the other detectors are evidence beside it"


def _summary(result: AuditResult) -> list[Block]:
    classes = result.model.classes
    head = f"**{result.verdict.upper()}**" + (
        f", suspected target class **{result.suspected_target_name}**" if result.suspected_target is not None else ""
    )
    rows = []
    for name, found in result.detectors.items():
        role = "decides" if name == result.decided_by else _EVIDENCE[result.evidence[name]]
        rows.append(
            [
                f"`{name}`",
                role,
                "—" if found.suspected_target is None else classes[found.suspected_target],
                f"{found.score:.2f} ({found.score_name})",
                f"{found.seconds:.1f} s",
            ]
        )
    shape = "×".join(map(str, result.model.input))
    return [
        Heading(f"Backdoor audit: {result.model.spec}", 1),
        Para(
            f"Verdict: {head}, {_decided(result)}. "
            f"{result.clean_images} clean images of `{result.config['dataset']}` ({shape}); "
            f"{result.seconds:.0f} s."
        ),
        Para(
            f"Backdoor probability: **{result.backdoor_probability:.2f}** (the audit's statistics weighed by the "
            f"calibration `{result.calibration}`, fitted on an audit round of models with known truth)."
            if result.backdoor_probability is not None
            else f"Backdoor probability: none ({result.calibration})."
        ),
        Table(["detector", "role", "suspected target", "score", "time"], rows),
        Para(
            "What this can and cannot say: Neural Cleanse looks for a small input patch that sends images of "
            "one class, or of every class, to one target, and the blend search for a faint pattern over the whole "
            "image that does. They are built for all-to-one and single-target backdoors; an all-to-all backdoor "
            "(every class has its own target) "
            + (
                "shows only in how far each source class's smallest trigger lies below its others, which the "
                "backdoor probability weighs"
                if result.backdoor_probability is not None
                else "can pass as clean"
            )
            + ", and any backdoor of a model with few classes can pass (the outlier test needs others to compare "
            "with). How often the calibrated audit misses, by trigger family, mapping and dataset: "
            "`docs/results/audit-round/` in the badnets repository."
        ),
        *(
            [
                Para(
                    f"**Few classes.** With {len(classes)} classes an outlier test compares each class with "
                    f"{len(classes) - 1} others, too few for a median-absolute-deviation test to single one "
                    "out: a clean verdict here is weak evidence. Look at the per-class norms below: a trigger many "
                    "times smaller than the others' is suspicious whatever the index says."
                )
            ]
            if len(classes) < FEW_CLASSES
            else []
        ),
    ]


def _trigger_search(result: AuditResult, detector: str, has_trigger: bool) -> list[Block]:
    """The per-class table of a trigger search (Neural Cleanse, or the blend search's opacities)."""
    nc = from_json(NeuralCleanseRecord, result.detectors[detector].details)
    classes = result.model.classes
    blend = detector == "blend_search"
    _, height, width = result.model.input
    blocks: list[Block] = [
        Heading("Blend search (per class)" if blend else "Neural Cleanse (per class)"),
        Para(
            (
                "The smallest opacity at which one pattern laid over the whole image sends clean images of "
                "every class to each class (a blended trigger's shape)"
                if blend
                else "The smallest trigger found for each class"
            )
            + (
                ", over one search per source class (the source column): a backdoor that only fires on one "
                "source class shows there"
                if nc.sources is not None
                else ""
            )
            + f". The anomaly index counts robust standard deviations below the median on log norms; a class is "
            f"flagged above {nc.threshold:g}."
        ),
        Table(
            [
                "class",
                "opacity" if blend else "trigger L1 (pixels)",
                *([] if blend else ["from class"]),
                "anomaly index",
                "trigger success",
                "flagged",
            ],
            [
                [
                    name,
                    "not searched"
                    if (l1 := nc.l1[k]) is None
                    else (f"{l1 / (height * width):.3f}" if blend else f"{l1:.1f}"),
                    *([] if blend else [_source_name(nc.sources, k, classes)]),
                    f"{nc.anomaly_index[k]:.2f}",
                    f"{100 * nc.asr[k]:.0f}%",
                    "**yes**" if k in nc.flagged else "",
                ]
                for k, name in enumerate(classes)
            ],
        ),
    ]
    if not blend:
        blocks.append(
            Image("triggers.png", "Per class: the recovered mask, mask × pattern, and a clean image with it stamped.")
        )
    if has_trigger and result.suspected_target is not None:
        target = classes[result.suspected_target]
        blocks.append(Image("recovered_trigger.png", f"The trigger recovered for class {target}."))
    return blocks


def _stimulation(result: AuditResult) -> list[Block]:
    dn = from_json(StimulationRecord, result.detectors["dormant_neurons"].details)
    classes = result.model.classes
    top = sorted(dn.flips.items(), key=lambda kv: -kv[1].share)[:5]
    return [
        Heading(f"Trigger-selective neurons ({dn.layer}, {dn.units} units)"),
        Para(
            "Each unit of the last conv layer is driven to the largest activation seen on clean data; the table "
            "lists the units that send the most clean images to one class (a unit is selective from "
            f"{100 * dn.flip_threshold:.0f}%). Dormant units (mean clean activation "
            f"under {100 * dn.dormant_share:.0f}% of the busiest): " + (", ".join(map(str, dn.dormant)) or "none") + "."
        ),
        Table(
            ["unit", "sends clean images to", "share", "selective"],
            [[u, classes[f.sends_to], f"{100 * f.share:.0f}%", "**yes**" if u in dn.selective else ""] for u, f in top],
        ),
    ]


def _trigger_drawn(result: AuditResult) -> bool:
    """Whether the verdict's suspected target has a Neural Cleanse trigger to draw: the audit ran Neural Cleanse
    and searched that class (whoever decided the verdict)."""
    k = result.suspected_target
    if k is None or "neural_cleanse" not in result.detectors:
        return False
    l1 = from_json(NeuralCleanseRecord, result.detectors["neural_cleanse"].details).l1[k]
    return l1 is not None and not math.isnan(l1)


def _report_blocks(result: AuditResult) -> list[Block]:
    blocks = _summary(result)
    if "neural_cleanse" in result.detectors:
        blocks += _trigger_search(result, "neural_cleanse", _trigger_drawn(result))
    if "blend_search" in result.detectors:
        blocks += _trigger_search(result, "blend_search", False)
    if "dormant_neurons" in result.detectors:
        blocks += _stimulation(result)
    return [
        *blocks,
        Heading("Run"),
        Para("Repeat with the command in `results.json` (`manifest.argv`); the full config is there too."),
    ]


def _write_reports(result: AuditResult, out: Path) -> None:
    write_report(result.to_json(), _report_blocks(result), out, "Backdoor audit")


def write_audit_report(
    result: AuditResult, cleanse: NeuralCleanseResult | None, images: torch.Tensor, out: Path
) -> None:
    """Figures, then ``results.json`` (the source of truth), ``report.md`` and a self-contained ``report.html``.
    ``cleanse``: Neural Cleanse's result when it ran (its recovered triggers are drawn)."""
    if cleanse is not None:
        suspected = result.suspected_target if _trigger_drawn(result) else None
        _trigger_figure(cleanse, images, result.model.classes, out, suspected)
    _write_reports(result, out)


def render_audit_report(results: Mapping[str, Any], out: Path) -> None:
    """``report.md`` and ``report.html`` again from an audit's ``results.json`` (``badnets report DIR``); the
    figures the audit drew stay as they are.

    Raises:
        ValueError: ``results`` lack or mistype what an audit writes.
    """
    from badnets.audit_result import AuditResult

    try:
        result = AuditResult.from_json(results)
    except (KeyError, TypeError) as e:
        raise ValueError(f"an audit's results lack or mistype {e}") from None
    _write_reports(result, out)
