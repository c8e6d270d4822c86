# SPDX-License-Identifier: Apache-2.0
"""Re-render any study or attack-run directory from its ``results.json`` (``badnets report DIR``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from badnets._io import read_json, write_text
from badnets.errors import ConfigError
from badnets.report._format import md_table, target_cells
from badnets.report.attack import attack_report_md
from badnets.studies.defenses.report import write_defense_report
from badnets.studies.mnist.report import write_mnist_report
from badnets.studies.photos.report import write_photo_report
from badnets.studies.supply_chain.report import write_supply_chain_report
from badnets.studies.traffic.report import write_traffic_report
from badnets.studies.transfer.report import write_transfer_report

__all__ = ["RENDERERS", "kind_of", "readme_with_tables", "render_directory", "targets_markdown"]


def _write_attack_report(results: Mapping[str, Any], out: Path) -> None:
    write_text(out / "report.md", attack_report_md(results))


# What a results.json holds, told by a key only that kind writes, and how to render it.
RENDERERS: dict[str, tuple[str, Callable[[Mapping[str, Any], Path], None]]] = {
    "mnist": ("all_to_all", write_mnist_report),
    "traffic": ("detector", write_traffic_report),
    "photos": ("road_photos", write_photo_report),
    "transfer": ("badnet_by_k", write_transfer_report),
    "defenses": ("repair", write_defense_report),
    "supply-chain": ("replay", write_supply_chain_report),
    "attack": ("metrics", _write_attack_report),
}


def kind_of(results: Mapping[str, Any]) -> str:
    """Which study (or ``attack`` for one run) wrote ``results``.

    Raises:
        ConfigError: none of them did.
    """
    kinds = [kind for kind, (key, _) in RENDERERS.items() if key in results]
    if len(kinds) != 1:
        raise ConfigError(
            f"these results are not from a study or attack run ({', '.join(RENDERERS)}); an audit's report is "
            "written by the audit itself"
        )
    return kinds[0]


def render_directory(directory: Path | str) -> str:
    """Rewrite the reports in ``directory`` from its ``results.json``; returns the kind it rendered.

    Raises:
        ConfigError: no readable ``results.json``, or results of no known kind.
    """
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass a study or run directory (it holds results.json)")
    try:
        results = read_json(path)
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); regenerate it with the study's command") from None
    if not isinstance(results, dict):
        raise ConfigError(f"{path} holds no results object; regenerate it with the study's command")
    kind = kind_of(results)
    RENDERERS[kind][1](results, Path(directory))
    return kind


def targets_markdown(results: Mapping[str, Any], marks: tuple[str, str] = ("yes", "**no**")) -> str:
    """A study's targets as a Markdown table: target, paper, our limit, ours (± its 95% interval), met."""
    rows = [target_cells(t, results["spec"]["quick"], marks) for t in results["targets"]]
    return md_table(["target", "paper", "our limit", "ours (± 95% interval)", "met"], rows)


_MARKER = re.compile(r"<!-- targets: (\S+) -->\n(\|.*?\n)(?=\n|\Z)", re.S)


def readme_with_tables(readme: str, root: Path) -> str:
    """``readme`` with the table after each ``<!-- targets: docs/results/NAME -->`` line re-rendered from that
    folder's ``results.json`` (``make readme`` writes it; a test checks the README is unchanged by it)."""

    def render(match: re.Match[str]) -> str:
        results = read_json(root / match.group(1) / "results.json")
        return f"<!-- targets: {match.group(1)} -->\n{targets_markdown(results)}"

    return _MARKER.sub(render, readme)
