# SPDX-License-Identifier: Apache-2.0
"""The ``badnets`` command: parsing options, building specs, calling one library function, printing the result.

Every ``BadnetsError`` becomes one line on stderr and its exit code (2 for bad input). One module per group of
commands (``attack``, ``sweep``, ``studies``, ``audit``, ``supply``); they define plain functions, and this module
is where each becomes a command.
"""

from __future__ import annotations

import logging
import sys

import typer

from badnets.cli import attack, audit, studies, supply, sweep
from badnets.cli._common import err_console

__all__ = ["app", "main"]

app = typer.Typer(
    name="badnets",
    help="BadNets (Gu, Dolan-Gavitt, Garg): backdoor attacks reproduced, audited and guarded against.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
reproduce_app = typer.Typer(help="Reproduce the paper's case studies end to end, with reports.", no_args_is_help=True)
zoo_app = typer.Typer(
    help="A TUF-secured model zoo: init, add packages, publish fresh metadata, serve.", no_args_is_help=True
)
app.add_typer(reproduce_app, name="reproduce")
app.add_typer(zoo_app, name="zoo")

app.command()(attack.attack)
app.command()(sweep.sweep)
for name, study in (
    ("mnist", studies.reproduce_mnist),
    ("traffic", studies.reproduce_traffic),
    ("transfer", studies.reproduce_transfer),
    ("photos", studies.reproduce_photos),
    ("supply-chain", studies.reproduce_supply_chain),
    ("defenses", studies.reproduce_defenses),
    ("audit-round", studies.reproduce_audit_round),
):
    reproduce_app.command(name)(study)
app.command()(studies.report)
app.command()(audit.audit)
app.command()(audit.guard)
app.command("inspect-data")(audit.inspect_data)
app.command()(audit.repair)
for command in (supply.export, supply.load, supply.keygen, supply.sign, supply.verify, supply.scan):
    app.command()(command)
for name, zoo_command in (
    ("init", supply.zoo_init),
    ("add", supply.zoo_add),
    ("add-author", supply.zoo_add_author),
    ("publish", supply.zoo_publish),
    ("rotate-root", supply.zoo_rotate_root),
    ("rotate-key", supply.zoo_rotate_key),
    ("serve", supply.zoo_serve),
):
    zoo_app.command(name)(zoo_command)
app.command()(supply.fetch)


def main() -> None:
    """Run the CLI (the ``badnets`` command enters through ``badnets._entry.main``, which calls this)."""
    from badnets._signals import StopRequested, handle_stop_signals, stop_exit_code

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        handle_stop_signals()
        app()
    except (KeyboardInterrupt, StopRequested):
        code = stop_exit_code(sys.argv[1:])
        if code:
            err_console.print("interrupted; run the same command again to resume")
        sys.exit(code)


if __name__ == "__main__":
    main()
