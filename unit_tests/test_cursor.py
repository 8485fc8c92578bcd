"""Cursor rules: the first day to read (trailing lookback), the covered span, settling."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import (
    CampaignState,
    after_window,
    campaign_states,
    covered_through,
    first_day_to_read,
    late_delivery,
    plan,
    read_state,
    settled,
)
from source_soundlink.engagement.window import Window, WindowProgress
from unit_tests.builders import config

TODAY = date(2026, 11, 27)
ENGAGEMENT = "campaign_engagement_daily"
STREAM_STATE = {"state_version": 1, "campaigns": {"c": {"from": "2026-01-01", "through": "2026-03-01"}}}


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
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-02-01T09:00:00Z")
    assert not settled(
        campaign, _s({"through": "2026-03-10", "ended_on": "2026-02-01"}), TODAY
    )  # 37 days after
    assert settled(campaign, _s({"through": "2026-03-11", "ended_on": "2026-02-01"}), TODAY)  # 38 days after
    assert not settled(campaign, _s({"through": "2026-11-27", "has_rows": True}), TODAY)  # no `ended` rows


def test_ended_rows_do_not_settle_a_campaign_that_is_not_terminal() -> None:
    # Renewed under the same id, or a key that cannot read campaigns (status unknown): keep reading.
    state = {"through": "2026-06-01", "ended_on": "2026-02-01"}
    for status in ("active", "renewing", None):
        assert not settled(Campaign("c", date(2026, 1, 1), status), _s(state), TODAY)


def test_campaign_without_rows_settles_after_its_planned_end_when_terminal() -> None:
    failed = Campaign(
        "c", date(2026, 1, 1), "failed", planned_end=date(2026, 1, 31), updated_at="2026-01-31T00:00:00Z"
    )
    assert settled(failed, _s({"through": "2026-03-10"}), TODAY)
    assert not settled(failed, _s({"through": "2026-03-09"}), TODAY)
    assert not settled(
        Campaign("c", date(2026, 1, 1), "active", planned_end=date(2026, 1, 31)),
        _s({"through": "2026-06-01"}),
        TODAY,
    )


def test_campaign_state_round_trips_its_json_and_drops_empty_fields() -> None:
    raw = {
        "from": "2026-01-01",
        "through": "2026-06-01",
        "engagement_context": "playlist",
        "has_rows": True,
        "report_date": "2026-05-30",
        "ended_on": "2026-04-01",
    }
    assert CampaignState.from_json(raw).to_json() == raw
    assert CampaignState.from_json({"from": "2026-01-01", "through": "2026-01-05"}).to_json() == {
        "from": "2026-01-01",
        "through": "2026-01-05",
    }


def test_given_a_settled_campaign_when_written_then_it_is_compact_and_reads_back_settled() -> None:
    settled_v1 = {
        "from": "2026-01-01",
        "through": "2026-06-01",
        "has_rows": True,
        "report_date": "2026-05-30",
        "ended_on": "2026-04-01",
        "settled": True,
        "updated_at": "2026-04-02T00:00:00Z",
    }
    compact = CampaignState.from_json(settled_v1, version=1).to_json()
    assert compact == ["2026-01-01", "2026-06-01", "2026-04-02T00:00:00Z"]
    back = CampaignState.from_json(compact)
    assert (back.settled, back.updated_at, back.covered_from, back.through) == (
        True,
        "2026-04-02T00:00:00Z",
        date(2026, 1, 1),
        date(2026, 6, 1),
    )
    with_context = CampaignState(date(2026, 1, 1), date(2026, 6, 1), "catalog", settled=True, updated_at="U")
    back = CampaignState.from_json(with_context.to_json())
    assert (back.covered_from, back.through, back.engagement_context, back.settled, back.updated_at) == (
        date(2026, 1, 1),
        date(2026, 6, 1),
        "catalog",
        True,
        "U",
    )


def test_given_an_ended_run_when_the_campaign_changed_later_then_it_is_not_settled_before_that_change() -> (
    None
):
    # Ran in January, renewed in June, completed: its January `ended` run settles nothing before the read
    # is past everything its updatedAt (the renewal's end) could have changed, or reached today.
    renewed = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-07-01T10:00:00Z")
    january = _s({"from": "2026-01-01", "through": "2026-03-31", "ended_on": "2026-01-21", "has_rows": True})
    assert not settled(renewed, january, TODAY)
    after_renewal = _s({"from": "2026-01-01", "through": "2026-08-08", "ended_on": "2026-07-01"})
    assert settled(renewed, after_renewal, TODAY)  # 2026-07-01 + 38 days
    no_updated_at = Campaign("c", date(2026, 1, 1), "completed")
    assert not settled(no_updated_at, january, TODAY)
    assert settled(no_updated_at, january, date(2026, 3, 31))  # the read reached today


def test_given_start_date_inside_the_revision_window_when_planned_then_the_span_shrinks_to_it() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    state = _s({"from": "2026-01-01", "through": "2026-11-26"})
    # 11-24 is after through - lookback (11-19): days 11-19..11-23 can still change and are not re-read.
    planned = plan(campaign, _config(start_date="2026-11-24"), state)
    assert planned is not None and planned.first == date(2026, 11, 24)
    assert planned.base.covered_from == date(2026, 11, 24)
    # Clearing start_date later: the span no longer reaches the campaign's start, so it is read again.
    assert first_day_to_read(campaign, _config(), planned.base) == date(2026, 1, 1)
    # A start_date before through - lookback skips only final days: the span is kept.
    kept = plan(campaign, _config(start_date="2026-06-01"), state)
    assert kept is not None and kept.base.covered_from == date(2026, 1, 1)
    assert kept.first == date(2026, 11, 19)


def test_given_a_through_in_the_future_when_planned_then_the_lookback_starts_from_today() -> None:
    campaign = Campaign("c", date(2026, 1, 1))
    future = _s({"from": "2026-01-01", "through": "2026-12-25"})
    assert first_day_to_read(campaign, _config(), future) == TODAY - timedelta(days=7)


def test_given_no_row_yet_when_the_first_window_has_rows_from_its_first_day_then_it_is_a_late_delivery() -> (
    None
):
    never = _s({"from": "2026-10-01", "through": "2026-11-20"})
    planned = plan(Campaign("c", date(2026, 10, 1)), _config(), never)
    assert planned is not None and planned.first == date(2026, 11, 13)
    window = Window("c", planned.first, TODAY)
    assert late_delivery(never, planned, window, WindowProgress(first_date="2026-11-13"))
    assert not late_delivery(never, planned, window, WindowProgress(first_date="2026-11-14"))
    assert not late_delivery(never, planned, window, WindowProgress())
    had_rows = _s({"from": "2026-10-01", "through": "2026-11-20", "has_rows": True})
    assert not late_delivery(had_rows, planned, window, WindowProgress(first_date="2026-11-13"))


@pytest.mark.parametrize(
    "passed",
    [
        [
            {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": ENGAGEMENT}, "stream_state": STREAM_STATE},
            }
        ],
        [
            {
                "type": "STATE",
                "state": {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": ENGAGEMENT}, "stream_state": STREAM_STATE},
                },
            }
        ],
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": ENGAGEMENT}, "stream_state": STREAM_STATE},
            },
        },
        {ENGAGEMENT: STREAM_STATE},
        STREAM_STATE,
    ],
)
def test_given_a_form_a_user_would_pass_when_read_then_the_stream_state_is_found(passed: Any) -> None:
    assert read_state(passed) == STREAM_STATE


@pytest.mark.parametrize(
    ("passed", "what"),
    [
        ({"state_version": 1, "campaigns": [{"from": "2026-01-01"}]}, "campaigns is a list"),
        ({"state_version": 99, "campaigns": {}}, "state_version is 99"),
        (
            {"state_version": 1, "campaigns": {"c": {"from": "2026-02-30", "through": "2026-03-01"}}},
            "campaign c: from '2026-02-30' is not a YYYY-MM-DD date",
        ),
        (
            {"state_version": 1, "campaigns": {"c": {"from": "2026-01-01", "through": 20260301}}},
            "campaign c: through 20260301 is not a YYYY-MM-DD date",
        ),
        ({"cursor": "2026-01-01"}, "not a state of this source"),
        (["nope"], "entry 1 of the list is not a per-stream (STREAM) state"),
        ({"state_version": 2, "campaigns": {"c": ["2026-01-01"]}}, "a settled campaign is [from, through"),
    ],
)
def test_given_a_state_it_cannot_read_when_read_then_a_config_error_says_what_and_how_to_start_over(
    passed: Any, what: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        read_state(passed)
    message = str(raised.value)
    assert what in message
    assert "refresh the stream in Airbyte" in message and "without --state" in message


def test_given_no_state_or_an_empty_one_when_read_then_it_is_a_first_sync() -> None:
    assert read_state(None) is None
    assert read_state([]) is None
    assert read_state({}) is None
    assert (
        campaign_states(
            read_state(
                [
                    {
                        "type": "STREAM",
                        "stream": {"stream_descriptor": {"name": ENGAGEMENT}, "stream_state": {}},
                    }
                ]
            )
        )
        == {}
    )


def test_given_a_0_1_0_settled_flag_when_the_campaign_was_renewed_later_then_it_is_read_again() -> None:
    # 0.1.0 settled on the `ended` run alone: read 05-01..07-29, ended 05-21, but the campaign was renewed
    # and completed on 09-08. Its flag is checked against today's rule before it is trusted.
    renewed = Campaign("c", date(2026, 5, 1), "completed", updated_at="2026-09-08T10:00:00Z")
    from_0_1_0 = {
        "from": "2026-05-01",
        "through": "2026-07-29",
        "has_rows": True,
        "ended_on": "2026-05-21",
        "settled": True,
        "updated_at": "2026-09-08T10:00:00Z",
    }
    assert first_day_to_read(renewed, _config(), CampaignState.from_json(from_0_1_0, version=1)) == date(
        2026, 7, 22
    )
    truly_settled = {**from_0_1_0, "through": "2026-10-20"}  # past 09-08 + 38 days: the flag holds
    assert first_day_to_read(renewed, _config(), CampaignState.from_json(truly_settled, version=1)) is None


def test_given_a_settled_campaign_reopened_without_new_rows_then_it_settles_38_days_after_through() -> None:
    edited = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-11-01T00:00:00Z")  # no planned end
    reopened = CampaignState.from_json(["2026-01-01", "2026-10-01", "2026-09-01T00:00:00Z"])
    planned = plan(edited, _config(), reopened)
    assert planned is not None and planned.first == date(2026, 9, 24)
    no_rows = WindowProgress()
    window = Window("c", planned.first, TODAY)
    assert not late_delivery(planned.base, planned, window, WindowProgress(first_date="2026-09-24"))
    after = after_window(edited, planned.base, window, no_rows, _config())
    assert after.settled and after.updated_at == "2026-11-01T00:00:00Z"  # 10-01 + 38 days <= 11-27


def test_given_a_legacy_state_keyed_by_both_stream_names_when_read_then_the_engagement_one_is_used() -> None:
    legacy = {"campaigns": {}, ENGAGEMENT: STREAM_STATE}
    assert read_state(legacy) == STREAM_STATE
    assert read_state({"campaigns": {}}) is None
