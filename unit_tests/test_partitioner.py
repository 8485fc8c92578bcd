"""The date-slicing partitioner: windows of at most 90 inclusive days, and the too-wide split."""

from __future__ import annotations

from datetime import date, timedelta

from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink.engagement.partitioner import DateSlicingPartitioner, window_end
from source_soundlink.errors import SoundlinkError
from unit_tests import builders as b

TODAY = date(2026, 11, 27)


def windows_for(first: date, last: date, width: int) -> list[tuple[date, date]]:
    """The windows the export walks through, one window_end() after another."""
    windows = []
    while first <= last:
        windows.append((first, window_end(first, last, width)))
        first = windows[-1][1] + timedelta(days=1)
    return windows


def test_windows_are_at_most_90_inclusive_days_and_cover_every_day() -> None:
    windows = windows_for(date(2026, 5, 11), TODAY, 90)
    assert windows == [
        (date(2026, 5, 11), date(2026, 8, 8)),
        (date(2026, 8, 9), date(2026, 11, 6)),
        (date(2026, 11, 7), TODAY),
    ]
    assert all((end - start).days + 1 <= 90 for start, end in windows)


def test_backfill_request_count_is_ceil_days_over_window() -> None:
    days = (TODAY - date(2025, 11, 27)).days + 1  # 366 days
    assert len(windows_for(date(2025, 11, 27), TODAY, 90)) == -(-days // 90) == 5


@HttpMocker()
def test_wide_window_rejected_with_400_is_split(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(
        b.export_request("camp_a", "2026-03-01", "2026-03-20"),
        b.error_response(400, "invalid_query_parameter", "r1"),
    )
    for start, end in [("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20")]:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = b.read_source(b.config(end_date="2026-03-20"))

    assert not output.errors
    assert len(output.records) == 40


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
