"""Whole reads pinned with the CDK's HttpMocker: request shapes, per-campaign state, workers.

HttpMocker, used as a decorator, injects `http_mocker` and fails the test if a mocked request was not
made; the parameter has a default so pytest does not look for a fixture of that name."""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from source_soundlink.clock import SYSTEM_CLOCK
from source_soundlink.config import SoundlinkConfig, today_utc
from source_soundlink.engagement import EngagementExport, SyncFailed
from unit_tests import builders as b
from unit_tests.builders import BASE_URL


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
        output = b.read_source(b.config(end_date="2026-03-05"))

    assert not output.errors
    assert len(output.records) == len(rows)
    assert sum("Rate limited" in m.log.message for m in output.logs) == 18


def test_a_refused_key_interrupts_other_campaigns_waiting_out_a_retry_after() -> None:
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
        # Real, interruptible waits.
        output = b.read_source(b.config(end_date="2026-03-05", num_workers=2), clock=SYSTEM_CLOCK)
        elapsed = time.monotonic() - started

    assert elapsed < 30  # not the 300 s Retry-After
    error = output.errors[-1].trace.error
    assert "api_key_revoked" in error.message and "req-401" in error.message


@HttpMocker()
def test_given_soundlink_a_day_behind_the_host_when_synced_then_through_stops_at_soundlinks_today(
    http_mocker: HttpMocker = None,
) -> None:
    host_today = today_utc()
    soundlink_today = host_today - timedelta(days=1)
    created = host_today - timedelta(days=10)
    listing = b.campaigns_response([b.campaign("camp_a", created=created.isoformat())])
    date_header = format_datetime(
        datetime(*soundlink_today.timetuple()[:3], 23, 59, 58, tzinfo=UTC), usegmt=True
    )
    http_mocker.get(b.campaigns_request(), HttpResponse(listing.body, 200, {"Date": date_header}))
    rows = b.daily_rows("camp_a", created.isoformat(), soundlink_today.isoformat())
    http_mocker.get(
        b.export_request("camp_a", created.isoformat(), soundlink_today.isoformat()), b.jsonl_response(rows)
    )

    output = b.read_source(b.config())

    assert not output.errors
    assert b.final_state(output)["campaigns"]["camp_a"]["through"] == soundlink_today.isoformat()
    assert any("Soundlink's date is" in m.log.message for m in output.logs)


# -- STATE pacing, heartbeats and the key-wide 429 pause, on a fake clock ----------------------------------


def run_export(
    config: dict[str, Any], fake: b.FakeClock, **pacing: float
) -> tuple[list[tuple[float, dict[str, Any]]], Exception | None]:
    """Every message of a read with its fake time; and the read's SyncFailed, if any."""
    export = EngagementExport(SoundlinkConfig.from_mapping(config), None, clock=fake, **pacing)
    out: list[tuple[float, dict[str, Any]]] = []
    try:
        for chunk in export.messages():
            out.extend((fake.time, orjson.loads(line)) for line in chunk.splitlines())
    except SyncFailed as failure:
        return out, failure
    return out, None


def export_callback(fake: b.FakeClock, seconds_per_request: float, log: list[tuple[float, str]]) -> Any:
    """Answers any export with two rows a day of its window, after `seconds_per_request` fake seconds."""

    def answer(request: Any, context: Any) -> bytes:
        query = parse_qs(request.query)
        campaign_id = request.path.split("/")[3]
        log.append((fake.time, campaign_id))
        fake.time += seconds_per_request
        rows = b.daily_rows(campaign_id, query["startdate"][0], query["enddate"][0])
        context.headers["X-Row-Count"] = str(len(rows))
        return b.jsonl(rows)

    return answer


def test_given_windows_of_25_s_when_read_then_state_is_throttled_to_a_minute_and_never_ahead_of_data(
    clock: b.FakeClock,
) -> None:
    fake, requests_log = clock, []
    listing = {
        "data": {"items": [b.campaign("camp_a", created="2026-01-01")], "pagination": {"totalPages": 1}}
    }
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=listing)
        mocker.get(b.EXPORT, content=export_callback(fake, 25, requests_log))
        messages, failure = run_export(b.config(end_date="2026-04-30", window_size_days=10), fake)

    assert failure is None and len(requests_log) == 12  # 120 days in windows of 10
    states = [(at, i, m["state"]) for i, (at, m) in enumerate(messages) if m["type"] == "STATE"]
    assert 3 <= len(states) <= 6, "one STATE a minute of 300 s, and the final one, not one per window"
    paced = [at for at, _, _ in states[:-1]]
    assert all(later - earlier >= 60 for earlier, later in itertools.pairwise(paced))
    records = [m["record"]["data"] for _, m in messages if m["type"] == "RECORD"]
    for _, index, state in states:
        covered = state["stream"]["stream_state"]["campaigns"].get("camp_a", {})
        emitted_before = {
            r["report_date"]
            for _, m in messages[:index]
            if m["type"] == "RECORD"
            for r in [m["record"]["data"]]
        }
        expected = {
            r["report_date"]
            for r in b.daily_rows("camp_a", "2026-01-01", covered.get("through", "2025-12-31"))
        }
        assert expected <= emitted_before, "a STATE covers days whose rows were not emitted before it"
    assert sum(s["sourceStats"]["recordCount"] for _, _, s in states) == len(records) == 2 * 120
    assert states[-1][2]["stream"]["stream_state"]["campaigns"]["camp_a"]["through"] == "2026-04-30"


