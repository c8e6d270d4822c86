# SPDX-License-Identifier: Apache-2.0
"""Number formatting shared by every report."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["md_table", "pct", "pct_ci"]


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


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
