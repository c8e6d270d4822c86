# SPDX-License-Identifier: Apache-2.0
"""Reports: ``results.json`` is the source of truth; Markdown, HTML and PNG plots are rendered from it."""

from __future__ import annotations

from badnets.report._format import pct, pct_ci

__all__ = ["pct", "pct_ci"]