def test_given_a_worker_starting_a_long_wait_when_read_then_its_complete_windows_are_checkpointed_first(
    clock: b.FakeClock,
) -> None:
    fake = clock
    rows = [
        b.daily_rows("camp_a", s, e) for s, e in (("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20"))
    ]
    limited = {
        "status_code": 429,
        "headers": {"Retry-After": "600"},
        "json": {"error": {"code": "rate_limit_exceeded"}},
    }
    responses = [{"content": b.jsonl(r), "headers": {"X-Row-Count": str(len(r))}} for r in rows]
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=b.LISTING)
        mocker.get(b.EXPORT, [responses[0], limited, responses[1]])
        # Pacing far longer than the sync: only the long wait can bring a STATE before the end.
        config = b.config(end_date="2026-03-20", window_size_days=10)
        messages, failure = run_export(config, fake, state_interval_s=1e6, heartbeat_s=1e6)

    assert failure is None and fake.waits == [600]
    kinds = [m["type"] for _, m in messages]
    assert kinds.count("STATE") == 2
    first = kinds.index("STATE")
    state = messages[first][1]["state"]
    assert state["stream"]["stream_state"]["campaigns"]["camp_a"]["through"] == "2026-03-10"
    assert state["sourceStats"]["recordCount"] == 20
    # The first window's records came before it, the second window's after it (after the wait).
    assert kinds[:first].count("RECORD") == 20 and kinds[first:].count("RECORD") == 20


def test_given_a_retry_after_wait_when_read_then_the_current_state_is_reemitted_as_a_heartbeat() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    limited = {
        "status_code": 429,
        "headers": {"Retry-After": "1"},
        "json": {"error": {"code": "rate_limit_exceeded"}},
    }
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=b.LISTING)
        mocker.get(
            b.EXPORT, [limited, {"content": b.jsonl(rows), "headers": {"X-Row-Count": str(len(rows))}}]
        )
        export = EngagementExport(
            SoundlinkConfig.from_mapping(b.config(end_date="2026-03-05")),
            {"state_version": 1, "campaigns": {"camp_x": {"from": "2026-01-01", "through": "2026-02-01"}}},
            clock=SYSTEM_CLOCK,  # real waits: the heartbeat must come while one is under way
            state_interval_s=60,
            heartbeat_s=0.1,
        )
        messages = [orjson.loads(line) for chunk in export.messages() for line in chunk.splitlines()]

    kinds = [m["type"] for m in messages]
    limited_at = next(i for i, m in enumerate(messages) if "Rate limited" in str(m))
    waiting = messages[limited_at : kinds.index("RECORD")]
    heartbeats = [m["state"] for m in waiting if m["type"] == "STATE"]
    assert len(heartbeats) >= 5, "a STATE every 0.1 s of a 1 s wait"
    for state in heartbeats:  # the state handed in, unchanged, with no record since the last STATE
        assert state["stream"]["stream_state"]["campaigns"] == {
            "camp_x": {"from": "2026-01-01", "through": "2026-02-01"}
        }
        assert state["sourceStats"]["recordCount"] == 0
    assert sum(m["state"]["sourceStats"]["recordCount"] for m in messages if m["type"] == "STATE") == len(
        rows
    )


def test_given_the_hour_spent_by_another_client_when_30_campaigns_sync_then_it_fails_once_naming_the_cause(
    clock: b.FakeClock,
) -> None:
    campaigns = [b.campaign(f"camp_{i:02d}", created="2026-03-01") for i in range(30)]
    listing = {"data": {"items": campaigns, "pagination": {"totalPages": 1}}}
    spent = {
        "status_code": 429,
        "headers": {"Retry-After": "3599"},
        "json": {"error": {"code": "rate_limit_exceeded"}, "meta": {"requestId": "req-spent"}},
    }
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=listing)
        mocker.get(re.compile(r".*/metrics/engagement/export"), **spent)
        output = b.read_source(b.config(end_date="2026-03-05", num_workers=3), clock=clock)
        exports = [r for r in mocker.request_history if r.path.endswith("/export")]
        sent = len(mocker.request_history)

    assert len(output.errors) == 1
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.transient_error
    message = error.message
    assert message.count("Soundlink keeps refusing this API key") == 1 and "campaigns failed" not in message
    assert "used up by another client of the same key" in message and "Retry-After 3599 s" in message
    # The count is taken when the key is given up; another worker's request may still have been leaving.
    counted = int(re.search(r"This sync made (\d+) requests", message).group(1))
    assert sent - 2 <= counted <= sent and "lower requests_per_hour" in message
    # Up to one refused request per worker in flight, one probe after the hour, then every worker stops.
    assert len(exports) <= 3 + 1
    # The waits for the key-wide pause: Retry-After less the moments already spent (threads wait on one
    # shared clock that their skipped waits move on, so a wait can be shorter by the time the test took).
    long_waits = [w for w in clock.waits if w > 60]
    assert long_waits and all(3590 < w <= 3599 for w in long_waits), long_waits
    assert not output.records
