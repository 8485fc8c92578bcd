"""The `campaigns` stream emitted from the export's listing: its messages, and its failure without
campaigns:read (the engagement stream still syncs the configured campaigns; the sync fails at the end)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests_mock

from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import EngagementExport, SyncFailed
from unit_tests import builders as b
from unit_tests.builders import BASE_URL, FakeClock

BOTH = ("campaigns", b.ENGAGEMENT)


def _read(config: dict[str, Any], streams: tuple[str, ...]) -> tuple[list[dict[str, Any]], SyncFailed | None]:
    export = EngagementExport(SoundlinkConfig.from_mapping(config), None, clock=FakeClock(), streams=streams)
    messages: list[dict[str, Any]] = []
    try:
        for chunk in export.messages():
            messages.extend(orjson.loads(line) for line in chunk.splitlines())
    except SyncFailed as failure:
        return messages, failure
    return messages, None


def _statuses(messages: list[dict[str, Any]], stream: str) -> list[str]:
    traces = [m["trace"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS"]
    return [
        t["stream_status"]["status"]
        for t in traces
        if t["stream_status"]["stream_descriptor"]["name"] == stream
    ]


def test_given_only_campaigns_selected_when_read_then_listed_items_in_campaign_ids_are_emitted() -> None:
    items = [b.campaign(f"camp_{i}", created="2026-03-01") for i in range(3)]
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/v1/campaigns", json={"data": {"items": items, "pagination": {"totalPages": 1}}}
        )
        messages, failure = _read(b.config(campaign_ids=["camp_0", "camp_2"]), ("campaigns",))
        paths = [r.path for r in mocker.request_history]

    assert failure is None and paths == ["/v1/campaigns"]  # no export: the engagement stream is not selected
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert [r["data"] for r in records] == [items[0], items[2]] and {r["stream"] for r in records} == {
        "campaigns"
    }
    state = next(m["state"] for m in messages if m["type"] == "STATE")
    assert state["stream"]["stream_state"] == {"__ab_no_cursor_state_message": True}
    assert state["sourceStats"]["recordCount"] == 2
    assert _statuses(messages, "campaigns") == ["STARTED", "RUNNING", "COMPLETE"]
    assert _statuses(messages, b.ENGAGEMENT) == []


def test_given_no_campaigns_read_when_both_streams_sync_then_engagement_completes_then_one_error() -> None:
    scope = {"error": {"code": "insufficient_scope", "message": "x"}, "meta": {"requestId": "req-403"}}
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", status_code=403, json=scope)
        mocker.get(b.EXPORT, content=b.jsonl(rows), headers={"X-Row-Count": str(len(rows))})
        config = b.config(campaign_ids=["camp_a"], start_date="2026-03-01", end_date="2026-03-05")
        messages, failure = _read(config, BOTH)

    assert [m["record"]["data"] for m in messages if m["type"] == "RECORD"] == rows
    assert _statuses(messages, "campaigns") == ["STARTED", "INCOMPLETE"]
    assert _statuses(messages, b.ENGAGEMENT) == ["STARTED", "RUNNING", "COMPLETE"]
    assert failure is not None and failure.stream == "campaigns" and failure.failure_type == "config_error"
    assert "campaigns:read" in str(failure) and "req-403" in str(failure) and "deselect" in str(failure)


@pytest.mark.parametrize("streams", [BOTH, ("campaigns",)], ids=["both", "campaigns-only"])
def test_given_a_revoked_key_when_read_then_one_failure_names_it(streams: tuple[str, ...]) -> None:
    revoked = {"error": {"code": "api_key_revoked", "message": "x"}, "meta": {"requestId": "req-401"}}
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", status_code=401, json=revoked)
        messages, failure = _read(b.config(), streams)
        requests = len(mocker.request_history)

    assert requests == 1
    assert failure is not None and len(failure.errors) == 1 and "api_key_revoked" in str(failure)
    assert _statuses(messages, "campaigns") == ["STARTED", "INCOMPLETE"]


@pytest.mark.parametrize(
    ("streams", "waits"), [(("campaigns",), False), (BOTH, True)], ids=["campaigns-only", "both"]
)
def test_given_a_retry_after_of_15_minutes_on_the_listing_when_read_then_only_a_sync_that_heartbeats_waits(
    streams: tuple[str, ...], waits: bool
) -> None:
    """The `campaigns` stream alone has no state to repeat while it waits: it must not stay silent past the
    platform's 20 minutes, so it gives up on a Retry-After beyond 10 minutes; with the engagement stream
    selected, the sync heartbeats and waits it out."""
    limited = {"error": {"code": "rate_limit_exceeded", "message": "x"}, "meta": {"requestId": "req-429"}}
    items = [b.campaign("camp_a", created="2026-03-01")]
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/v1/campaigns",
            [
                {"status_code": 429, "json": limited, "headers": {"Retry-After": "900"}},
                {"json": {"data": {"items": items, "pagination": {"totalPages": 1}}}},
            ],
        )
        mocker.get(b.EXPORT, content=b"", headers={"X-Row-Count": "0"})
        messages, failure = _read(b.config(end_date="2026-03-05"), streams)

    if waits:
        assert failure is None and _statuses(messages, "campaigns")[-1] == "COMPLETE"
    else:
        assert failure is not None and "900 s" in str(failure) and "req-429" in str(failure)
        assert _statuses(messages, "campaigns") == ["STARTED", "INCOMPLETE"]
