"""The date-slicing partitioner: one campaign's days, cut into export windows of at most 90 days.

Why not the CDK's DatetimeBasedCursor slicing or a custom partition router: their slices start from the
cursor's own state (the highest record seen), so they cannot start each campaign from what our cursor
says was covered, and a window the server rejects as too wide fails the stream instead of being split.
Here the caller decides the first and last day (cursor.py) and this module only cuts them, narrowing the
windows when a newer API version answers 400 to a window it finds too wide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta

from source_soundlink.config import MAX_WINDOW_DAYS
from source_soundlink.engagement.window import Window
from source_soundlink.errors import SoundlinkError

MAX_WINDOW_SPLITS = 4  # per campaign: 90 -> 45 -> 22 -> 11 -> 5 days, then the 400 is reported as it is


def window_end(start: date, last: date, width: int) -> date:
    """Last day of the window that starts at `start`: `width` inclusive days, never past `last`."""
    return min(start + timedelta(days=width - 1), last)


def rejected_as_too_wide(error: SoundlinkError, window: Window) -> bool:
    """Newer API versions answer 400 invalid_query_parameter to a window they find too wide. Halving is
    safe only while none of the window's rows was emitted (else they would be emitted again)."""
    return (
        error.status == 400
        and error.code == "invalid_query_parameter"
        and window.days > 1
        and not error.rows_emitted
    )


class DateSlicingPartitioner:
    """Windows for every campaign of a sync. A width that proved necessary for one campaign (the server
    rejected wider ones, then a narrower one worked) is used by every campaign from then on."""

    def __init__(self, window_size_days: int) -> None:
        self._width = min(window_size_days, MAX_WINDOW_DAYS)
        self._lock = threading.Lock()

    def windows(self, campaign_id: str, first: date, last: date) -> CampaignWindows:
        return CampaignWindows(self, campaign_id, first, last)

    @property
    def width(self) -> int:
        return self._width

    def narrow_to(self, width: int) -> None:
        with self._lock:
            self._width = min(self._width, width)


class CampaignWindows:
    """One campaign's windows, in date order. Iterate, read each window, and call split() when the server
    rejected it: the next window is then the same start with half the width, instead of the following one.
    """

    def __init__(
        self, partitioner: DateSlicingPartitioner, campaign_id: str, first: date, last: date
    ) -> None:
        self._partitioner = partitioner
        self._campaign_id = campaign_id
        self._start = first
        self._last = last
        self._narrowed: int | None = None  # this campaign's width after the server rejected wider windows
        self._splits = 0
        self._again = False

    def __iter__(self) -> Iterator[Window]:
        while self._start <= self._last:
            width = min(self._partitioner.width, self._narrowed or MAX_WINDOW_DAYS)
            window = Window(self._campaign_id, self._start, window_end(self._start, self._last, width))
            self._again = False
            yield window
            if self._again:
                continue
            if self._narrowed is not None:
                self._partitioner.narrow_to(self._narrowed)  # the narrower width worked: share it
            self._start = window.end + timedelta(days=1)

    def split(self, window: Window, error: SoundlinkError) -> bool:
        """True if `window` is read again narrower; False if the error is to be reported as it is."""
        if self._splits >= MAX_WINDOW_SPLITS or not rejected_as_too_wide(error, window):
            return False
        self._splits += 1
        self._narrowed = window.days // 2
        self._again = True
        return True

    @property
    def width(self) -> int | None:
        return self._narrowed
