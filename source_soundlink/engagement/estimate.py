"""The engagement stream's ESTIMATE: the rows (and bytes) this sync is expected to emit, in one place.

Why: the platform keeps only the latest ESTIMATE of a stream and draws its progress bar from it, so each
one must be the whole sync's expected total, not one window's X-Row-Count (which made the bar jump around
and end at the last window's count). The CDK's ESTIMATE comes from a stream's own guess, once; here the
total is only learnt window by window.

The sum: each window announces its X-Row-Count when its body starts (and its Content-Length, until rows
give a better measure of bytes), and, when it ends, corrects its share to the rows it actually emitted
(a window that failed half way, or had no X-Row-Count). The estimate is never below the rows emitted,
grows as windows are announced, and equals the rows emitted once the sync ends. Bytes are the records'
data bytes (what the platform counts): the announced body bytes until the first record, then the rows
estimate times the mean bytes of the rows emitted so far, exact at the end.

Workers announce through the output queue; only the consumer thread (export.py) calls this class, and
sends the ESTIMATE lines it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from source_soundlink import protocol

ESTIMATE_INTERVAL_S = 1.0  # at most one ESTIMATE a second (10,000 campaigns announce many windows)
STREAM = protocol.ENGAGEMENT_STREAM


class SyncEstimate:
    """Each method returns the ESTIMATE line to send now, or b"" when none is due."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, interval_s: float = ESTIMATE_INTERVAL_S
    ) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._overhead = protocol.record_overhead(STREAM)  # a RECORD message's bytes around its data
        self._expected_rows = 0  # sum of the windows' announcements and corrections
        self._announced_bytes = 0
        self._rows = 0  # emitted
        self._bytes = 0  # emitted records' data bytes
        self._sent: tuple[int, int] | None = None
        self._sent_at = float("-inf")

    def announced(self, rows: int, body_bytes: int) -> bytes:
        """A window changed its share of the expected rows by `rows` (negative: a correction)."""
        self._expected_rows += rows
        self._announced_bytes += body_bytes
        return self._due()

    def records(self, count: int, message_bytes: int) -> bytes:
        """`count` RECORD messages of `message_bytes` in all went out."""
        self._rows += count
        self._bytes += message_bytes - count * self._overhead
        return self._due()

    def current(self) -> tuple[int, int]:
        """(row_estimate, byte_estimate) now."""
        rows = max(self._expected_rows, self._rows)
        if not self._rows:
            return rows, self._announced_bytes
        return rows, round(rows * self._bytes / self._rows)

    def final(self) -> bytes:
        """The sync ended: the exact totals emitted, unless that was the last estimate sent (or none was
        sent and nothing was emitted)."""
        final = self._rows, self._bytes
        if self._sent == final or (self._sent is None and not self._rows):
            return b""
        self._sent = final
        return protocol.estimate(STREAM, *final)

    def _due(self) -> bytes:
        """The estimate, if its rows changed since the last one sent and the interval passed."""
        now = self._clock()
        if now - self._sent_at < self._interval_s:
            return b""
        current = self.current()
        if self._sent is not None and current[0] == self._sent[0]:
            return b""
        self._sent, self._sent_at = current, now
        return protocol.estimate(STREAM, *current)
