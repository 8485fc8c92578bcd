"""When the engagement stream emits STATE: throttled checkpoints and heartbeats, with exact record counts.

Why throttle: a STATE message carries the whole stream state (every campaign), so one per completed
window makes a sync's STATE output grow with the square of its campaigns (2,000 campaigns wrote 466 MB
of STATE for a few MB of records). The CDK's per-partition cursor throttles for the same reason.

Why heartbeats: the Airbyte platform counts only RECORD and STATE messages as a source's heartbeat and
fails an attempt that sends neither for `maxSecondsBetweenMessages` (metadata.yaml). A sync waiting for
its request budget or a Retry-After emits only LOG lines, so it re-emits its current state instead.

The rules (export.py's consumer asks; this module decides and counts, it never builds a message):

* a changed state goes out once `interval_s` has passed since the last STATE;
* the current state goes out, changed or not, once no RECORD or STATE went out for `heartbeat_s`;
* the consumer forces one at the end of the sync, before a failure's trace, and when a worker starts a
  long wait (so a sync killed during an hour-long wait has checkpointed everything before it).

Each STATE carries the records emitted since the previous one, so the recordCounts add up to exactly the
records emitted. Only the consumer thread calls this class.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STATE_INTERVAL_S = 60.0  # at most one changed state per minute, plus the forced ones
HEARTBEAT_S = 60.0  # a STATE after a minute without RECORD or STATE: the documented bound is 2 minutes


class StateEmitter:
    def __init__(
        self,
        interval_s: float = STATE_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        now = clock()
        self._last_state = now  # the sync's start counts as a checkpoint: the state it was handed
        self._last_message = now  # RECORD or STATE
        self._records = 0  # emitted since the last STATE
        self._changed = False  # a checkpoint arrived since the last STATE
        self.emitted_states = 0

    @property
    def changed(self) -> bool:
        return self._changed

    def records(self, count: int) -> None:
        """`count` records went out."""
        self._records += count
        self._last_message = self._clock()

    def checkpoint(self) -> None:
        """The stream state changed (a window completed)."""
        self._changed = True

    def due(self) -> bool:
        """Whether a STATE should go out now."""
        return self.seconds_until_due() <= 0

    def seconds_until_due(self) -> float:
        """How long the consumer may wait for its next item before a STATE is due."""
        now = self._clock()
        wait = self._last_message + self._heartbeat_s - now
        if self._changed:
            wait = min(wait, self._last_state + self._interval_s - now)
        return wait

    def emitted(self) -> int:
        """A STATE is going out now: returns its record count (records since the previous STATE)."""
        count, self._records = self._records, 0
        self._last_state = self._last_message = self._clock()
        self._changed = False
        self.emitted_states += 1
        return count
