"""When the engagement stream's STATE goes out: paced checkpoints and rare heartbeats, exact record counts.

Why pace: a STATE message carries the whole stream state (every campaign, about 83 bytes each), so one
per completed window makes a sync's STATE output grow with the square of its campaigns (2,000 campaigns
wrote 466 MB of STATE for a few MB of records), and even one a minute is about 50 MB an hour at 10,000
campaigns. The CDK's per-partition cursor throttles for the same reason (once every 600 s).

Why heartbeats: the Airbyte platform counts only RECORD and STATE messages as a source's heartbeat and
fails an attempt that sends neither for `maxSecondsBetweenMessages` (metadata.yaml: 1,200 s). A sync
waiting out its hourly request budget or a Retry-After emits only LOG lines, so it re-emits its current
state, but only after several minutes of silence: a budget-bound sync is mostly waiting.

The rules (export.py's consumer asks; this module decides and counts, it emits nothing):

* a changed state goes out once `interval_s` (3 minutes) has passed since the last STATE, so a kill loses
  at most the windows of the last few minutes;
* the current state goes out, changed or not, once no RECORD or STATE went out for `heartbeat_s`
  (5 minutes, a quarter of maxSecondsBetweenMessages);
* a changed state goes out at once when a worker starts a wait of at least LONG_WAIT_S (the hourly
  budget, a long Retry-After): a sync killed during that wait has checkpointed everything before it.
  Shorter waits (the per-minute budget) force nothing: the paced STATE goes out during them anyway;
* the consumer also forces one at the end of the sync and before a failure's trace.

A budget-bound sync (600 requests an hour, spent in its first ten minutes) thus writes about 3 paced
STATE messages, 1 forced one and 10 heartbeats an hour. Each STATE carries the records emitted since the
previous one, so the recordCounts add up to exactly the records emitted. Only the consumer thread calls
this class.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STATE_INTERVAL_S = 180.0  # at most one changed state per 3 minutes, plus the forced ones
HEARTBEAT_S = 300.0  # a STATE after 5 minutes without RECORD or STATE (maxSecondsBetweenMessages: 1,200 s)
LONG_WAIT_S = 300.0  # a worker's wait at least this long checkpoints what is complete before it


class StatePacer:
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

    def waiting(self, seconds: float) -> bool:
        """A worker starts a wait of `seconds`: whether a STATE should go out now (a long wait, and the
        state changed since the last STATE)."""
        return seconds >= LONG_WAIT_S and self._changed

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
