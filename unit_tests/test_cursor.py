"""Cursor rules: the first day to read (trailing lookback), the covered span, settling."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
import requests_mock

from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.engagement import EngagementExport, SyncFailed
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import (
    CampaignState,
    after_window,
    campaign_states,
    confirm_settled,
    confirmed,
    covered_through,
    first_day_to_read,
    late_delivery,
    plan,
    read_state,
    settled,
    stream_state,
    sync_today,
)
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.window import Window, WindowProgress
from unit_tests import builders as b
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


def test_given_start_date_past_the_covered_span_when_planned_then_the_days_between_are_kept_stale() -> None:
    # Read 01-01..02-01, then (start_date 09-01) 09-01 on: 01-25..08-31 were never read (or could still
    # change when last read), so the span keeps them as stale instead of claiming or forgetting them.
    gap = _s({"from": "2026-01-01", "through": "2026-02-01"})
    planned = plan(Campaign("c", date(2026, 1, 1)), _config(start_date="2026-09-01"), gap)
    assert planned is not None and planned.first == date(2026, 9, 1)
    assert planned.base.covered_from == date(2026, 1, 1)
    assert planned.base.stale == (date(2026, 1, 25), date(2026, 8, 31))
    assert covered_through(date(2026, 2, 2), _config(start_date="2026-02-02"), gap) == date(2026, 2, 1)
    # start_date cleared after that sync: the stale days are read, from their first one.
    after = replace(planned.base, through=TODAY)
    cleared = plan(Campaign("c", date(2026, 1, 1)), _config(), after)
    assert cleared is not None and cleared.first == date(2026, 1, 25) and cleared.base.stale is None


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
    settled_v2 = CampaignState(
        date(2026, 1, 1),
        date(2026, 6, 1),
        None,
        True,
        "2026-05-30",
        date(2026, 4, 1),
        True,
        "2026-04-02T00:00:00Z",
    )
    compact = settled_v2.to_json()
    assert compact == ["2026-01-01", "2026-06-01", "2026-04-02T00:00:00Z"]
    back = CampaignState.from_json(compact)
    assert (back.settled, back.settle_checked, back.updated_at, back.covered_from, back.through) == (
        True,
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


SETTLED_BY_0_1_0 = {
    "from": "2026-01-01",
    "through": "2026-06-01",
    "has_rows": True,
    "report_date": "2026-05-30",
    "ended_on": "2026-04-01",
    "settled": True,
    "updated_at": "2026-04-02T00:00:00Z",
}


def test_given_a_0_1_0_settled_flag_when_written_before_its_recheck_then_it_keeps_the_recheck_mark() -> None:
    unchecked = CampaignState.from_json(SETTLED_BY_0_1_0, version=1)
    assert unchecked.settled and not unchecked.settle_checked
    written = unchecked.to_json()
    assert written == {**SETTLED_BY_0_1_0, "settled": "recheck"}  # never the trusted compact list
    assert CampaignState.from_json(written) == unchecked  # read back by this version: still unchecked
    # Through a whole stream state and back, as every STATE of a sync writes it.
    states = campaign_states(
        stream_state(campaign_states({"state_version": 1, "campaigns": {"c": SETTLED_BY_0_1_0}}))
    )
    assert states["c"] == unchecked
    # Once checked and confirmed by today's rule, it is trusted and compact.
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-04-02T00:00:00Z")
    trusted = confirmed(campaign, _config(), unchecked)
    assert trusted is not None and trusted.to_json() == ["2026-01-01", "2026-06-01", "2026-04-02T00:00:00Z"]
    assert confirmed(campaign, _config(), trusted) is None  # nothing left to confirm
    # At the listing, before the first STATE: the listed ones are confirmed, the others keep their mark.
    listed = confirm_settled({"c": unchecked, "not_listed": unchecked}, [campaign], _config())
    assert listed == {"c": trusted, "not_listed": unchecked}
    renewed = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-09-08T10:00:00Z")
    assert confirmed(renewed, _config(), unchecked) is None  # changed since: read, not confirmed


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


def test_given_start_date_inside_the_revision_window_when_planned_then_the_days_it_cuts_off_stay_stale() -> (
    None
):
    campaign = Campaign("c", date(2026, 1, 1))
    state = _s({"from": "2026-01-01", "through": "2026-11-26"})
    # 11-24 is after through - lookback (11-19): days 11-19..11-23 can still change and are not re-read.
    planned = plan(campaign, _config(start_date="2026-11-24"), state)
    assert planned is not None and planned.first == date(2026, 11, 24)
    assert planned.base.covered_from == date(2026, 1, 1)  # the span is kept
    assert planned.base.stale == (date(2026, 11, 19), date(2026, 11, 23))
    # Written and read back with the state, carried through the windows read.
    window = Window("c", date(2026, 11, 24), TODAY)
    after = after_window(campaign, planned.base, window, WindowProgress(), _config(start_date="2026-11-24"))
    assert CampaignState.from_json(after.to_json()) == after and after.stale == planned.base.stale
    # The next sync, start_date still set: still stale, nothing more read than from start_date.
    again = plan(campaign, _config(start_date="2026-11-24"), after)
    assert again is not None and again.first == date(2026, 11, 24)
    assert again.base.stale == (date(2026, 11, 19), date(2026, 11, 23))
    # Clearing start_date: the stale days and the lookback are read, not the campaign's whole history.
    cleared = plan(campaign, _config(), after)
    assert cleared is not None and cleared.first == date(2026, 11, 19) and cleared.base.stale is None
    # Moved earlier, but not to the stale days' start: only the days asked for are read, the rest stays.
    partly = plan(campaign, _config(start_date="2026-11-21"), after)
    assert partly is not None and partly.first == date(2026, 11, 21)
    assert partly.base.stale == (date(2026, 11, 19), date(2026, 11, 20))
    # A start_date before through - lookback skips only final days: nothing is stale.
    kept = plan(campaign, _config(start_date="2026-06-01"), state)
    assert kept is not None and kept.base.covered_from == date(2026, 1, 1) and kept.base.stale is None
    assert kept.first == date(2026, 11, 19)


def test_given_a_settled_campaign_when_start_date_moves_later_or_is_cleared_then_nothing_is_read() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-03-01T00:00:00Z")
    settled_state = CampaignState.from_json(["2026-01-01", "2026-06-01", "2026-03-01T00:00:00Z"])
    for start_date in ("2026-05-30", "2026-06-02", "2026-11-25", None):  # inside, past its span, cleared
        assert plan(campaign, _config(start_date=start_date), settled_state) is None, start_date
    # Moved before the span: those days were never read.
    assert first_day_to_read(
        Campaign("c", date(2025, 6, 1), "completed", updated_at="2026-03-01T00:00:00Z"),
        _config(start_date="2025-12-01"),
        settled_state,
    ) == date(2025, 12, 1)


def test_given_a_settled_campaign_with_stale_days_when_they_are_asked_for_again_then_only_then_read() -> None:
    campaign = Campaign("c", date(2026, 1, 1), "completed", updated_at="2026-03-01T00:00:00Z")
    state = CampaignState(
        date(2026, 1, 1),
        date(2026, 6, 1),
        has_rows=True,
        ended_on=date(2026, 3, 1),
        settled=True,
        updated_at="2026-03-01T00:00:00Z",
        stale=(date(2026, 2, 20), date(2026, 2, 26)),
    )
    written = state.to_json()
    assert (
        isinstance(written, dict)
        and written["settled"] is True
        and written["stale"]
        == [
            "2026-02-20",
            "2026-02-26",
        ]
    )
    assert CampaignState.from_json(written) == state  # trusted: written by this version
    assert plan(campaign, _config(start_date="2026-02-27"), state) is None
    asked = plan(campaign, _config(), state)
    assert asked is not None and asked.first == date(2026, 2, 20) and asked.base.stale is None


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
        (
            {"state_version": 2, "campaigns": {"c": {"settled": "yes"}}},
            "campaign c: settled 'yes' is not true or",
        ),
        (
            {"state_version": 2, "campaigns": {"c": {"stale": ["2026-03-02", "2026-03-01"]}}},
            "campaign c: stale ['2026-03-02', '2026-03-01'] is not [first day, last day]",
        ),
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


# -- which date is today --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_offset", "today_offset", "settles", "warned"),
    [
        (None, 0, True, None),  # no Date header seen
        (0, 0, True, None),
        (-1, -1, True, "Soundlink's date is"),  # around midnight UTC: Soundlink's today
        (-2, -2, True, "Soundlink's date is"),
        (2, 0, True, None),  # Soundlink ahead: its newest day is read next sync
        (-3, -3, False, "3 days from this host's"),
        (-400, -400, False, "400 days from this host's"),
        (400, 0, False, "400 days from this host's"),
    ],
)
def test_given_the_host_and_soundlink_dates_when_the_sync_decides_today_then_far_apart_clocks_settle_nothing(
    server_offset: int | None, today_offset: int, settles: bool, warned: str | None
) -> None:
    server = None if server_offset is None else TODAY + timedelta(days=server_offset)

    today, today_settles, warning = sync_today(TODAY, server)

    assert (today, today_settles) == (TODAY + timedelta(days=today_offset), settles)
    assert (warning is None) if warned is None else (warned in warning)


def test_given_a_date_header_400_days_behind_and_a_90_day_lookback_when_read_then_nothing_settles_early() -> (
    None
):
    # Ran 02-2025 with a 30-day tail, renewed in 09-2026, completed 11-10: its tail is still running today.
    renewed = Campaign("c", date(2025, 2, 1), "completed", updated_at="2026-11-10T12:00:00Z")
    today, today_settles, _ = sync_today(TODAY, TODAY - timedelta(days=400))
    config = replace(_config(lookback_window_days=90), today=today, today_settles=today_settles)
    state = CampaignState()
    ended_run = WindowProgress(
        last_date="2025-03-31", first_date="2025-02-01", ended_since="2025-03-03", saw_not_ended=True
    )
    for window, progress in (
        (Window("c", date(2025, 2, 1), date(2025, 5, 1)), ended_run),
        (Window("c", date(2025, 5, 2), today), WindowProgress()),  # nothing up to the Date header's today
    ):
        state = after_window(renewed, state, window, progress, config)
        assert not state.settled, window
    # The rule it falls back from would have settled it on the `ended` run of 2025 alone.
    assert settled(renewed, state, today)
    # The next sync, clocks agreeing again, reads it from through - lookback on.
    assert first_day_to_read(renewed, _config(lookback_window_days=90), state) == today - timedelta(days=90)


# -- the 0.1.0 re-check mark in every STATE a sync writes before the campaign is checked ---------------

RENEWED = b.campaign("camp_renewed", created="2026-01-01", status="completed")
RENEWED["updatedAt"] = "2026-09-08T10:00:00Z"  # renewed and completed after 0.1.0's flag was written
BYSTANDER = b.campaign("camp_b", created="2026-08-01")
STATE_0_1_0 = {
    "state_version": 1,
    "campaigns": {
        "camp_renewed": {
            "from": "2026-01-01",
            "through": "2026-03-31",
            "has_rows": True,
            "report_date": "2026-02-20",
            "ended_on": "2026-01-21",
            "settled": True,
            "updated_at": "2026-09-08T10:00:00Z",
        },
        "camp_b": {"from": "2026-08-01", "through": "2026-09-30", "has_rows": True},
    },
}
END = "2026-10-31"


def _answer_exports(refuse_first: dict[str, Any] | None = None) -> Any:
    """Answers every export with two rows a day of its window; the first one with `refuse_first`."""
    refused: list[bool] = []

    def answer(request: Any, context: Any) -> bytes:
        if refuse_first is not None and not refused:
            refused.append(True)
            context.status_code = 429
            context.headers["Retry-After"] = str(refuse_first["retry_after"])
            return orjson.dumps({"error": {"code": "rate_limit_exceeded"}, "meta": {"requestId": "req-429"}})
        query = parse_qs(request.query)
        rows = b.daily_rows(request.path.split("/")[3], query["startdate"][0], query["enddate"][0])
        context.headers["X-Row-Count"] = str(len(rows))
        return b.jsonl(rows)

    return answer


def _sync(
    state: dict[str, Any] | None,
    refuse_first: dict[str, Any] | None = None,
    stop_after_states: int = 0,
    **config: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One sync over HTTP mocks (the renewed campaign listed last, one worker): its STATE messages' stream
    states and the campaigns exported. `stop_after_states` kills it after that many STATEs."""
    listing = {"data": {"items": [BYSTANDER, RENEWED], "pagination": {"totalPages": 1}}}
    export = EngagementExport(
        SoundlinkConfig.from_mapping(b.config(end_date=END, num_workers=1, window_size_days=30, **config)),
        state,
        clock=b.FakeClock(),  # a Retry-After passes in no time
        state_interval_s=0,  # a STATE after every window: each is one the platform may keep
    )
    states: list[dict[str, Any]] = []
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{b.BASE_URL}/v1/campaigns", json=listing)
        mocker.get(re.compile(r".*/metrics/engagement/export"), content=_answer_exports(refuse_first))
        messages = export.messages()
        try:
            for chunk in messages:
                for line in chunk.splitlines():
                    message = orjson.loads(line)
                    if message["type"] == "STATE":
                        states.append(message["state"]["stream"]["stream_state"])
                if stop_after_states and len(states) >= stop_after_states:
                    messages.close()  # killed: the platform keeps the last STATE it got
                    break
        except SyncFailed:
            pass
        exported = [r.path.split("/")[3] for r in mocker.request_history if r.path.endswith("/export")]
    return states, exported


