# SPDX-License-Identifier: Apache-2.0
"""Run the supply-chain study: train (resuming), analyse, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets.data import SOURCES
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.experiments.run_dir import RUNS
from badnets.studies.supply_chain.analysis import aggregate
from badnets.studies.supply_chain.report import summary_table, write_supply_chain_report
from badnets.studies.supply_chain.results import SupplyChainResults
from badnets.studies.supply_chain.spec import SupplyChainSpec, build_jobs, replay

__all__ = ["run_supply_chain_study"]


def run_supply_chain_study(
    spec: SupplyChainSpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
) -> StudySummary[SupplyChainResults]:
    """Train the models (resuming), replay the attacks, then write ``results.json`` and ``report.md``/``.html``."""
    jobs = build_jobs(spec)
    hashes = SOURCES["mnist"].file_hashes(spec.data_dir)
    study = run_study(asdict(spec), hashes, [jobs], out_dir, workers=spec.workers, progress=progress, backend=backend)
    replayed = replay(spec, out_dir / RUNS, out_dir / "zoo-replay")
    results = study.finish(aggregate(spec, study.runs, replayed), out_dir)
    write_supply_chain_report(results, out_dir)
    return StudySummary(results, summary_table)
