"""The sync's time: one object every wait and every duration goes through, injected by constructors.

A sync waits (request budget, Retry-After, backoff, a cut body's re-fetch) and measures (the budget's
sliding windows, STATE pacing, the summary's duration). Tests hand in a fake clock that runs an
hour-long wait in no time, instead of patching `time` in the modules that wait; a cancelled sync
interrupts a wait through the event it passes.
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


SYSTEM_CLOCK = Clock()
