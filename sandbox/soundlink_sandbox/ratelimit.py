"""Soundlink's documented per-key limits (60 requests/minute, 600/hour) as sliding windows."""

from __future__ import annotations

import bisect
import math
import threading

WINDOWS = (60, 3600)


class RateLimiter:
    """Sliding one-minute and one-hour windows per key; only admitted requests count.

    Times are the caller's epoch seconds (the server's `time.time()`, which tests may warp).
    """

    def __init__(self) -> None:
        self._hits: dict[str, list[float]] = {}  # sorted request times per key, the last hour only
        self._lock = threading.Lock()

    def _retry_after(self, hits: list[float], now: float, per_minute: int, per_hour: int) -> int | None:
        del hits[: bisect.bisect_right(hits, now - 3600)]
        wait = 0.0
        for limit, window in zip((per_minute, per_hour), WINDOWS, strict=True):
            if limit <= 0:  # 0 disables that window (handy for benchmarks)
                continue
            recent = len(hits) - bisect.bisect_right(hits, now - window)
            if recent >= limit:
                # The slot frees when the oldest hit that keeps us at the limit leaves the window.
                oldest = hits[len(hits) - limit]
                wait = max(wait, oldest + window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def hit(self, key: str, now: float, per_minute: int, per_hour: int) -> int | None:
        """Record a request and return None, or return Retry-After seconds (>= 1) without recording."""
        with self._lock:
            hits = self._hits.setdefault(key, [])
            wait = self._retry_after(hits, now, per_minute, per_hour)
            if wait is None:
                hits.append(now)
            return wait

    def spend(self, key: str, n: int, at: float) -> None:
        """Count n requests of another client of the same key, made at time `at`."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            hits = self._hits.setdefault(key, [])
            hits.extend([at] * n)
            hits.sort()

    def usage(self, key: str, now: float, per_minute: int, per_hour: int) -> dict[str, int | None]:
        """Requests counted in each window, and the Retry-After the next request would get."""
        with self._lock:
            hits = self._hits.setdefault(key, [])
            wait = self._retry_after(hits, now, per_minute, per_hour)
            last_minute = len(hits) - bisect.bisect_right(hits, now - 60)
            return {"lastMinute": last_minute, "lastHour": len(hits), "retryAfter": wait}

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
