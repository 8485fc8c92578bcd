"""The sync's time: one object every wait and every duration goes through, injected by constructors.

A sync waits (request budget, Retry-After, backoff, a cut body's re-fetch) and measures (the budget's
sliding windows, STATE pacing, the summary's duration). Tests hand in a fake clock that runs an
hour-long wait in no time (unit tests) or a faster one (the integration tests' connector process),
instead of patching `time` in the modules that wait; a cancelled sync interrupts a wait through the
event it passes.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Monotonic seconds and waits on them; the real one. Subclass it to fake time."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Sleep `seconds`, or until `interrupt` is set; True if it was interrupted."""
        if interrupt is None:
            time.sleep(max(0.0, seconds))
            return False
        return interrupt.wait(max(0.0, seconds))

    def real_seconds(self, seconds: float) -> float:
        """How long `seconds` of this clock last on the wall: for a wait it cannot run itself (the
        consumer's queue timeout). The real clock's seconds are real ones."""
        return seconds


class ScaledClock(Clock):
    """A clock that runs `factor` times faster than the wall: hours of budget waits, Retry-After and STATE
    pacing in seconds. The integration tests and the scale benchmark install it as SYSTEM_CLOCK in the
    connector's process before any module binds the default."""

    def __init__(self, factor: float) -> None:
        self._factor = factor
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self._factor

    def wait(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        return super().wait(seconds / self._factor, interrupt)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self._factor


SYSTEM_CLOCK = Clock()
