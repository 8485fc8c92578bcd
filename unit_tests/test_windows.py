"""Window planning, settledness and the request budget: the rules the request counts follow."""

from __future__ import annotations

from datetime import date, timedelta

from source_soundlink.client import RequestBudget
from source_soundlink.config import SoundlinkConfig
from source_soundlink.export import Campaign, covered_through, first_day_to_read, settled, window_end
from unit_tests.builders import config

TODAY = date(2026, 11, 27)


def windows_for(first: date, last: date, width: int) -> list[tuple[date, date]]:
    """The windows the export walks through, one window_end() after another."""
    windows = []
    while first <= last:
        windows.append((first, window_end(first, last, width)))
        first = windows[-1][1] + timedelta(days=1)
    return windows


def _config(**overrides: object) -> SoundlinkConfig:
    return SoundlinkConfig.from_mapping(config(**overrides), today=TODAY)


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


def test_first_day_without_state_is_the_campaign_start_or_start_date() -> None:
    campaign = Campaign("c", date(2026, 3, 1))
    assert first_day_to_read(campaign, _config(), None) == date(2026, 3, 1)
    assert first_day_to_read(campaign, _config(start_date="2026-06-01"), None) == date(2026, 6, 1)
    assert first_day_to_read(campaign, _config(start_date="2026-01-01"), None) == date(2026, 3, 1)


def test_first_day_with_state_is_through_minus_lookback() -> None:
    campaign = Campaign("c", date(2026, 3, 1))
    state = {"from": "2026-03-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(), state) == date(2026, 11, 13)
    assert first_day_to_read(campaign, _config(lookback_window_days=30), state) == date(2026, 10, 21)


def test_start_date_moved_before_the_covered_range_rereads_from_it() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    state = {"from": "2026-06-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(start_date="2026-02-01"), state) == date(2026, 2, 1)


def test_widening_engagement_context_backfills_and_narrowing_does_not() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    playlist = {"from": "2026-01-01", "through": "2026-11-20", "engagement_context": "playlist"}
    assert first_day_to_read(campaign, _config(), playlist) == date(2026, 1, 1)
    assert first_day_to_read(campaign, _config(engagement_context="catalog"), playlist) == date(2026, 1, 1)
    assert first_day_to_read(campaign, _config(engagement_context="playlist"), playlist) == date(2026, 11, 13)
    both = {"from": "2026-01-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(engagement_context="catalog"), both) == date(2026, 11, 13)


def test_a_sync_that_started_after_the_covered_span_does_not_bridge_the_gap() -> None:
    # Read 01-01..02-01, then (start_date 09-01) 09-01..11-20: the state must not claim 02-02..08-31.
    gap = {"from": "2026-01-01", "through": "2026-02-01"}
    assert covered_through(date(2026, 9, 1), _config(start_date="2026-09-01"), gap) is None
    assert covered_through(date(2026, 2, 2), _config(start_date="2026-02-02"), gap) == date(2026, 2, 1)


def test_a_settled_flag_is_ignored_once_the_status_is_no_longer_terminal() -> None:
    state = {"from": "2026-01-01", "through": "2026-06-01", "settled": True, "updated_at": "U"}
    assert (
        first_day_to_read(Campaign("c", date(2026, 1, 1), "completed", updated_at="U"), _config(), state)
        is None
    )
    renewing = Campaign("c", date(2026, 1, 1), "renewing", updated_at="U")
    assert first_day_to_read(renewing, _config(), state) == date(2026, 5, 25)


def test_campaign_not_started_yet_has_nothing_to_read() -> None:
    assert first_day_to_read(Campaign("c", date(2026, 12, 5)), _config(), None) is None


def test_settled_campaign_is_skipped_unless_it_changed() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-03-01T00:00:00Z")
    state = {
        "from": "2026-01-01",
        "through": "2026-06-01",
        "settled": True,
        "updated_at": "2026-03-01T00:00:00Z",
    }
    assert first_day_to_read(campaign, _config(), state) is None
    renewed = Campaign("c", date(2026, 1, 1), "renewing", updated_at="2026-11-01T00:00:00Z")
    assert first_day_to_read(renewed, _config(), state) == date(2026, 5, 25)


def test_settled_needs_tail_and_revision_window_read() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed")
    assert not settled(campaign, {"through": "2026-03-10", "ended_on": "2026-02-01"})  # 37 days after
    assert settled(campaign, {"through": "2026-03-11", "ended_on": "2026-02-01"})  # 38 days after
    assert not settled(campaign, {"through": "2026-11-27", "has_rows": True})  # no `ended` rows


def test_ended_rows_do_not_settle_a_campaign_that_is_not_terminal() -> None:
    # Renewed under the same id, or a key that cannot read campaigns (status unknown): keep reading.
    state = {"through": "2026-06-01", "ended_on": "2026-02-01"}
    for status in ("active", "renewing", None):
        assert not settled(Campaign("c", date(2026, 1, 1), status), state)


def test_campaign_without_rows_settles_after_its_planned_end_when_terminal() -> None:
    failed = Campaign("c", date(2026, 1, 1), "failed", planned_end=date(2026, 1, 31))
    assert settled(failed, {"through": "2026-03-10"})
    assert not settled(failed, {"through": "2026-03-09"})
    assert not settled(
        Campaign("c", date(2026, 1, 1), "active", planned_end=date(2026, 1, 31)), {"through": "2026-06-01"}
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_request_budget_waits_for_the_minute_window(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("source_soundlink.client.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    budget = RequestBudget(per_minute=3, per_hour=100, clock=clock)
    waits = [budget.acquire() for _ in range(7)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == 60  # the 4th request waits for the 1st to leave the minute window
    assert clock.now == 120  # 7 requests at 3/minute need two full minutes


def test_request_budget_waits_for_the_hour_window(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("source_soundlink.client.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    budget = RequestBudget(per_minute=1000, per_hour=5, clock=clock)
    for _ in range(5):
        budget.acquire()
    assert budget.acquire() == 3600
