# SPDX-License-Identifier: Apache-2.0
"""``badnets sweep SPEC.toml``: a declarative grid of attacks, on this machine or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from badnets.cli._common import (
    WORKERS,
    AllowDirty,
    BackendName,
    DataDir,
    Device,
    RayAddress,
    Workers,
    friendly_errors,
    out_console,
    progress_bar,
    study_backend,
)
from badnets.errors import ConfigError

__all__ = ["sweep"]


@friendly_errors
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (TOML): [base] options, [grid] lists, [[cells]].")],
    out: Annotated[Path, typer.Option(help="Sweep directory (re-run the same command to resume).")],
    backend: BackendName = "local",
    address: RayAddress = None,
    workers: Workers = WORKERS,
    cpus_per_cell: Annotated[float, typer.Option(help="Ray: CPUs each cell asks for.")] = 1.0,
    gpus_per_cell: Annotated[
        float, typer.Option(help="Ray: GPUs each cell asks for (0.25: four share one GPU).")
    ] = 0.0,
    data_dir: DataDir = None,
    device: Device = "auto",
    allow_dirty: AllowDirty = False,
) -> None:
    """Run every cell of a sweep (one `badnets attack` run each) and write summary.csv, summary.json and a report."""
    from badnets.experiments._jobs import JobCounts
    from badnets.sweep import load_sweep_spec, run_sweep

    runner = study_backend(backend, address, workers, cpus=cpus_per_cell, gpus=gpus_per_cell)
    sweep_spec = load_sweep_spec(spec, {"data_dir": str(data_dir) if data_dir else None, "device": device})
    with progress_bar("sweep") as progress:
        task = progress.add_task("cells", total=None, status="")

        def status(counts: JobCounts) -> None:
            progress.update(
                task,
                total=counts.total,
                completed=counts.done + counts.failed,
                status=f"{counts.running} running, {counts.failed} failed",
            )

        results = run_sweep(
            sweep_spec, out, backend=runner, backend_name=backend, allow_dirty=allow_dirty, status=status
        )
    table = Table(title=f"Sweep: {len(results.rows)} cells", show_header=True)
    for col in ("cell", "clean error", "attack success rate", "seconds"):
        table.add_column(col, justify="right" if col != "cell" else "left")
    for row in results.rows:
        table.add_row(
            row.cell, f"{100 * row.clean_error:.2f}%", f"{100 * row.attack_success_rate:.2f}%", f"{row.seconds:.1f}"
        )
    out_console.print(table)
    out_console.print(f"wrote {out}/summary.csv, summary.json, report.md")
    if results.failed:
        for name, error in results.failed.items():
            out_console.print(f"[red]failed[/] {name}: {error}", highlight=False)
        raise ConfigError(f"{len(results.failed)} cell(s) failed (listed above); re-run the same command to retry them")
