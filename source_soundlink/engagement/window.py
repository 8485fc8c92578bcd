"""The values a read passes between its pieces: an export window, and what reading it produced.

They live below every module that uses them (partitioner.py makes windows, window_reader.py and
jsonl_decoder.py fill a WindowProgress, cursor.py turns it into state), so none of those imports another
just for a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class Window:
    campaign_id: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}, window {self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class WindowProgress:
    """What has been emitted for a window so far; survives re-fetches of a cut body.

    Rows come sorted by report_date first; within a day the documented order is not relied on (its
    collation is not specified), so the day's emitted keys are kept to catch repeats and to resume.
    """

    last_date: str | None = None  # report_date of the last row emitted
    day_keys: set[tuple[Any, ...]] = field(default_factory=set)  # keys emitted for last_date
    resume_date: str | None = None  # set after a cut: rows before it, or in resume_keys, were emitted
    resume_keys: frozenset[tuple[Any, ...]] = frozenset()
    rows_emitted: int = 0
    first_date: str | None = None  # report_date of the first row emitted
    ended_since: str | None = None  # first report_date of the trailing run of `ended` rows
    saw_not_ended: bool = False
    request_id: str | None = None
