# SPDX-License-Identifier: Apache-2.0
"""A sweep's spec: ``[base]`` options of ``badnets attack``, a ``[grid]`` of lists whose cartesian product are the
cells, and optional explicit ``[[cells]]``. Everything is checked, and every cell's ``AttackSpec`` built, before
anything runs, so a bad spec fails in one line and leaves nothing behind.

A cell is named by the values it sweeps (``trigger=pixel__seed=0``), not by its position, so growing the grid (one
more seed) keeps every existing cell's run directory, and a resumed sweep finds its finished cells.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from badnets.errors import ConfigError
from badnets.experiments.attack import AttackSpec
from badnets.experiments.attack_options import AttackOptions

__all__ = ["SweepCell", "SweepSpec", "load_sweep_spec"]

_TABLES = ("base", "grid", "cells")


@dataclass(frozen=True)
class SweepCell:
    """One cell: its name (its run directory), the swept values, and the attack they make."""

    name: str
    values: dict[str, Any]
    attack: AttackSpec


@dataclass(frozen=True)
class SweepSpec:
    """Options shared by every cell, the grid axes (option → values) and extra cells (option → value)."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)

    @property
    def axes(self) -> list[str]:
        """The swept options: the grid's, then any that only explicit cells set, in order of appearance."""
        axes = list(self.grid)
        for cell in self.cells:
            axes += [key for key in cell if key not in axes]
        return axes

    def expand(self) -> list[SweepCell]:
        """Every cell, grid cells first (in the grid's order), each with its ``AttackSpec`` built.

        Raises:
            ConfigError: a bad option or value (naming the cell), or two cells with the same values.
        """
        swept = [dict(zip(self.grid, combo, strict=True)) for combo in itertools.product(*self.grid.values())]
        if not self.grid and not self.cells:
            swept = [{}]
        swept += self.cells
        cells: dict[str, SweepCell] = {}
        for values in swept:
            name = cell_name(values)
            if name in cells:
                raise ConfigError(f"cell {name!r} appears twice (grid and [[cells]] overlap); drop one")
            try:
                attack = AttackOptions.from_mapping({**self.base, **values}).attack_spec()
            except ConfigError as error:
                raise ConfigError(f"cell {name!r}: {error}") from None
            cells[name] = SweepCell(name, values, attack)
        return list(cells.values())


def cell_name(values: Mapping[str, Any]) -> str:
    """``trigger=pixel__seed=0``; characters other than letters, digits and ``.,+-=`` become ``_``."""
    if not values:
        return "base"
    text = "__".join(f"{key}={_plain(value)}" for key, value in values.items())
    return re.sub(r"[^A-Za-z0-9.,+=\-_]", "_", text)


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def load_sweep_spec(path: Path, overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and check a sweep spec (TOML); ``overrides`` (e.g. ``data_dir`` from the command line) fill ``[base]``.

    Raises:
        ConfigError: the file is missing or not TOML, or a table, key or value is wrong.
    """
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {path} does not exist; write one (docs/scaling.md has an example)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"sweep spec {path} is not valid TOML: {error}") from None
    unknown = [key for key in raw if key not in _TABLES]
    if unknown:
        raise ConfigError(f"sweep spec {path}: unknown table {unknown[0]!r}; a spec has [base], [grid] and [[cells]]")
    base, grid, cells = raw.get("base", {}), raw.get("grid", {}), raw.get("cells", [])
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"sweep spec {path}: [base] and [grid] must be tables")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ConfigError(f"sweep spec {path}: cells must be an array of tables ([[cells]])")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep spec {path}: grid.{axis} must be a non-empty list, got {values!r}")
        if len({repr(v) for v in values}) < len(values):
            raise ConfigError(f"sweep spec {path}: grid.{axis} lists a value twice: {values!r}")
    AttackOptions.check_names(base, f"sweep spec {path}: [base]")
    AttackOptions.check_names(grid, f"sweep spec {path}: [grid]")
    for cell in cells:
        AttackOptions.check_names(cell, f"sweep spec {path}: [[cells]]")
    base = {k.replace("-", "_"): v for k, v in base.items()}
    spec = SweepSpec(
        {**{k: v for k, v in (overrides or {}).items() if v is not None}, **base},
        {k.replace("-", "_"): v for k, v in grid.items()},
        [{k.replace("-", "_"): v for k, v in cell.items()} for cell in cells],
    )
    spec.expand()
    return spec
