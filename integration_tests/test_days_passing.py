"""Days passing: daily syncs against a sandbox whose today moves, compared with its truth after every sync.

Each test is a case a multi-day review found (renewals, start_date round trips, a clock ahead of
Soundlink's, unreadable state, late delivery), then one simulation of two months of daily syncs that mixes
them all with revisions, completions and config changes. The destination is modelled as Append + Deduped:
the union of every sync's records, later syncs winning on the primary key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Connector,
    Rows,
    Run,
    assert_same_rows,
    by_pk,
    catalog,
    export_requests,
    pinned_connector_command,
)
from soundlink_sandbox import Sandbox
from test_kill_resume import after_states, run_and_kill

T0 = date(2026, 6, 1)  # the sandbox's day 0: campaigns are anchored there, then days pass


@pytest.fixture
def days_sandbox() -> Iterator[Sandbox]:
    with Sandbox(today=T0, rows_per_day=4, rate_limit_per_minute=0, rate_limit_per_hour=0, cache_mb=64) as sb:
        yield sb


@pytest.fixture
def days_connector(days_sandbox: Sandbox, tmp_path: Path) -> Connector:
    return Connector(days_sandbox, tmp_path)


class Destination:
    """Append + Deduped on the primary key, and the state Airbyte would pass to the next sync."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.rows: Rows = {}
        self.state: dict[str, Any] | None = None

    def sync(self, host_ahead_days: int = 0, **config: Any) -> Run:
        command = None
        if host_ahead_days:
            host_today = self.connector.sandbox.today() + timedelta(days=host_ahead_days)
            command = pinned_connector_command(host_today)
        run = self.connector.read(self.connector.config(**config), self.state, command=command).assert_ok()
        self.rows = by_pk(self.rows.values(), run.records)
        self.state = run.state
        return run

    def assert_equals_truth(
        self, sandbox: Sandbox, context: str | None = None, since: date | None = None
    ) -> None:
        """Every row equals the sandbox's (limited to what the config asks for, when it narrows)."""

        def wanted(row: dict[str, Any]) -> bool:
            return (context is None or row["engagement_context"] == context) and (
                since is None or row["report_date"] >= since.isoformat()
            )

        assert_same_rows({k: r for k, r in self.rows.items() if wanted(r)}, filter(wanted, sandbox.truth()))