@pytest.mark.parametrize(
    ("way", "sync"),
    [
        ("campaign_ids narrowed", {"campaign_ids": ["camp_b"]}),
        ("failure: the quota spent at the first export", {"refuse_first": {"retry_after": 7200}}),
        ("killed after its first STATE", {"stop_after_states": 1}),
        ("a STATE before a long wait, then heartbeats", {"refuse_first": {"retry_after": 1200}}),
    ],
)
def test_given_a_0_1_0_settled_flag_when_a_state_is_written_before_its_recheck_then_the_next_sync_rechecks_it(
    way: str, sync: dict[str, Any]
) -> None:
    states, exported = _sync(STATE_0_1_0, **sync)

    before_recheck = states[: len(states) if "camp_renewed" not in exported else 1]
    assert before_recheck, way
    for state in before_recheck:  # every STATE the platform could keep before the campaign was checked
        assert state["campaigns"]["camp_renewed"] == {
            **STATE_0_1_0["campaigns"]["camp_renewed"],
            "settled": "recheck",
        }
    resumed, exported = _sync(before_recheck[-1])  # what a sync stopped at that moment leaves
    assert "camp_renewed" in exported, f"{way}: the renewed campaign was trusted as settled"
    assert resumed[-1]["campaigns"]["camp_renewed"]["through"] == END


