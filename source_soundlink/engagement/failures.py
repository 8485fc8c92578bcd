"""How a sync's failures end it: the outage breaker, and one bounded failure message for the sync.

Why a breaker: the client retries each request a few times (client.py), and one campaign's failure does
not stop the others, so that a single bad campaign among healthy ones costs only its own windows. During
an outage of Soundlink's export service that costs every campaign its retries: 10,000 campaigns would
spend 50,000 requests (days of the hourly quota) and end in one message of about a megabyte. The CDK has
no such rule either: its HttpClient retries per request and its stream failures are collected one by one.

The rule: a window that failed with a 5xx, a timeout or a network error (after the client's retries) is
an outage failure; TRIP_AFTER of them in a row, with no window completing in between, trip the breaker.
The sync then starts no new window (Workers.fail stops the waits of the windows in flight; those still
streaming finish and are checkpointed) and fails once, as transient, with one short message: the cause,
the first campaigns and requestIds, "and N more", and what to do.

Any sync failure's message is bounded the same way (MAX_MESSAGE_CHARS): the first failures in full, then
how many more; every failure's own message still went out as a LOG line when it happened.
"""

from __future__ import annotations

import threading

from source_soundlink import protocol
from source_soundlink.errors import CONFIG_ERROR, ROW_COUNT_MISMATCH, TRANSIENT_ERROR, SoundlinkError
from source_soundlink.protocol import Logger

TRIP_AFTER = 3  # outage failures in a row, no window completing in between
MAX_MESSAGE_CHARS = 2000  # a sync's failure message, whatever the number of failed campaigns
NAMED = 4  # failures named in the breaker's message
_PART_CHARS = 600  # one failure's share of a combined message


class SyncFailed(Exception):
    """The sync could not complete; `errors` say why (of `stream`). State already emitted stays valid."""

    def __init__(self, errors: list[SoundlinkError], stream: str = protocol.ENGAGEMENT_STREAM) -> None:
        self.errors = errors
        self.stream = stream
        first = errors[0]
        self.failure_type = (
            CONFIG_ERROR if any(e.failure_type == CONFIG_ERROR for e in errors) else first.failure_type
        )
        super().__init__(combined_message(errors))


class SyncFailures:
    """The failures of one sync, recorded by any worker, and whether they stop it: a refused key (every
    request would fail alike) or a tripped outage breaker."""

    def __init__(self, log: Logger, breaker: OutageBreaker | None = None) -> None:
        self._log = log
        self._breaker = breaker or OutageBreaker()
        self._lock = threading.Lock()
        self.errors: list[SoundlinkError] = []

    def add(self, error: SoundlinkError) -> bool:
        """Record a campaign's failure and log it in full (the sync's failure names only the first few);
        True when no other window should start."""
        with self._lock:
            if error.key_refused and any(e.key_refused for e in self.errors):
                return True  # requests in flight when the key was refused fail alike: report it once
            self.errors.append(error)
        self._log("ERROR", error.message)
        if error.key_refused:
            return True
        if not self._breaker.failure(error):
            return False
        self._log(
            "WARN",
            f"The windows of {self._breaker.trip_after} campaigns failed in a row with a server error or "
            "no answer: Soundlink's export service seems down, so no new window starts.",
        )
        return True

    def success(self) -> None:
        """A window completed."""
        self._breaker.success()

    def reported(self, left: int) -> list[SoundlinkError]:
        """The errors the sync's failure names once it ended (`left`: campaigns stopped before they were
        finished): an outage's summarized in one."""
        return self._breaker.report(self.errors, left)


def combined_message(errors: list[SoundlinkError], limit: int = MAX_MESSAGE_CHARS) -> str:
    """One message for the sync's failures, at most `limit` characters: the first ones, then a count."""
    if len(errors) == 1:
        return _shorten(errors[0].message, limit)
    text = f"{len(errors)} failures: "
    for shown, error in enumerate(errors):
        part = _shorten(error.message, _PART_CHARS)
        more = f" | and {len(errors) - shown} more (see the sync's log)."
        if len(text) + len(part) + len(" | ") + len(more) > limit:
            return text.removesuffix(" | ") + more
        text += part + " | "
    return text.removesuffix(" | ")


def is_outage(error: SoundlinkError) -> bool:
    """A failure that says Soundlink's export service is down rather than something about this campaign:
    a 5xx or timeout after retries, or no answer or a broken body (no status). A body that disagrees with
    its X-Row-Count is about that window: Soundlink did answer."""
    if error.failure_type != TRANSIENT_ERROR or error.key_refused or error.code == ROW_COUNT_MISMATCH:
        return False
    return error.status is None or error.status == 408 or error.status >= 500


class OutageBreaker:
    """Counts outage failures in a row across campaigns; workers call it, under its own lock."""

    def __init__(self, trip_after: int = TRIP_AFTER) -> None:
        self.trip_after = trip_after
        self._lock = threading.Lock()
        self._streak = 0
        self.tripped = False

    def success(self) -> None:
        """A window completed: the export service works."""
        with self._lock:
            self._streak = 0

    def failure(self, error: SoundlinkError) -> bool:
        """A campaign failed with `error`; True when this failure trips the breaker (only once)."""
        if not is_outage(error):
            return False
        with self._lock:
            self._streak += 1
            if self.tripped or self._streak < self.trip_after:
                return False
            self.tripped = True
            return True

    def report(self, errors: list[SoundlinkError], left: int = 0) -> list[SoundlinkError]:
        """The sync's errors once it ended: if the breaker tripped, its outage failures are replaced by
        one error that summarizes them (the other failures, an unknown campaign say, are kept). `left`:
        the campaigns the sync stopped before they were finished."""
        if not self.tripped:
            return errors
        outage = [e for e in errors if is_outage(e)]
        return [self._summary(outage, left), *(e for e in errors if not is_outage(e))]

    def _summary(self, outage: list[SoundlinkError], left: int) -> SoundlinkError:
        causes = sorted({_cause(e) for e in outage})
        named = "; ".join(
            f"{e.where or 'a window'} ({_cause(e)}, requestId {e.request_id or 'not given'})"
            for e in outage[:NAMED]
        )
        more = f"; and {len(outage) - NAMED} more" if len(outage) > NAMED else ""
        message = (
            f"Soundlink's export service kept failing ({', '.join(causes)}): {len(outage)} windows failed "
            f"after their retries, the last {self.trip_after} in a row with none succeeding in between, so "
            f"the sync stopped starting new windows. Failed: {named}{more}. Every complete window was "
            f"checkpointed and {left} campaigns were left unfinished or not started for the next sync. "
            "What to do: this looks like an outage on Soundlink's side; retry later (Airbyte retries a "
            "transient error), and if it persists, send these requestIds to Soundlink."
        )
        return SoundlinkError(_shorten(message, MAX_MESSAGE_CHARS), TRANSIENT_ERROR, outage[0].request_id)


def _cause(error: SoundlinkError) -> str:
    if error.status is None:
        return "no answer or a broken body"
    return f"HTTP {error.status} {error.code}" if error.code else f"HTTP {error.status}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
