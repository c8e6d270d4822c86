# SPDX-License-Identifier: Apache-2.0
"""Re-render any study, attack-run or audit directory from its ``results.json`` (``badnets report DIR``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from badnets._io import git_commit, read_json, write_text
from badnets.errors import ConfigError
from badnets.metrics import BackdoorMetrics
from badnets.records import Target, TargetsJudged, from_json
from badnets.report._doc import StudyReport
from badnets.report._format import TARGET_HEADER, md_table, target_rows
from badnets.report.attack import attack_report_md
from badnets.report.audit import render_audit_report
from badnets.studies.audit_round import analysis as audit_round_analysis
from badnets.studies.audit_round import report as audit_round_report
from badnets.studies.defenses import analysis as defense_analysis
from badnets.studies.defenses import report as defense_report
from badnets.studies.mnist import analysis as mnist_analysis
from badnets.studies.mnist import report as mnist_report
from badnets.studies.photos import report as photo_report
from badnets.studies.supply_chain import analysis as supply_chain_analysis
from badnets.studies.supply_chain import report as supply_chain_report
from badnets.studies.traffic import analysis as traffic_analysis
from badnets.studies.traffic import report as traffic_report
from badnets.studies.transfer import analysis as transfer_analysis
from badnets.studies.transfer import report as transfer_report
from badnets.sweep import report as sweep_report

__all__ = [
    "JUDGES",
    "RENDERERS",
    "kind_of",
    "readme_with_tables",
    "rejudge_directory",
    "render_directory",
    "targets_markdown",
]


def _write_attack_report(results: Mapping[str, Any], out: Path) -> None:
    try:
        report = attack_report_md(results["config"], BackdoorMetrics.from_json(results["metrics"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"an attack run's results lack or mistype {e}") from None
    write_text(out / "report.md", report)


# What a results.json holds, told by a key only that kind writes, and how to render it.
RENDERERS: dict[str, tuple[str, Callable[[Mapping[str, Any], Path], None]]] = {
    "mnist": ("all_to_all", mnist_report.render),
    "traffic": ("detector", traffic_report.render),
    "photos": ("road_photos", photo_report.render),
    "transfer": ("badnet_by_k", transfer_report.render),
    "defenses": ("repair", defense_report.render),
    "supply-chain": ("replay", supply_chain_report.render),
    "audit-round": ("rounds", audit_round_report.render),
    "sweep": ("sweep_axes", sweep_report.render),
    "attack": ("metrics", _write_attack_report),
    "audit": ("decided_by", render_audit_report),
}


def kind_of(results: Mapping[str, Any]) -> str:
    """Which study (or ``attack`` for one run, ``audit`` for one audit) wrote ``results``.

    Raises:
        ConfigError: none of them did.
    """
    kinds = [kind for kind, (key, _) in RENDERERS.items() if key in results]
    if len(kinds) != 1:
        raise ConfigError(
            f"these results are not from a study, an attack run or an audit ({', '.join(RENDERERS)}); pass the "
            "folder a badnets command wrote"
        )
    return kinds[0]


def _read_results(directory: Path | str) -> dict[str, Any]:
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass a study or run directory (it holds results.json)")
    try:
        results = read_json(path)
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); regenerate it with the study's command") from None
    if not isinstance(results, dict):
        raise ConfigError(f"{path} holds no results object; regenerate it with the study's command")
    return results


def _parsed(render: Callable[[Mapping[str, Any], Path], None], results: Mapping[str, Any], directory: Path) -> None:
    try:
        render(results, directory)
    except ValueError as e:
        raise ConfigError(
            f"{Path(directory) / 'results.json'} does not hold what this version writes ({e}); regenerate it with "
            "the study's command (or `badnets report --rejudge` when only its targets are older)"
        ) from None


def render_directory(directory: Path | str) -> str:
    """Rewrite the reports in ``directory`` from its ``results.json``; returns the kind it rendered.

    Raises:
        ConfigError: no readable ``results.json``, results of no known kind, or of an older layout.
    """
    results = _read_results(directory)
    kind = kind_of(results)
    _parsed(RENDERERS[kind][1], results, Path(directory))
    return kind


# The studies whose targets can be judged again from a results.json: their report (it knows the results type)
# and their judge.
JUDGES: dict[str, tuple[StudyReport[Any], Callable[[Any], list[Target]]]] = {
    "defenses": (defense_report.REPORT, defense_analysis.judge),
    "mnist": (mnist_report.REPORT, mnist_analysis.judge),
    "transfer": (transfer_report.REPORT, transfer_analysis.judge),
    "traffic": (traffic_report.REPORT, traffic_analysis.judge),
    "supply-chain": (supply_chain_report.REPORT, supply_chain_analysis.judge),
    "audit-round": (audit_round_report.REPORT, audit_round_analysis.judge),
}


def rejudge_directory(directory: Path | str) -> str:
    """Judge the targets in ``directory``'s ``results.json`` again with this version's judge, from the numbers the
    file records (nothing is re-run), note that in ``targets_judged``, and re-render; returns the kind.

    Raises:
        ConfigError: no readable ``results.json``, or results of a kind without a judge here.
    """
    data = _read_results(directory)
    kind = kind_of(data)
    if kind not in JUDGES:
        raise ConfigError(f"{kind} results cannot be re-judged; the studies that can: {', '.join(JUDGES)}")
    report, judge = JUDGES[kind]
    try:
        results = from_json(report.kind, {**data, "targets": [], "targets_judged": None})
    except ValueError as e:
        raise ConfigError(f"{Path(directory) / 'results.json'} cannot be read ({e}); regenerate it") from None
    judged = replace(
        results,
        targets=judge(results),
        targets_judged=TargetsJudged(
            commit=git_commit(),
            by=f"{judge.__module__}.{judge.__name__}",
            note="targets re-judged from this file's recorded numbers after the run; the models and per-run "
            "numbers are the run's own",
        ),
    )
    report.write(judged, Path(directory))
    return kind


def targets_markdown(results: Mapping[str, Any], marks: tuple[str, str] = ("yes", "**no**")) -> str:
    """A study's targets as a Markdown table: target, paper, our limit, ours (± its 95% interval), met."""
    targets = [from_json(Target, t) for t in results["targets"]]
    return md_table(TARGET_HEADER, target_rows(targets, bool(results["spec"]["quick"]), marks))


_MARKER = re.compile(r"<!-- targets: (\S+) -->\n(\|.*?\n)(?=\n|\Z)", re.S)


def readme_with_tables(readme: str, root: Path) -> str:
    """``readme`` with the table after each ``<!-- targets: docs/results/NAME -->`` line re-rendered from that
    folder's ``results.json`` (``make readme`` writes it; a test checks the README is unchanged by it)."""

    def render(match: re.Match[str]) -> str:
        results = read_json(root / match.group(1) / "results.json")
        return f"<!-- targets: {match.group(1)} -->\n{targets_markdown(results)}"

    return _MARKER.sub(render, readme)
