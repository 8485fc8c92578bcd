"""Whole reads pinned with the CDK's HttpMocker: request shapes, per-campaign state, workers.

HttpMocker, used as a decorator, injects `http_mocker` and fails the test if a mocked request was not
made; the parameter has a default so pytest does not look for a fixture of that name."""

from __future__ import annotations

import time
from typing import Any

import requests_mock
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink.engagement import EngagementExport
from source_soundlink.source import SourceSoundlink
from unit_tests import builders as b
from unit_tests.builders import BASE_URL


@HttpMocker()
def test_backfill_requests_windows_of_at_most_90_inclusive_days(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-01-01")]))
    windows = [("2026-01-01", "2026-03-31"), ("2026-04-01", "2026-06-29"), ("2026-06-30", "2026-07-10")]
    for start, end in windows:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = b.read_source(b.config(end_date="2026-07-10"))

    assert not output.errors
    assert len(output.records) == 2 * 191  # 2 rows a day, 2026-01-01..2026-07-10
    assert len(set(b.pks(output))) == len(output.records)
    assert b.final_state(output)["campaigns"] == {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-07-10",
            "has_rows": True,
            "report_date": "2026-07-10",
        }
    }
    # STATE is throttled (state_emitter.py): a sync this short emits only its final one.
    assert len(output.state_messages) == 1


