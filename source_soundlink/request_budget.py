"""The client-side request budget: Soundlink's per-key limits, kept by every worker of a sync together.

Why not the CDK's APIBudget (HttpAPIBudget and its call rate policies): it belongs to the declarative
requester, which the export path does not use, and it has no notion of a 429 that holds every request of
the key, of one probe going first after it, or of re-dating a request when its answer arrives.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.errors import Refusal
from source_soundlink.protocol import Logger

PROBE_POLL_S = 0.5  # after a 429 pause, one request tests the key; the others look again this often
_HOUR_S = 3600.0


class RequestBudget:
    """Sliding-window limits shared by every thread (Soundlink: 60 requests/minute, 600/hour per key),
    and the key-wide pause a 429 asks for.

    Waiting here keeps a large backfill off 429s; the server's Retry-After still wins when it answers one.
    A request is dated when it is let go, then re-dated by settle() when its answer arrives: the server
    counts it on arrival, somewhere in between, so only the later date keeps the (limit+1)-th request from
    reaching the server less than a minute after the first (connection setup makes arrivals uneven).

    Soundlink's limits are per key, so a 429 holds every request of the sync, not only the one that got
    it: nothing leaves before its Retry-After has passed (requests already in flight are left alone).
    Then one request goes first and the others follow once it was answered, so an hour that is still
    spent costs one refused request, not one per worker.
    """

    def __init__(self, per_minute: int, per_hour: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self._limits = ((60.0, per_minute), (_HOUR_S, per_hour))
        self._sent: deque[float] = deque()  # ascending: every date is a clock() reading taken at that time
        self._lock = threading.Lock()
        self._clock = clock.now
        self._wait = clock.wait
        self._local = threading.local()  # this thread's request in flight: its date, whether it probes
        self._paused_until = 0.0  # no request leaves before this clock() reading (a 429's Retry-After)
        self._probing = False  # the key was refused: the next request goes alone
        self._probe_in_flight = False
        self._streak = 0
        self._streak_since = 0.0
        self._last_refusal = float("-inf")  # when the last counted 429 arrived
        self.requests_sent = 0

    def acquire(self, log: Logger | None = None, sleep: Callable[[float], None] | None = None) -> float:
        """Block until a request may be sent; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= _HOUR_S:
                    self._sent.popleft()
                budget = self._wait_needed(now)
                hold = self._paused_until - now
                if hold <= 0 and self._probe_in_flight:
                    hold = PROBE_POLL_S
                wait = max(budget, hold)
                if wait <= 0:
                    self._sent.append(now)
                    self._local.slot = now
                    self._local.probe = self._probing
                    if self._probing:
                        self._probe_in_flight = True  # the others wait for its answer
                    self.requests_sent += 1
                    return waited
            if log and budget >= 1 and budget >= hold:
                log(
                    "INFO",
                    f"Request budget reached; waiting {budget:.0f} s before the next Soundlink request.",
                )
            (sleep or self._wait)(wait)
            waited += wait

    def settle(self, answered: bool = True) -> None:
        """This thread's request got an answer other than 429 (`answered`) or none (a connection error)."""
        with self._lock:
            sent = self._redate()
            if answered and sent > self._last_refusal:  # the key works again
                self._probing = False
                self._streak = 0

    def refused(self, retry_after: float) -> Refusal:
        """This thread's request got a 429: hold every request of the key for `retry_after` seconds."""
        with self._lock:
            sent = self._redate()
            now = self._clock()
            self._paused_until = max(self._paused_until, now + retry_after)
            self._probing = True
            if sent > self._last_refusal:  # not a request already in flight when the key was refused
                if self._streak == 0:
                    self._streak_since = now
                self._streak += 1
                self._last_refusal = now
            refused_for = now - self._streak_since if self._streak else 0.0
            return Refusal(self._streak, refused_for, self.requests_sent, len(self._sent))

    def _redate(self) -> float:
        """Re-date this thread's request to now (keeping `_sent` ascending); return when it was sent."""
        slot, self._local.slot = getattr(self._local, "slot", None), None
        if getattr(self._local, "probe", False):
            self._local.probe = self._probe_in_flight = False
        if slot is None:
            return float("inf")
        try:
            self._sent.remove(slot)
        except ValueError:
            return slot  # already out of the hour window
        self._sent.append(self._clock())
        return slot

    def _wait_needed(self, now: float) -> float:
        wait = 0.0
        for span, limit in self._limits:
            in_window = [t for t in self._sent if now - t < span] if span < _HOUR_S else list(self._sent)
            if len(in_window) >= limit:
                wait = max(wait, in_window[-limit] + span - now)
        return wait
