# SPDX-License-Identifier: Apache-2.0
"""The ``badnets`` process entry point: the stop-signal handler (``badnets._signals``) goes in before the CLI's
seconds of imports (torch), so a SIGINT or SIGTERM that lands while they run is remembered, not lost."""

from __future__ import annotations

from badnets._signals import handle_stop_signals

__all__ = ["main"]


def main() -> None:
    """``badnets``: install the stop handler, import the CLI, run it."""
    handle_stop_signals(armed=False)
    from badnets.cli import main as run_cli

    run_cli()  # arms the handler: a signal remembered during the imports stops it now
