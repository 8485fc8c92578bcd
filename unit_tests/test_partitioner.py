"""The date-slicing partitioner: windows of at most 90 inclusive days, and the too-wide split (the read
that splits is in test_span_reader.py)."""

from __future__ import annotations

from datetime import date, timedelta

from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.errors import SoundlinkError

TODAY = date(2026, 11, 27)


def windows_for(first: date, last: date, width: int) -> list[tuple[date, date]]:
    """The windows the partitioner yields for one campaign, none rejected."""
    return [(w.start, w.end) for w in DateSlicingPartitioner(width).windows("c", first, last)]


def test_given_a_long_span_when_cut_then_windows_are_at_most_90_inclusive_days_and_cover_every_day() -> None:
    windows = windows_for(date(2026, 5, 11), TODAY, 90)
    assert windows == [
        (date(2026, 5, 11), date(2026, 8, 8)),
        (date(2026, 8, 9), date(2026, 11, 6)),
        (date(2026, 11, 7), TODAY),
    ]
    assert all((end - start).days + 1 <= 90 for start, end in windows)


def test_given_a_year_when_cut_then_the_window_count_is_ceil_days_over_width() -> None:
    days = (TODAY - date(2025, 11, 27)).days + 1  # 366 days
    assert len(windows_for(date(2025, 11, 27), TODAY, 90)) == -(-days // 90) == 5
    assert len(windows_for(date(2025, 11, 27), TODAY, 7)) == -(-days // 7) == 53


def test_given_a_width_over_90_or_a_span_of_one_day_when_cut_then_the_api_maximum_and_the_day_hold() -> None:
    assert windows_for(date(2026, 1, 1), date(2026, 12, 31), 365)[0] == (date(2026, 1, 1), date(2026, 3, 31))
    assert windows_for(TODAY, TODAY, 90) == [(TODAY, TODAY)]
    assert windows_for(TODAY, TODAY - timedelta(days=1), 90) == []


def _too_wide(rows_emitted: int = 0) -> SoundlinkError:
    return SoundlinkError("too wide", status=400, code="invalid_query_parameter", rows_emitted=rows_emitted)


def test_given_a_rejected_window_when_split_then_the_same_start_is_read_with_half_the_width() -> None:
    partitioner = DateSlicingPartitioner(90)
    windows = partitioner.windows("c", date(2026, 1, 1), date(2026, 12, 31))
    seen = []
    for window in windows:
        seen.append((window.start, window.days))
        if window.days == 90:
            assert windows.split(window, _too_wide())
        if len(seen) == 3:
            break
    assert seen == [(date(2026, 1, 1), 90), (date(2026, 1, 1), 45), (date(2026, 2, 15), 45)]
    assert partitioner.width == 45  # the narrower width worked: every campaign uses it from now on
    other = next(iter(partitioner.windows("d", date(2026, 1, 1), date(2026, 12, 31))))
    assert other.days == 45


def test_given_rows_already_emitted_or_too_many_splits_when_rejected_then_the_error_stands() -> None:
    windows = DateSlicingPartitioner(90).windows("c", date(2026, 1, 1), date(2026, 12, 31))
    window = next(iter(windows))
    assert not windows.split(window, _too_wide(rows_emitted=3))
    assert not windows.split(window, SoundlinkError("bad", status=400, code="invalid_date_range"))
    widths = []
    for window in windows:
        widths.append(window.days)
        if not windows.split(window, _too_wide()):
            break
    assert widths == [90, 45, 22, 11, 5]  # MAX_WINDOW_SPLITS halvings, then the 400 is reported
