# SPDX-License-Identifier: Apache-2.0
"""What every ``badnets`` command module shares: the Typer apps, the consoles, and the error → exit-code mapping."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from badnets.errors import BadnetsError

__all__ = ["app", "err_console", "friendly_errors", "out_console", "reproduce_app"]

app = typer.Typer(
    name="badnets",
    help="BadNets (Gu, Dolan-Gavitt, Garg): backdoor attacks reproduced, audited and guarded against.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
reproduce_app = typer.Typer(help="Reproduce the paper's case studies end to end, with reports.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")

out_console = Console()
err_console = Console(stderr=True)
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
