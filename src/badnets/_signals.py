# SPDX-License-Identifier: Apache-2.0
"""Stop signals (SIGINT, SIGTERM), handled explicitly from the process's first moment (``badnets._entry``).

A process can start with SIGINT ignored (a non-interactive shell's background job, ``nohup``, some supervisors
and CI runners), and Python then leaves it ignored: Ctrl-C and ``kill -INT`` would do nothing. So SIGINT and
SIGTERM get explicit handlers here. A signal that lands while the CLI is still importing (seconds: torch) is
remembered and acted on once the import is done; after that it raises ``StopRequested`` wherever the command is,
so every ``finally`` runs (not ``KeyboardInterrupt``: click turns that into "Aborted!" and exit 1). A server
(``zoo serve``) ends this way by design: exit 0. Any other command was cut short: exit 130, and long studies
resume from their checkpoints when run again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["STOP_SIGNALS", "StopRequested", "handle_stop_signals", "stop_exit_code"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SERVERS = (("zoo", "serve"),)  # commands that run until asked to stop
_requested = threading.Event()
_armed = threading.Event()


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived: unwind and stop."""


def _on_stop(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    if _armed.is_set():
        raise StopRequested(signal.Signals(signum).name)


def handle_stop_signals(*, armed: bool = True) -> None:
    """Install the SIGINT/SIGTERM handler. ``armed``: a signal raises ``StopRequested`` (and one remembered while
    unarmed raises it now); else it is only remembered."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop)
    if not armed:
        _armed.clear()
        return
    _armed.set()
    if _requested.is_set():
        raise StopRequested("a stop signal arrived during start-up")


def stop_exit_code(argv: list[str]) -> int:
    """0 when the stopped command is a server (stopping is how it ends), else 130 (128 + SIGINT)."""
    words = [a for a in argv if not a.startswith("-")]
    return 0 if any(tuple(words[: len(s)]) == s for s in SERVERS) else 130
