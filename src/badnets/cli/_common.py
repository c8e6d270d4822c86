# SPDX-License-Identifier: Apache-2.0
"""What every ``badnets`` command module shares: the consoles, the error → exit-code mapping, the progress bar
and the options several commands take."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from badnets.errors import BadnetsError, ConfigError
from badnets.experiments._jobs import Backend, LocalBackend
from badnets.experiments._study import StudyRecipe

__all__ = [
    "BACKENDS",
    "WORKERS",
    "AllowDirty",
    "BackendName",
    "DataDir",
    "Device",
    "RayAddress",
    "Seeds",
    "StudyOut",
    "Workers",
    "default_of",
    "err_console",
    "friendly_errors",
    "out_console",
    "progress_bar",
    "study_backend",
]

# emoji=False: rich would turn ":train:" in a calibration version (audit-round:train:1), a model or a path into 🚋
out_console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadnetsError as e:
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False, disable=not err_console.is_terminal) as progress:
        yield progress


def default_of(spec: Any, name: str) -> Any:
    """A spec field's default, so the CLI never restates one."""
    return spec.__dataclass_fields__[name].default


DataDir = Annotated[
    Path | None,
    typer.Option(help="Data folder; default $BADNETS_DATA, else ~/.cache/badnets.", show_default=False),
]
Device = Annotated[str, typer.Option(help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.")]
StudyOut = Annotated[Path, typer.Option(help="Output directory (re-run the same command to resume).")]
Seeds = Annotated[int | None, typer.Option(help="Seeds per configuration (default 3; quick 1).")]
Workers = Annotated[int, typer.Option(help="Models trained in parallel (CPU: one thread each).")]
AllowDirty = Annotated[
    bool,
    typer.Option(help="Run from a source tree with uncommitted changes (recorded; results then name no clean commit)."),
]
WORKERS = default_of(StudyRecipe, "workers")
BackendName = Annotated[
    str, typer.Option("--backend", help="Where models train: local (worker processes here) or ray (a Ray cluster).")
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster head HOST:PORT (`ray start --head`); default with --backend ray: a Ray started here."
    ),
]
BACKENDS = ("local", "ray")


def study_backend(name: str, address: str | None, workers: int, *, cpus: float = 1.0, gpus: float = 0.0) -> Backend:
    """The job backend ``--backend``/``--address`` name."""

    if name not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if address is not None and name != "ray":
        raise ConfigError("--address names a Ray cluster; add --backend ray")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if name == "local":
        return LocalBackend(workers)
    from badnets.experiments.ray_backend import RayBackend

    return RayBackend(address=address, workers=workers, num_cpus=cpus, num_gpus=gpus)
