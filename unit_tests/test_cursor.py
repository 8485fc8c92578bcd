"""Cursor rules: the first day to read (trailing lookback), the covered span, settling."""

from __future__ import annotations

from datetime import date
from typing import Any

from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import CampaignState, covered_through, first_day_to_read, settled
from unit_tests.builders import config

TODAY = date(2026, 11, 27)


def _s(raw: dict[str, Any] | None) -> CampaignState | None:
    return None if raw is None else CampaignState.from_json(raw)


def _config(**overrides: object) -> SoundlinkConfig:
    return SoundlinkConfig.from_mapping(config(**overrides), today=TODAY)


def test_first_day_without_state_is_the_campaign_start_or_start_date() -> None:
    campaign = Campaign("c", date(2026, 3, 1))
    assert first_day_to_read(campaign, _config(), _s(None)) == date(2026, 3, 1)
    assert first_day_to_read(campaign, _config(start_date="2026-06-01"), _s(None)) == date(2026, 6, 1)
    assert first_day_to_read(campaign, _config(start_date="2026-01-01"), _s(None)) == date(2026, 3, 1)


def test_first_day_with_state_is_through_minus_lookback() -> None:
    campaign = Campaign("c", date(2026, 3, 1))
    state = {"from": "2026-03-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(), _s(state)) == date(2026, 11, 13)
    assert first_day_to_read(campaign, _config(lookback_window_days=30), _s(state)) == date(2026, 10, 21)


def test_start_date_moved_before_the_covered_range_rereads_from_it() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    state = {"from": "2026-06-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(start_date="2026-02-01"), _s(state)) == date(2026, 2, 1)


def test_widening_engagement_context_backfills_and_narrowing_does_not() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    playlist = {"from": "2026-01-01", "through": "2026-11-20", "engagement_context": "playlist"}
    assert first_day_to_read(campaign, _config(), _s(playlist)) == date(2026, 1, 1)
    assert first_day_to_read(campaign, _config(engagement_context="catalog"), _s(playlist)) == date(
        2026, 1, 1
    )
    assert first_day_to_read(campaign, _config(engagement_context="playlist"), _s(playlist)) == date(
        2026, 11, 13
    )
    both = {"from": "2026-01-01", "through": "2026-11-20"}
    assert first_day_to_read(campaign, _config(engagement_context="catalog"), _s(both)) == date(2026, 11, 13)


def test_a_sync_that_started_after_the_covered_span_does_not_bridge_the_gap() -> None:
    # Read 01-01..02-01, then (start_date 09-01) 09-01..11-20: the state must not claim 02-02..08-31.
    gap = {"from": "2026-01-01", "through": "2026-02-01"}
    assert covered_through(date(2026, 9, 1), _config(start_date="2026-09-01"), _s(gap)) is None
    assert covered_through(date(2026, 2, 2), _config(start_date="2026-02-02"), _s(gap)) == date(2026, 2, 1)


def test_a_settled_flag_is_ignored_once_the_status_is_no_longer_terminal() -> None:
    state = {"from": "2026-01-01", "through": "2026-06-01", "settled": True, "updated_at": "U"}
    assert (
        first_day_to_read(Campaign("c", date(2026, 1, 1), "completed", updated_at="U"), _config(), _s(state))
        is None
    )
    renewing = Campaign("c", date(2026, 1, 1), "renewing", updated_at="U")
    assert first_day_to_read(renewing, _config(), _s(state)) == date(2026, 5, 25)


def test_campaign_not_started_yet_has_nothing_to_read() -> None:
    assert first_day_to_read(Campaign("c", date(2026, 12, 5)), _config(), _s(None)) is None


def test_settled_campaign_is_skipped_unless_it_changed() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-03-01T00:00:00Z")
    state = {
        "from": "2026-01-01",
        "through": "2026-06-01",
        "settled": True,
        "updated_at": "2026-03-01T00:00:00Z",
    }
    assert first_day_to_read(campaign, _config(), _s(state)) is None
    renewed = Campaign("c", date(2026, 1, 1), "renewing", updated_at="2026-11-01T00:00:00Z")
    assert first_day_to_read(renewed, _config(), _s(state)) == date(2026, 5, 25)


def test_settled_needs_tail_and_revision_window_read() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed")
    assert not settled(campaign, _s({"through": "2026-03-10", "ended_on": "2026-02-01"}))  # 37 days after
    assert settled(campaign, _s({"through": "2026-03-11", "ended_on": "2026-02-01"}))  # 38 days after
    assert not settled(campaign, _s({"through": "2026-11-27", "has_rows": True}))  # no `ended` rows


def test_ended_rows_do_not_settle_a_campaign_that_is_not_terminal() -> None:
    # Renewed under the same id, or a key that cannot read campaigns (status unknown): keep reading.
    state = {"through": "2026-06-01", "ended_on": "2026-02-01"}
    for status in ("active", "renewing", None):
        assert not settled(Campaign("c", date(2026, 1, 1), status), _s(state))


def test_campaign_without_rows_settles_after_its_planned_end_when_terminal() -> None:
    failed = Campaign("c", date(2026, 1, 1), "failed", planned_end=date(2026, 1, 31))
    assert settled(failed, _s({"through": "2026-03-10"}))
    assert not settled(failed, _s({"through": "2026-03-09"}))
    assert not settled(
        Campaign("c", date(2026, 1, 1), "active", planned_end=date(2026, 1, 31)),
        _s({"through": "2026-06-01"}),
    )


def test_campaign_state_round_trips_its_json_and_drops_empty_fields() -> None:
    raw = {
        "from": "2026-01-01",
        "through": "2026-06-01",
        "engagement_context": "playlist",
        "has_rows": True,
        "report_date": "2026-05-30",
        "ended_on": "2026-04-01",
        "settled": True,
        "updated_at": "2026-04-02T00:00:00Z",
    }
    assert CampaignState.from_json(raw).to_json() == raw
    assert CampaignState.from_json({"from": "2026-01-01", "through": "2026-01-05"}).to_json() == {
        "from": "2026-01-01",
        "through": "2026-01-05",
    }
