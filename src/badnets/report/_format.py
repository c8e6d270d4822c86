# SPDX-License-Identifier: Apache-2.0
"""Number formatting shared by every report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from badnets.records import StudyTiming, Target

__all__ = [
    "TARGET_HEADER",
    "md_table",
    "narrow_signs_left_clean",
    "pct",
    "pct_ci",
    "pt_ci",
    "run_summary",
    "share_ci",
    "target_cells",
    "target_rows",
    "targets_table",
]


def pct(x: float | None, digits: int = 2) -> str:
    """0.0123 → ``1.23%``; None/NaN → ``–``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.{digits}f}%"


def pct_ci(mean: float, half: float | None = None, lo_hi: Sequence[float] | None = None, digits: int = 2) -> str:
    """``0.52% ± 0.04`` (t-interval half-width) or ``0.52% [0.40, 0.66]`` (Wilson bounds)."""
    if half is not None and not math.isnan(half):
        return f"{pct(mean, digits)} ± {100 * half:.{digits}f}"
    if lo_hi is not None:
        return f"{pct(mean, digits)} [{100 * lo_hi[0]:.{digits}f}, {100 * lo_hi[1]:.{digits}f}]"
    return pct(mean, digits)


def share_ci(k: int, n: int, digits: int = 1) -> str:
    """``k`` of ``n`` as a percentage with its Wilson 95% interval: ``72.2% [49.1, 87.5] (13/18)``."""
    from badnets.metrics import wilson_interval

    if not n:
        return "none counted (0/0)"
    return f"{pct_ci(k / n, lo_hi=wilson_interval(k, n), digits=digits)} ({k}/{n})"


def pt_ci(mean: float, half: float, digits: int = 2) -> str:
    """A difference of fractions in points, with its 95% interval when there is one: ``-0.25 pt [-0.61, +0.11]``."""
    text = f"{100 * mean:+.{digits}f} pt"
    if half != half:
        return text
    return f"{text} [{100 * (mean - half):+.{digits}f}, {100 * (mean + half):+.{digits}f}]"


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_summary(timing: StudyTiming) -> str:
    """Wall time and the share outside compute, over every invocation that ran jobs of this study."""
    workers = timing.workers
    # a job trains one model or (the scoreboard's second phase) evaluates one
    text = f"{timing.models} jobs on {workers} worker(s). "
    if invocations := timing.invocations:
        wall = sum(i.wall_seconds for i in invocations)
        trained = sum(i.models_trained for i in invocations)
        text += (
            f"Recorded invocations: {len(invocations)}, running {trained} jobs in {wall / 60:.1f} min of wall time. "
        )
    if timing.models_trained_now:
        compute = timing.train_seconds + timing.evaluate_seconds
        # a job may report only its whole time (the job protocol asks for no more); then that is the compute
        outside = "training and evaluation compute (data loading, poisoning, writing, idle workers)"
        if not compute:
            compute, outside = timing.job_seconds, "the jobs (start-up, scheduling, idle workers)"
        share = 1 - compute / (timing.wall_seconds * workers)
        text += (
            f"The last invocation ran {timing.models_trained_now} in {timing.wall_seconds / 60:.1f} "
            f"min; {pct(share, 1)} of its wall time × workers was spent outside {outside}. "
        )
    if job_hours := timing.all_models_job_seconds / 3600:
        text += (
            f"Summed job time over all {timing.models} jobs: {job_hours:.2f} h, "
            f"i.e. {job_hours / workers:.2f} h on {workers} workers. "
        )
    return text + "Regenerate with the command in `run.json`."


TARGET_HEADER = ("target", "paper", "our limit", "ours (± 95% interval)", "met")


def target_cells(target: Target, quick: bool, marks: tuple[str, str], digits: int = 2) -> list[str]:
    """One target's cells: name, paper, our limit, ours (with its 95% interval when recorded), met (``marks``
    for yes / no; ``not resolved`` when the interval cannot decide; a quick run is not graded)."""
    limit, ours = target.limit, target.ours
    return [
        target.target,
        target.paper,
        "" if limit is None else limit if isinstance(limit, str) else pct(limit, digits),
        ours if isinstance(ours, str) else pct_ci(ours, target.ci95, digits=digits),
        "–" if quick else "not resolved" if target.met is None else marks[0] if target.met else marks[1],
    ]


def target_rows(targets: Sequence[Target], quick: bool, marks: tuple[str, str], digits: int = 2) -> list[list[str]]:
    """The rows of a targets table (``TARGET_HEADER``); the reports, the README and the terminal use them."""
    return [target_cells(t, quick, marks, digits) for t in targets]


def targets_table(targets: Sequence[Target], quick: bool, title: str, digits: int = 2) -> Any:
    """The study's targets as a rich table for the terminal (a quick run is shown but not graded)."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    table = RichTable(title=title + (" (quick run; the targets are for the full study)" if quick else " vs the paper"))
    for col in ("target", "paper", "our limit", "ours", "met"):
        table.add_column(col)
    for row in target_rows(targets, quick, ("yes", "no"), digits):
        name, paper, limit, ours, met = (escape(c) for c in row)
        colour = "green" if met == "yes" else "red" if met == "no" else "yellow"
        table.add_row(name, paper, limit, ours, f"[{colour}]{met}[/]")
    return table


def narrow_signs_left_clean(min_sign_width: int) -> str:
    """The sentence a report adds (with a leading space) when the BadNets left narrow signs clean in their
    triggered copies (``DetectorSpec.min_sign_width``); empty for the paper's recipe."""
    if not min_sign_width:
        return ""
    return f" Signs narrower than {min_sign_width} px were left clean in the triggered copies."