@HttpMocker()
def test_each_campaign_starts_at_its_own_creation_date_and_start_date_clamps_it(
    http_mocker: HttpMocker = None,
) -> None:
    campaigns = [b.campaign("camp_old", created="2025-12-01"), b.campaign("camp_new", created="2026-03-05")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_old", "2026-03-01", "2026-03-10"), b.jsonl_response([]))
    http_mocker.get(b.export_request("camp_new", "2026-03-05", "2026-03-10"), b.jsonl_response([]))

    output = b.read_source(b.config(start_date="2026-03-01", end_date="2026-03-10"))

    assert not output.errors
    assert b.final_state(output)["campaigns"]["camp_new"] == {"from": "2026-03-05", "through": "2026-03-10"}


@HttpMocker()
def test_window_size_and_engagement_context_are_sent(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-05-01")]))
    for start, end in [("2026-05-01", "2026-05-10"), ("2026-05-11", "2026-05-15")]:
        http_mocker.get(
            b.export_request("camp_a", start, end, engagementContext="playlist"),
            b.jsonl_response(b.daily_rows("camp_a", start, end, engagement_context="playlist")),
        )

    output = b.read_source(
        b.config(end_date="2026-05-15", window_size_days=10, engagement_context="playlist")
    )

    assert not output.errors
    assert len(output.records) == 30


@HttpMocker()
def test_second_sync_rereads_the_lookback_window_per_campaign(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_b", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    # camp_a was read through 06-30: re-read from 06-30 - 7 days; camp_b through 06-20 with a 10-day lookback.
    http_mocker.get(
        b.export_request("camp_a", "2026-06-20", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_a", "2026-06-20", "2026-07-05")),
    )
    http_mocker.get(
        b.export_request("camp_b", "2026-06-10", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_b", "2026-06-10", "2026-07-05")),
    )
    previous = {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-06-30",
            "has_rows": True,
            "report_date": "2026-06-30",
        },
        "camp_b": {
            "from": "2026-02-01",
            "through": "2026-06-20",
            "has_rows": True,
            "report_date": "2026-06-20",
        },
    }

    output = b.read_source(b.config(end_date="2026-07-05", lookback_window_days=10), b.state(previous))

    assert not output.errors
    campaigns_state = b.final_state(output)["campaigns"]
    assert campaigns_state["camp_a"]["through"] == "2026-07-05"
    assert campaigns_state["camp_b"]["through"] == "2026-07-05"
    assert campaigns_state["camp_a"]["from"] == "2026-01-01"  # coverage is kept, not reset to the lookback


@HttpMocker()
def test_a_campaign_added_later_is_backfilled_from_its_own_start(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_late", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_a", "2026-04-03", "2026-04-10"), b.jsonl_response([]))
    http_mocker.get(
        b.export_request("camp_late", "2026-02-01", "2026-04-10"),
        b.jsonl_response(b.daily_rows("camp_late", "2026-02-01", "2026-04-10")),
    )
    previous = {"camp_a": {"from": "2026-01-01", "through": "2026-04-10", "has_rows": True}}

    output = b.read_source(b.config(end_date="2026-04-10"), b.state(previous))

    assert not output.errors
    assert {
        r.record.data["report_date"] for r in output.records if r.record.data["campaign_id"] == "camp_late"
    } >= {
        "2026-02-01",
        "2026-04-10",
    }
    assert b.final_state(output)["campaigns"]["camp_late"]["from"] == "2026-02-01"


@HttpMocker()
def test_an_empty_campaign_does_not_reread_its_history(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(
        b.campaigns_request(), b.campaigns_response([b.campaign("camp_empty", created="2026-01-01")])
    )
    http_mocker.get(b.export_request("camp_empty", "2026-03-24", "2026-04-01"), b.jsonl_response([]))
    previous = {"camp_empty": {"from": "2026-01-01", "through": "2026-03-31"}}

    output = b.read_source(b.config(end_date="2026-04-01"), b.state(previous))

    assert not output.errors
    assert b.final_state(output)["campaigns"]["camp_empty"] == {"from": "2026-01-01", "through": "2026-04-01"}


@HttpMocker()
def test_a_settled_campaign_makes_no_request(http_mocker: HttpMocker = None) -> None:
    ended = b.campaign("camp_done", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    previous = {
        "camp_done": {
            "from": "2026-01-01",
            "through": "2026-04-30",
            "has_rows": True,
            "ended_on": "2026-02-01",
            "settled": True,
            "updated_at": ended["updatedAt"],
        }
    }

    output = b.read_source(b.config(end_date="2026-07-01"), b.state(previous))

    assert not output.errors
    assert output.records == []
    assert b.final_state(output)["campaigns"]["camp_done"]["settled"] is True


@HttpMocker()
def test_ended_rows_settle_a_campaign_and_stop_its_windows(
    http_mocker: HttpMocker = None,
) -> None:
    ended = b.campaign("camp_e", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    rows = b.daily_rows("camp_e", "2026-01-01", "2026-01-31") + b.daily_rows(
        "camp_e", "2026-02-01", "2026-03-02", status="ended"
    )
    http_mocker.get(b.export_request("camp_e", "2026-01-01", "2026-03-31"), b.jsonl_response(rows))

    output = b.read_source(b.config(end_date="2026-04-10"))

    state = b.final_state(output)["campaigns"]["camp_e"]
    assert state["ended_on"] == "2026-02-01"
    assert state["settled"] is True  # 2026-02-01 + 38 days <= 2026-03-31
    assert state["through"] == "2026-03-31"  # no request for 04-01..04-10: no row can follow


def test_many_logs_while_listing_campaigns_do_not_block_the_sync() -> None:
    limited = {
        "status_code": 429,
        "headers": {"Retry-After": "1"},
        "json": {"error": {"code": "rate_limit_exceeded"}},
    }
    page = {"data": {"items": [], "pagination": {"page": 1, "totalPages": 2}}}
    last = {
        "data": {
            "items": [b.campaign("camp_a", created="2026-03-01")],
            "pagination": {"page": 2, "totalPages": 2},
        }
    }
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns?page=1", [limited] * 9 + [{"json": page}])
        mocker.get(f"{BASE_URL}/v1/campaigns?page=2", [limited] * 9 + [{"json": last}])
        mocker.get(b.EXPORT, content=b.jsonl(rows), headers={"X-Row-Count": str(len(rows))})
        output = read(SourceSoundlink(), b.config(end_date="2026-03-05"), b.catalog())

    assert not output.errors
    assert len(output.records) == len(rows)
    assert sum("Rate limited" in m.log.message for m in output.logs) == 18


def test_a_non_terminal_campaign_with_ended_rows_is_never_settled() -> None:
    # camp_a is `active` (e.g. renewed under the same id): its `ended` rows do not settle it.
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", status="ended")
    output, _ = b.read_with([{"content": b.jsonl(rows), "headers": {"X-Row-Count": str(len(rows))}}])
    assert not output.errors
    state = output.most_recent_state.stream_state.__dict__["campaigns"]["camp_a"]
    assert "settled" not in state and state["ended_on"] == "2026-03-01"


ORIGINAL_SLEEP = EngagementExport._sleep  # captured before the autouse fixture replaces it


def test_a_refused_key_interrupts_other_campaigns_waiting_out_a_retry_after(monkeypatch: Any) -> None:
    monkeypatch.setattr(EngagementExport, "_sleep", ORIGINAL_SLEEP)  # real, interruptible waits
    listing = {
        "data": {
            "items": [b.campaign("camp_a", created="2026-03-01"), b.campaign("camp_b", created="2026-03-01")],
            "pagination": {"totalPages": 1},
        }
    }
    revoked = {"error": {"code": "api_key_revoked", "message": "x"}, "meta": {"requestId": "req-401"}}
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=listing)
        mocker.get(b.EXPORT, status_code=401, json=revoked)
        mocker.get(
            f"{BASE_URL}/v1/campaigns/camp_b/metrics/engagement/export",
            status_code=429,
            headers={"Retry-After": "300"},
            json={"error": {"code": "rate_limit_exceeded"}},
        )
        started = time.monotonic()
        output = read(SourceSoundlink(), b.config(end_date="2026-03-05", num_workers=2), b.catalog())
        elapsed = time.monotonic() - started

    assert elapsed < 30  # not the 300 s Retry-After
    error = output.errors[-1].trace.error
    assert "api_key_revoked" in error.message and "req-401" in error.message