# -- the documented request rule --------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOCS_PAGE = DOCS / "integrations" / "sources" / "soundlink.md"
# "... days apart (82 by default" or "... days apart, 82 by default", on any page under docs/
RULE = re.compile(r"days\s+apart[\s,(]*(\d+) by default")


def test_given_the_docs_request_rule_when_syncs_are_that_far_apart_then_one_request_and_a_day_more_two() -> (
    None
):
    stated = {
        f"{path.relative_to(DOCS)}: {int(n)}"
        for path in DOCS.rglob("*.md")
        for n in RULE.findall(path.read_text())
    }
    assert any(line.startswith("integrations/") for line in stated), "the docs page no longer states the rule"
    apart = int(RULE.findall(DOCS_PAGE.read_text())[0])
    defaults = _config()
    assert apart == defaults.window_size_days - defaults.lookback_window_days - 1
    assert {line.rsplit(": ", 1)[1] for line in stated} == {str(apart)}, (
        f"the docs disagree: {sorted(stated)}"
    )
    campaign = Campaign("c", date(2026, 1, 1))
    last_sync = _s({"from": "2026-01-01", "through": "2026-05-01", "has_rows": True})
    for days, requests in ((apart, 1), (apart + 1, 2)):
        today = date(2026, 5, 1) + timedelta(days=days)
        config = SoundlinkConfig.from_mapping(b.config(), today=today)
        planned = plan(campaign, config, last_sync)
        assert planned is not None
        windows = list(
            DateSlicingPartitioner(config.window_size_days).windows("c", planned.first, config.last_date)
        )
        assert len(windows) == requests, (days, windows)
