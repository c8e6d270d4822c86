# SPDX-License-Identifier: Apache-2.0
"""Run the audit round: train every round's models (resuming), write the manifest, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from badnets._io import write_json
from badnets.data import dataset_source
from badnets.experiments._jobs import Backend
from badnets.experiments._study import StudySummary, run_study
from badnets.experiments.archive import RecordArchive
from badnets.report.plots import plot_roc
from badnets.studies.audit_round.analysis import aggregate, roc_curves
from badnets.studies.audit_round.report import ROC_FIGURE, summary_table, write_audit_round_report
from badnets.studies.audit_round.results import AuditRoundResults
from badnets.studies.audit_round.spec import PHASES_PER_CHUNK, AuditRoundSpec, round_phases

__all__ = ["run_audit_round"]


def run_audit_round(
    spec: AuditRoundSpec,
    out_dir: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    backend: Backend | None = None,
    archive: Path | None = None,
) -> StudySummary[AuditRoundResults]:
    """Train the rounds' models, then audit each, then repair the repair round's backdoors (resuming all
    three; by chunks of models with ``spec.chunk``), then write ``results.json`` (every model's ground truth and
    scores, the calibration fitted on the train round, the other rounds' detection scores), ``report.md``/``.html``
    and ``calibration.json``.

    ``archive``: a folder that keeps the records (no weights) of every model trained, audited and repaired, each
    chunk's as soon as it is done, and restores them into ``out_dir`` first, so that a round carried across
    machines that do not share ``out_dir`` (e.g. committed to git) never repeats a finished model.
    """
    hashes: dict[str, str] = {}
    for name in spec.datasets:
        hashes |= dataset_source(name).file_hashes(spec.data_dir)
    phases = round_phases(spec)
    kept = RecordArchive(archive) if archive is not None else None
    if kept is not None:
        kept.restore([job for phase in phases for job in phase], out_dir)

    def chunk_done(index: int) -> None:
        if kept is not None and (index + 1) % PHASES_PER_CHUNK == 0:  # the chunk's last phase is done
            chunk = phases[index + 1 - PHASES_PER_CHUNK : index + 1]
            kept.keep([job for phase in chunk for job in phase], out_dir)

    study = run_study(
        asdict(spec),
        hashes,
        phases,
        out_dir,
        workers=spec.workers,
        progress=progress,
        backend=backend,
        phase_done=chunk_done,
    )
    results = study.finish(aggregate(spec, study.runs), out_dir)
    if results.scores:
        plot_roc(roc_curves(results), out_dir / ROC_FIGURE)
    write_audit_round_report(results, out_dir)
    if results.calibration is not None:  # what badnets ships as badnets/calibrations/audit.json
        write_json(out_dir / "calibration.json", results.calibration)
    return StudySummary(results, summary_table)