def test_given_a_campaign_renewed_in_the_past_when_synced_fresh_then_both_runs_are_read(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    renewed = days_sandbox.add_campaign(created_days_ago=200, campaign_duration=20, renewals=[(100, 20)])
    destination = Destination(days_connector)

    destination.sync(campaign_ids=[renewed["campaignId"]])

    assert renewed["status"] == "completed"
    truth = days_sandbox.truth(renewed["campaignId"])
    assert len(truth) == 102 * 4  # 51 days per run: 21 active and 30 ended
    assert_same_rows(destination.rows, truth)
    settled_state = destination.state["campaigns"][renewed["campaignId"]]
    assert isinstance(settled_state, list) and settled_state[2] == renewed["updatedAt"]


def test_given_a_settled_campaign_when_renewed_during_a_long_pause_then_the_renewal_is_read(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    # Ended 80 days before T0; renewed 100 days after T0 (more than a 90-day window after the last read).
    campaign = days_sandbox.add_campaign(created_days_ago=100, campaign_duration=20, renewals=[(-100, 20)])
    cid = campaign["campaignId"]
    destination = Destination(days_connector)
    destination.sync(campaign_ids=[cid])
    assert isinstance(destination.state["campaigns"][cid], list)  # settled (compact)

    days_sandbox.set_today(T0 + timedelta(days=170))  # the connection was paused meanwhile
    destination.sync(campaign_ids=[cid])

    assert_same_rows(destination.rows, days_sandbox.truth(cid))
    assert len(days_sandbox.truth(cid)) == 2 * 51 * 4


def test_given_start_date_set_inside_the_revision_window_then_cleared_then_no_revision_is_lost(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    destination = Destination(days_connector)
    destination.sync()
    start_date = (T0 - timedelta(days=2)).isoformat()
    for _ in range(3):
        days_sandbox.advance()
        days_sandbox.revise()
        destination.sync(start_date=start_date)
        destination.assert_equals_truth(days_sandbox, since=date.fromisoformat(start_date))

    days_sandbox.advance()
    destination.sync()  # start_date cleared

    destination.assert_equals_truth(days_sandbox)


def test_given_a_host_clock_a_day_ahead_of_soundlink_when_syncing_daily_then_no_revision_is_lost(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    destination = Destination(days_connector)
    for _ in range(4):
        run = destination.sync(host_ahead_days=1)
        destination.assert_equals_truth(days_sandbox)
        assert all(r.end <= days_sandbox.today() for r in export_requests(days_sandbox))
        assert any("Soundlink's date is" in log["message"] for log in run.logs)
        days_sandbox.revise()  # revised after the sync: the next sync's lookback must reach it
        days_sandbox.advance()
    destination.sync(host_ahead_days=1)
    destination.assert_equals_truth(days_sandbox)


def test_given_a_state_whose_through_is_in_the_future_when_synced_then_the_campaign_is_read_again(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    destination = Destination(days_connector)
    destination.sync()
    active = next(c["campaignId"] for c in days_sandbox.campaigns() if c["status"] == "active")
    destination.state["campaigns"][active]["through"] = (T0 + timedelta(days=5)).isoformat()
    days_sandbox.clear_requests()
    days_sandbox.revise()

    run = destination.sync()

    assert [r.window for r in export_requests(days_sandbox, active)] == [(T0 - timedelta(days=7), T0)]
    assert any(f"campaign {active}: the state's through" in log["message"] for log in run.logs)
    destination.assert_equals_truth(days_sandbox)


def test_given_the_state_lines_of_an_earlier_sync_as_a_json_list_when_read_then_it_resumes_from_the_last(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    first = days_connector.read().assert_ok()
    printed = [m for m in first.messages if m["type"] == "STATE"]  # full messages, as printed
    days_sandbox.clear_requests()

    argv = days_connector.argv("read", days_connector.config(), catalog_=catalog())
    argv += ["--state", str(days_connector.workdir / "printed-state.json")]
    (days_connector.workdir / "printed-state.json").write_text(json.dumps(printed))
    second = days_connector.run(argv, days_sandbox.api_key).assert_ok()

    exports = export_requests(days_sandbox)
    assert exports and all(r.end == T0 and r.start >= T0 - timedelta(days=7) for r in exports), (
        "a campaign re-read its history"
    )
    assert second.state is not None


# The state 0.1.0 wrote after a first sync of this sandbox at T0 (captured by running 0.1.0 against it).
STATE_0_1_0 = {
    "state_version": 1,
    "campaigns": {
        "0832e952-8859-468a-b91f-13e2319ad429": {
            "from": "2026-02-01",
            "through": "2026-06-01",
            "has_rows": True,
            "report_date": "2026-06-01",
        },
        "3432f145-d518-4512-9136-df3bec9bed2c": {
            "from": "2026-03-23",
            "through": "2026-06-01",
            "has_rows": True,
            "report_date": "2026-06-01",
            "ended_on": "2026-05-13",
        },
        "camp_rbeL1Pan2d": {
            "from": "2025-11-13",
            "through": "2026-05-11",
            "has_rows": True,
            "report_date": "2026-02-11",
            "ended_on": "2026-01-13",
            "settled": True,
            "updated_at": "2026-01-12T04:48:14Z",
        },
        "8caec308-e8d8-46c0-819f-8a6cd02f7e7b": {"from": "2026-05-02", "through": "2026-06-01"},
        "camp_dljuOy10NL": {
            "from": "2026-04-17",
            "through": "2026-06-01",
            "has_rows": True,
            "report_date": "2026-06-01",
        },
        "camp_2LekGD9LDa": {"from": "2026-06-01", "through": "2026-06-01"},
    },
}


def test_given_a_state_written_by_0_1_0_when_synced_then_only_the_lookback_is_read_and_state_moves_to_v2(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    assert set(STATE_0_1_0["campaigns"]) == {c["campaignId"] for c in days_sandbox.campaigns()}
    days_sandbox.advance()
    days_sandbox.revise()

    run = days_connector.read(state=STATE_0_1_0).assert_ok()

    today = days_sandbox.today()
    exports = export_requests(days_sandbox)
    assert "camp_rbeL1Pan2d" not in {r.campaign_id for r in exports}, "the settled campaign was asked again"
    for r in exports:
        covered_from = date.fromisoformat(STATE_0_1_0["campaigns"][r.campaign_id]["from"])
        assert r.window == (max(covered_from, T0 - timedelta(days=7)), today), r
    assert len(exports) == 5
    since = (T0 - timedelta(days=7)).isoformat()
    assert_same_rows(
        by_pk(run.records),
        [
            r
            for r in days_sandbox.truth()
            if r["report_date"] >= since and r["campaign_id"] != "camp_rbeL1Pan2d"
        ],
    )
    assert run.state["state_version"] == 2
    assert run.state["campaigns"]["camp_rbeL1Pan2d"] == ["2025-11-13", "2026-05-11", "2026-01-12T04:48:14Z"]


@pytest.mark.parametrize(
    ("stream_state", "what"),
    [
        ({"state_version": 99, "campaigns": {}}, "state_version is 99"),
        ({"state_version": 1, "campaigns": [{"from": "2026-01-01"}]}, "campaigns is a list"),
        (
            {"state_version": 1, "campaigns": {"c": {"from": "2026-02-30", "through": "2026-03-02"}}},
            "2026-02-30",
        ),
    ],
)
def test_given_a_state_it_cannot_read_when_read_then_it_fails_as_config_error_without_a_request(
    days_sandbox: Sandbox, days_connector: Connector, stream_state: dict[str, Any], what: str
) -> None:
    run = days_connector.read(state=stream_state)

    error = run.assert_failed("config_error")
    assert what in error["message"] and "without --state" in error["message"]
    assert export_requests(days_sandbox) == [] and days_sandbox.requests() == []


def test_given_a_campaign_that_starts_delivering_late_when_synced_daily_then_its_early_days_are_read(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    late = days_sandbox.add_campaign(created_days_ago=3, campaign_duration=40, delivering_after_days=20)
    cid = late["campaignId"]
    destination = Destination(days_connector)
    destination.sync(campaign_ids=[cid])
    days_sandbox.set_today(T0 + timedelta(days=16))
    destination.sync(campaign_ids=[cid])  # still `creating`: no rows, through moves on
    assert destination.rows == {}

    days_sandbox.set_today(T0 + timedelta(days=19))  # active since T0+17, rows back to T0-3
    destination.sync(campaign_ids=[cid])

    truth = days_sandbox.truth(cid)
    assert min(r["report_date"] for r in truth) == (T0 - timedelta(days=3)).isoformat()
    assert_same_rows(destination.rows, truth)


def test_given_sixty_days_of_daily_syncs_with_changes_then_the_destination_always_equals_the_api(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    """Revisions every day; campaigns completing, settling, renewing, starting late; start_date and
    engagement_context changed and restored; a host clock a day ahead for a while."""
    sb = days_sandbox
    renewed_later = sb.add_campaign(created_days_ago=60, campaign_duration=20, renewals=[(-25, 10)])
    sb.add_campaign(
        created_days_ago=1, campaign_duration=30, delivering_after_days=12, target_type="playlist"
    )
    sb.add_campaign(created_days_ago=5, campaign_duration=15)  # completes on day 10, settles later
    sb.add_campaign(created_days_ago=300, campaign_duration=30, status="completed")  # settled at once
    destination = Destination(days_connector)
    renewed_today = None
    for day in range(61):
        config: dict[str, Any] = {}
        narrowed: dict[str, Any] = {}
        if 12 <= day <= 15:
            config["start_date"] = (T0 + timedelta(days=10)).isoformat()
            narrowed["since"] = T0 + timedelta(days=10)
        if 30 <= day <= 32:
            config["engagement_context"] = "playlist"
            narrowed["context"] = "playlist"
        if day == 40:
            completed = [c for c in sb.campaigns() if c["status"] == "completed"]
            renewed_today = sb.renew(completed[0]["campaignId"], duration_days=5)
        destination.sync(host_ahead_days=1 if 45 <= day <= 48 else 0, **config)
        destination.assert_equals_truth(sb, **narrowed)
        sb.revise()
        sb.advance()

    statuses = {c["campaignId"]: c["status"] for c in sb.campaigns()}
    assert statuses[renewed_later["campaignId"]] == "completed" and renewed_today is not None
    settled = [cid for cid, s in destination.state["campaigns"].items() if isinstance(s, list)]
    assert len(settled) >= 3  # the long-ended ones settle; the final sync skips them
    days_sandbox.clear_requests()
    destination.sync()
    requested = {r.campaign_id for r in export_requests(sb)}
    assert not requested & set(settled)
    destination.assert_equals_truth(sb)


# The state 0.1.0 wrote after a first sync at T0 of this sandbox with one more campaign, renewed before that
# sync (`add_campaign(created_days_ago=200, campaign_duration=20, renewals=[(100, 20)])`), captured by
# running 0.1.0 (commit e89614b) against it. 0.1.0 settled camp_gIA6u9egbF on its first run's `ended` rows
# and never read the renewal; every other campaign is as in STATE_0_1_0. 0.1.0 emitted exactly the truth
# within each campaign's from..through (checked when it was captured).
STATE_0_1_0_RENEWED = {
    "state_version": 1,
    "campaigns": {
        **STATE_0_1_0["campaigns"],
        "camp_gIA6u9egbF": {
            "from": "2025-11-13",
            "through": "2026-02-10",
            "has_rows": True,
            "report_date": "2026-01-02",
            "ended_on": "2025-12-04",
            "settled": True,
            "updated_at": "2026-03-13T09:58:24Z",
        },
    },
}


@pytest.mark.parametrize(
    "first_sync",
    ["leaves it out of campaign_ids", "fails on a spent quota", "is killed after its first STATE"],
)
def test_given_a_0_1_0_state_with_a_mis_settled_renewed_campaign_when_the_first_upgrade_misses_it_then_exact(
    days_sandbox: Sandbox, days_connector: Connector, first_sync: str
) -> None:
    renewed = days_sandbox.add_campaign(created_days_ago=200, campaign_duration=20, renewals=[(100, 20)])
    cid = renewed["campaignId"]
    assert cid == "camp_gIA6u9egbF" and set(STATE_0_1_0_RENEWED["campaigns"]) == {
        c["campaignId"] for c in days_sandbox.campaigns()
    }
    destination = Destination(days_connector)
    spans = STATE_0_1_0_RENEWED["campaigns"]
    destination.rows = by_pk(  # what 0.1.0 loaded
        r
        for r in days_sandbox.truth()
        if spans[r["campaign_id"]]["from"] <= r["report_date"] <= spans[r["campaign_id"]]["through"]
    )
    destination.state = STATE_0_1_0_RENEWED
    days_sandbox.advance()
    days_sandbox.revise()

    if first_sync == "leaves it out of campaign_ids":
        destination.sync(campaign_ids=[c for c in spans if c != cid])
    elif first_sync == "is killed after its first STATE":
        # Its export is slow to answer: the other campaigns' windows bring the first (paced) STATE first.
        days_sandbox.add_faults(
            [{"kind": "slow_first_byte", "delay": 3.0, "path_contains": f"/campaigns/{cid}/"}]
        )
        killed = run_and_kill(days_connector, days_connector.config(), destination.state, after_states(1))
        records, destination.state = killed.committed  # what the platform keeps of a killed attempt
        destination.rows = by_pk(destination.rows.values(), records)
        days_sandbox.clear_faults()
    else:
        days_sandbox.add_faults(  # every export in flight is refused: the sync stops before any is read
            [{"kind": "rate_limit", "retry_after": 7200, "path_contains": "/export", "times": 10}]
        )
        run = days_connector.read(days_connector.config(), destination.state)
        assert "used up by another client" in run.assert_failed("transient_error")["message"]
        days_sandbox.clear_faults()  # the quota frees
        destination.rows = by_pk(destination.rows.values(), run.records)
        destination.state = run.state
    assert destination.state["campaigns"][cid]["settled"] == "recheck"  # not yet trusted
    for _ in range(2):  # then two normal syncs, a day apart
        days_sandbox.advance()
        days_sandbox.revise()
        destination.sync()

    destination.assert_equals_truth(days_sandbox)
    assert len(days_sandbox.truth(cid)) == 102 * 4  # both runs, 51 days each


def test_given_a_date_header_400_days_behind_for_one_sync_with_a_90_day_lookback_then_nothing_settles_early(
    days_sandbox: Sandbox, days_connector: Connector
) -> None:
    # Ran T-600..T-560 (tail to T-530), renewed T-100 for 70 days: completed at T-30, its tail runs to today.
    renewed = days_sandbox.add_campaign(created_days_ago=600, campaign_duration=40, renewals=[(100, 70)])
    cid = renewed["campaignId"]
    assert renewed["status"] == "completed"
    destination = Destination(days_connector)
    days_sandbox.configure(date_skew_days=-400)

    run = destination.sync(lookback_window_days=90)

    clock_warnings = [log for log in run.logs if "one of the two clocks is wrong" in log["message"]]
    assert len(clock_warnings) == 1 and "400 days" in clock_warnings[0]["message"]
    assert not isinstance(destination.state["campaigns"][cid], list), "settled on its first run alone"
    assert all(r["report_date"] <= (T0 - timedelta(days=400)).isoformat() for r in run.records)
    days_sandbox.configure(date_skew_days=0)
    days_sandbox.advance()
    days_sandbox.revise()
    destination.sync(lookback_window_days=90)
    destination.assert_equals_truth(days_sandbox)
    tail = (T0 - timedelta(days=29)).isoformat()
    assert any(r["report_date"] >= tail for r in days_sandbox.truth(cid))  # the tail an early settle misses


def test_given_300_campaigns_when_start_date_moves_later_for_two_syncs_then_clears_then_no_request_more(
    tmp_path: Path,
) -> None:
    """Settled campaigns cost nothing whatever start_date says; running ones re-read only their stale days
    when it is cleared. The same days without the change are the yardstick; both stay exact."""
    requests_per_sync: dict[bool, list[int]] = {}
    for moved in (False, True):
        with Sandbox(
            today=T0, campaigns=300, account_mix="large", rows_per_day=1, rate_limit_per_minute=0,
            rate_limit_per_hour=0, cache_mb=64,
        ) as sb:  # fmt: skip
            (tmp_path / str(moved)).mkdir()
            destination = Destination(Connector(sb, tmp_path / str(moved)))
            destination.sync()  # the backfill
            start_date = T0 - timedelta(days=1)  # two days before the first sync that sets it
            counts = []
            for day in range(3):
                sb.advance()
                sb.revise()
                sb.clear_requests()
                later = moved and day < 2
                destination.sync(start_date=start_date.isoformat() if later else None)
                counts.append(len(export_requests(sb)))
                destination.assert_equals_truth(sb, since=start_date if later else None)
            requests_per_sync[moved] = counts

    assert requests_per_sync[True] == requests_per_sync[False], requests_per_sync
    assert sum(requests_per_sync[False]) < 3 * 40  # about 10 % of the campaigns can still change
