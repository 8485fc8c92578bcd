"""Graceful cancel: SIGTERM (how the Airbyte platform stops a sync) and SIGINT (Ctrl-C) become a request the
export honours, instead of a kill that loses everything since the last STATE or a KeyboardInterrupt
traceback.

The CDK's entrypoint has no such handler (a cancelled CDK sync is simply killed); the platform keeps what
the destination committed up to the last STATE it received, so a source that checkpoints on the way out
loses nothing. A signal handler runs on the main thread between two bytecodes, possibly while that thread
holds a lock of the output queue, so it only records the reason and sets an Event that nothing on the main
thread ever waits on; a watcher thread of the export (export.py) does the rest.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CancelToken:
    """Set once by `request` (a signal handler, or a test); `wait` blocks a watcher until then."""

    def __init__(self) -> None:
        self.reason: str | None = None  # the signal's name, once a cancel was requested
        self._event = threading.Event()

    def request(self, reason: str) -> None:
        if self.reason is not None:
            return  # a second signal while the first is handled: Event's lock is not re-entrant
        self.reason = reason
        self._event.set()

    def wait(self) -> bool:
        """Block until a cancel was requested (True) or `release` was called with none (False)."""
        self._event.wait()
        return self.reason is not None

    def release(self) -> None:
        """The sync is over: let the watcher go without a cancel."""
        self._event.set()


def install(token: CancelToken) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `token`; returns a function that restores the previous handlers."""

    def handler(signum: int, _frame: Any) -> None:
        token.request(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def exit_code(reason: str) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (143 SIGTERM, 130 SIGINT)."""
    return 128 + int(signal.Signals[reason]) if reason in signal.Signals.__members__ else 1
