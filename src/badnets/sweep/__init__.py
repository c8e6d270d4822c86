# SPDX-License-Identifier: Apache-2.0
"""Declarative sweeps (``badnets sweep SPEC.toml``): a grid of attacks, run on the local or the Ray backend."""

from __future__ import annotations

from badnets.sweep.results import SweepResults, SweepRow
from badnets.sweep.run import run_sweep
from badnets.sweep.spec import SweepCell, SweepSpec, load_sweep_spec

__all__ = ["SweepCell", "SweepResults", "SweepRow", "SweepSpec", "load_sweep_spec", "run_sweep"]
