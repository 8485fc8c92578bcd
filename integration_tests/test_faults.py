"""Exact under faults: whole syncs through `source-soundlink read` with the sandbox's faults.

Each test asserts complete and exact records (or, on a failure, that what was emitted is exact and the
next sync completes it), no primary key twice within a sync, the requests the sandbox saw, the failure
message, and the state left after a failure.

Faults are aimed at one campaign with `path_contains`. Within a campaign, windows are read in order, so
queueing a harmless fault of the same class first (the sandbox draws early faults and body faults from
separate queues) aims the real fault at the 2nd window: a 10 ms slow_first_byte before an early fault
(429, 5xx, reset), a gzip body before a body fault.
"""

from __future__ import annotations

import itertools
import time
from datetime import date, timedelta
from typing import Any

import pytest
import soundlink_sandbox.server as sandbox_server
from helpers import (
    Connector,
    assert_exact,
    assert_same_rows,
    assert_unique_pks,
    by_pk,
    campaign_by_status,
    campaign_state,
    export_requests,
    multi_window_campaign,
    pk,
    window_label,
)
from soundlink_sandbox import Sandbox

WINDOW = 30  # window_size_days for the aimed campaign: its 121 days are 5 windows (30, 30, 30, 30, 1)


def path_of(campaign_id: str) -> str:
    return f"/campaigns/{campaign_id}/metrics"


def windows(sandbox: Sandbox, campaign_id: str, size: int = WINDOW) -> list[tuple[date, date]]:
    c = sandbox.app.campaigns[campaign_id]
    today = sandbox.app.today()
    out, start = [], c.start
    while start <= today:
        end = min(start + timedelta(days=size - 1), today)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def two_campaigns(sandbox: Sandbox) -> tuple[str, str]:
    """The aimed campaign (121 days of rows) and a bystander (the 46-day playlist campaign)."""
    aimed = multi_window_campaign(sandbox)
    bystander = next(
        c.campaign_id
        for c in sandbox.app.campaign_list()
        if c.status == "active" and c.target_type == "playlist"
    )
    return aimed, bystander


def truth_of(sandbox: Sandbox, *campaign_ids: str) -> list[dict[str, Any]]:
    return [row for cid in campaign_ids for row in sandbox.truth(cid)]


# --- retries and waits ----------------------------------------------------------------------------------


def test_429_waits_what_retry_after_says(sandbox: Sandbox, connector: Connector) -> None:
    aimed, bystander = two_campaigns(sandbox)
    sandbox.add_faults([{"kind": "rate_limit", "retry_after": 2, "path_contains": path_of(aimed)}])

    run = connector.read(connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW))

    run.assert_ok()
    assert_exact(run.records, truth_of(sandbox, aimed, bystander))
    requests = export_requests(sandbox, aimed)
    assert [r.status for r in requests] == [429] + [200] * len(windows(sandbox, aimed))
    limited, retry = requests[0], requests[1]
    assert retry.window == limited.window
    assert retry.time - limited.time >= 2.0, "the retry came before Retry-After elapsed"
    assert retry.time - limited.time < 6.0
    assert any("waiting 2 s as Retry-After asks" in log["message"] for log in run.logs)


def test_retry_after_beyond_the_hour_fails_at_once_and_once(sandbox: Sandbox, connector: Connector) -> None:
    """A Retry-After over 3600 s fails the sync (naming the window, the requestId and what to change) instead
    of hanging it; the key is Soundlink's unit, so every worker stops and the failure is reported once."""
    aimed, bystander = two_campaigns(sandbox)
    sandbox.add_faults([{"kind": "rate_limit", "retry_after": 7200, "path_contains": path_of(aimed)}])

    run = connector.read(connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW))

    error = run.assert_failed("transient_error")
    limited = export_requests(sandbox, aimed)
    assert [r.status for r in limited] == [429]
    message = error["message"]
    assert f"campaign {aimed}, window {window_label(*windows(sandbox, aimed)[0])}" in message
    assert "Retry-After 7200 s" in message and f"requestId {limited[0].request_id}" in message
    assert "used up by another client of the same key" in message
    assert "requests_per_hour" in message  # what to change
    assert aimed not in run.state["campaigns"]
    # The bystander stopped too: whatever it checkpointed was emitted before the STATE that covers it.
    covered = run.state["campaigns"].get(bystander)
    emitted = by_pk(run.records)
    for row in sandbox.truth(bystander):
        if covered and covered["from"] <= row["report_date"] <= covered["through"]:
            assert pk(row) in emitted


class WarpedClock:
    """The sandbox's clock, sped up like the connector's (see helpers.pinned_connector_command)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.origin = time.time()

    def time(self) -> float:
        return self.origin + (time.time() - self.origin) * self.factor

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.factor)


def test_request_budget_stays_under_the_server_limit_without_429(
    sandbox: Sandbox, connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sandbox limit = connector requests_per_minute = 5, a sync of 14 requests: no 429, ever.

    A real minute-long budget would make this test take two minutes, so both clocks run 20x faster: the
    connector's (time.monotonic/time.sleep in its process) and the sandbox's rate limiter. The budget code
    runs unchanged; each "minute" lasts 3 real seconds.
    """
    factor, limit = 20.0, 5
    monkeypatch.setattr(sandbox_server, "time", WarpedClock(factor))
    sandbox.configure(rate_limit_per_minute=limit, rate_limit_per_hour=1000)
    aimed = multi_window_campaign(sandbox)
    config = connector.config(
        campaign_ids=[aimed], window_size_days=10, requests_per_minute=limit, requests_per_hour=1000
    )

    run = connector.read(config, command=connector.command(warp=factor)).assert_ok()

    assert_exact(run.records, sandbox.truth(aimed))
    log = sandbox.requests()
    statuses = [(e["status"], round(e["time"] - log[0]["time"], 2)) for e in log]
    assert [s for s, _ in statuses] == [200] * len(log), f"a request hit the server limit: {statuses}"
    assert len(log) == 1 + 13  # the listing, then 13 windows of 10 days for 121 days
    times = sorted(e["time"] for e in log)
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= 60.0 - 0.5, f"more than {limit} requests within a minute"
    assert times[-1] - times[0] >= 120.0, "14 requests at 5/minute need at least two (warped) minutes"
    assert any("Request budget reached" in log["message"] for log in run.logs)


def test_server_rate_limit_is_honoured_when_the_client_budget_is_higher(
    sandbox: Sandbox, connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server 5/minute, client budget far higher: the real 429s' Retry-After is waited, never hammered."""
    factor, limit = 20.0, 5
    monkeypatch.setattr(sandbox_server, "time", WarpedClock(factor))
    sandbox.configure(rate_limit_per_minute=limit, rate_limit_per_hour=1000)
    aimed = multi_window_campaign(sandbox)
    config = connector.config(campaign_ids=[aimed], window_size_days=10, num_workers=1)

    run = connector.read(config, command=connector.command(warp=factor)).assert_ok()

    assert_exact(run.records, sandbox.truth(aimed))
    log = sandbox.requests()
    admitted = [e["time"] for e in log if e["status"] == 200]
    assert len(admitted) == 14
    limited = [i for i, e in enumerate(log) if e["status"] == 429]
    # Waiting out Retry-After costs about one 429 per warped minute (3 real seconds); a loaded machine
    # spreads the first burst unevenly and may add one more. Polling would cost dozens.
    assert 2 <= len(limited) <= 6, f"{len(limited)} 429s: the connector should wait, not poll"
    for i in limited:
        retry = log[i + 1]
        assert retry["path"] == log[i]["path"] and retry["query"] == log[i]["query"]
        before = [t for t in admitted if t < log[i]["time"]]
        # Retry-After pointed at the moment a slot frees; the retry did not come before it.
        assert retry["time"] >= before[-limit] + 60.0, "retried before the server's slot freed"
    assert any("as Retry-After asks" in log["message"] for log in run.logs)


def test_5xx_then_success_is_retried_and_exact(sandbox: Sandbox, connector: Connector) -> None:
    aimed, bystander = two_campaigns(sandbox)
    sandbox.add_faults(
        [
            {"kind": "server_error", "status": 503, "code": "unavailable", "path_contains": path_of(aimed)},
            {"kind": "server_error", "path_contains": path_of(aimed)},
        ]
    )

    run = connector.read(connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW))

    run.assert_ok()
    assert_exact(run.records, truth_of(sandbox, aimed, bystander))
    requests = export_requests(sandbox, aimed)
    assert [r.status for r in requests[:3]] == [503, 500, 200]
    assert requests[0].window == requests[1].window == requests[2].window
    assert len(requests) == len(windows(sandbox, aimed)) + 2


def test_5xx_forever_fails_after_bounded_attempts(sandbox: Sandbox, connector: Connector) -> None:
    aimed, bystander = two_campaigns(sandbox)
    first, second = windows(sandbox, aimed)[:2]
    sandbox.add_faults(
        [
            {"kind": "slow_first_byte", "delay": 0.01, "path_contains": path_of(aimed)},  # window 1 is fine
            {"kind": "server_error", "times": 50, "path_contains": path_of(aimed)},
        ]
    )
    config = connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW)

    run = connector.read(config, command=connector.command(warp=20.0))  # backoff waits of 1, 2, 4, 8 s

    error = run.assert_failed("transient_error")
    requests = export_requests(sandbox, aimed)
    failed = requests[1:]
    assert [r.status for r in requests] == [200] + [500] * 5, "5 bounded attempts, then stop"
    assert all(r.window == second for r in failed)
    message = error["message"]
    assert f"campaign {aimed}, window {window_label(*second)}" in message
    assert "500 internal_error" in message and "gave up after 5 attempts" in message
    assert f"requestId {failed[-1].request_id}" in message
    # What was emitted is exact; the state covers window 1 and the bystander, not the failed window.
    assert_unique_pks(run.records)
    assert_same_rows(by_pk(run.records), truth_of(sandbox, bystander) + window_rows(sandbox, aimed, *first))
    assert run.state["campaigns"][aimed]["through"] == first[1].isoformat()
    assert run.state["campaigns"][bystander]["through"] == sandbox.app.today().isoformat()

    sandbox.clear_faults()
    again = connector.read(config, state=run.state).assert_ok()
    assert_same_rows(by_pk(run.records, again.records), truth_of(sandbox, aimed, bystander))
    resumed = min(r.start for r in export_requests(sandbox, aimed)[len(requests) :])
    assert resumed == first[1] - timedelta(days=7)


def window_rows(sandbox: Sandbox, campaign_id: str, start: date, end: date) -> list[dict[str, Any]]:
    first, last = start.isoformat(), end.isoformat()
    return [r for r in sandbox.truth(campaign_id) if first <= r["report_date"] <= last]


def test_reset_before_body_and_slow_first_byte_succeed(sandbox: Sandbox, connector: Connector) -> None:
    aimed, bystander = two_campaigns(sandbox)
    sandbox.add_faults(
        [
            {"kind": "reset_before_body", "path_contains": path_of(aimed)},
            {"kind": "slow_first_byte", "delay": 1.0, "path_contains": path_of(bystander)},
        ]
    )

    run = connector.read(connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW))

    run.assert_ok()
    assert_exact(run.records, truth_of(sandbox, aimed, bystander))
    reset = export_requests(sandbox, aimed)
    assert [r.status for r in reset[:2]] == [0, 200] and reset[0].window == reset[1].window
    assert len(reset) == len(windows(sandbox, aimed)) + 1
    slow = export_requests(sandbox, bystander)
    assert slow[0].fault == "slow_first_byte" and [r.status for r in slow] == [200] * len(slow)
    assert len(slow) == len(windows(sandbox, bystander))


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_cut_mid_body_refetches_the_window_without_duplicates(
    sandbox: Sandbox, connector: Connector, compressed: bool
) -> None:
    aimed, bystander = two_campaigns(sandbox)
    if compressed:
        # Every body gzipped; the cut lands inside the compressed stream (the sandbox cuts at the byte
        # offset of `after_rows` uncompressed rows, so keep it small enough to fall inside the gzip body).
        sandbox.configure(gzip=True)
    # Window 1 takes the gzip fault (harmless), window 2 the cut: both are body faults, one queue.
    cut = {"kind": "cut_mid_body", "after_rows": 10 if compressed else 100}
    sandbox.add_faults([{**f, "path_contains": path_of(aimed)} for f in ({"kind": "gzip"}, cut)])

    run = connector.read(connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW))

    run.assert_ok()
    assert_exact(run.records, truth_of(sandbox, aimed, bystander))
    second = windows(sandbox, aimed)[1]
    requests = export_requests(sandbox, aimed)
    assert [r.window for r in requests if r.window == second] == [second, second]
    assert requests[1].fault == "cut_mid_body" and requests[2].fault is None
    assert len(requests) == len(windows(sandbox, aimed)) + 1
    cut_logs = [log["message"] for log in run.logs if "cut mid-body" in log["message"]]
    assert len(cut_logs) == 1 and window_label(*second) in cut_logs[0]


def test_cut_after_rows_were_emitted_resumes_after_the_last_row(
    sandbox: Sandbox, connector: Connector
) -> None:
    """A body of several MB cut after ~3,000 rows: rows already emitted are skipped on the re-fetch."""
    big = sandbox.add_campaign(created_days_ago=29, campaign_duration=60, rows_per_day=200)["campaignId"]
    sandbox.add_faults([{"kind": "cut_mid_body", "after_rows": 3000, "path_contains": path_of(big)}])

    run = connector.read(connector.config(campaign_ids=[big], window_size_days=WINDOW)).assert_ok()

    assert_exact(run.records, sandbox.truth(big))
    assert len(run.records) == 30 * 200
    requests = export_requests(sandbox, big)
    assert [r.window for r in requests] == [requests[0].window] * 2 and requests[0].fault == "cut_mid_body"
    cut_logs = [log["message"] for log in run.logs if "cut mid-body" in log["message"]]
    assert len(cut_logs) == 1
    emitted_before_cut = int(cut_logs[0].split(" after ")[1].split(" rows")[0])
    assert 0 < emitted_before_cut <= 3000, cut_logs[0]  # the resume path, not a plain retry, was exercised


BAD_BODIES = [
    # (fault, failure_type, what the message must say)
    ({"kind": "malformed_line", "line": 3}, "system_error", ("line 3: it is not valid JSON",)),
    (
        {"kind": "missing_field", "line": 2, "field": "country_code"},
        "system_error",
        ("line 2: primary-key field country_code is missing or null",),
    ),
    (
        {"kind": "bad_schema_version", "line": 1, "value": "2.0"},
        "system_error",
        ("line 1: schema_version is '2.0', this connector reads '1.0'",),
    ),
    (
        {"kind": "long_body", "extra": 1},
        "system_error",
        ("line 361: it repeats the primary key of an earlier row of",),
    ),
    (
        {"kind": "short_body", "drop": 1},
        "transient_error",
        ("the body held 359 rows but X-Row-Count announced 360",),
    ),
]


@pytest.mark.parametrize(
    ("fault", "failure_type", "phrases"), BAD_BODIES, ids=[f[0]["kind"] for f in BAD_BODIES]
)
def test_bad_body_fails_loudly_and_the_next_sync_rereads_the_window(
    sandbox: Sandbox,
    connector: Connector,
    fault: dict[str, Any],
    failure_type: str,
    phrases: tuple[str, ...],
) -> None:
    aimed, bystander = two_campaigns(sandbox)
    first, second = windows(sandbox, aimed)[:2]
    sandbox.add_faults(
        [
            {"kind": "gzip", "path_contains": path_of(aimed)},  # window 1: harmless
            {**fault, "path_contains": path_of(aimed)},  # window 2: the fault
        ]
    )
    config = connector.config(campaign_ids=[aimed, bystander], window_size_days=WINDOW)

    run = connector.read(config)

    error = run.assert_failed(failure_type)
    requests = export_requests(sandbox, aimed)
    assert [r.window for r in requests] == [first, second], "the campaign stops at the bad window"
    assert requests[1].fault == fault["kind"]
    message = error["message"]
    assert f"campaign {aimed}, window {window_label(*second)} (requestId {requests[1].request_id})" in message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert "next sync re-reads it" in message
    # Whatever was emitted is exact and unique; the last STATE does not cover the bad window.
    assert_unique_pks(run.records)
    emitted = by_pk(run.records)
    truth = by_pk(truth_of(sandbox, aimed, bystander))
    assert all(truth[key] == row for key, row in emitted.items())
    assert by_pk(truth_of(sandbox, bystander)).keys() <= emitted.keys()
    assert by_pk(window_rows(sandbox, aimed, *first)).keys() <= emitted.keys()
    assert run.state["campaigns"][aimed]["through"] == first[1].isoformat()

    again = connector.read(config, state=run.state).assert_ok()
    assert_unique_pks(again.records)
    reread = sorted(r.window for r in export_requests(sandbox, aimed)[2:])
    assert reread[0][0] == first[1] - timedelta(days=7), "resumes at the last checkpoint minus the lookback"
    assert reread[-1][1] == sandbox.app.today()
    assert all(b[0] == a[1] + timedelta(days=1) for a, b in itertools.pairwise(reread))
    assert_same_rows(by_pk(run.records, again.records), truth_of(sandbox, aimed, bystander))


def test_gzip_bodies_are_exact(sandbox: Sandbox, connector: Connector) -> None:
    sandbox.configure(gzip=True)

    run = connector.read(connector.config(window_size_days=WINDOW)).assert_ok()

    assert_exact(run.records, sandbox.truth())
    assert all(r.status == 200 for r in export_requests(sandbox))


@pytest.mark.parametrize("how", ["wide_range_400_fault", "strict_server"])
def test_windows_rejected_as_too_wide_are_split(sandbox: Sandbox, connector: Connector, how: str) -> None:
    if how == "strict_server":
        sandbox.configure(strict_range=True, max_export_days=30)
    else:
        sandbox.add_faults([{"kind": "wide_range_400", "max_days": 30, "times": 1000}])

    run = connector.read().assert_ok()

    assert_exact(run.records, sandbox.truth())
    requests = export_requests(sandbox)
    rejected = [r for r in requests if r.status == 400]
    accepted = [r for r in requests if r.status == 200]
    assert rejected and all(r.days > 30 for r in rejected)
    assert accepted and all(r.days <= 30 for r in accepted)
    assert len(accepted) + len(rejected) == len(requests)
    today = sandbox.app.today()
    for c in sandbox.app.campaign_list():
        tiles = sorted(r.window for r in accepted if r.campaign_id == c.campaign_id)
        cs = campaign_state(run.state, c.campaign_id)
        last = date.fromisoformat(cs["through"]) if cs.get("settled") else today
        assert tiles[0][0] == c.start and tiles[-1][1] == last
        assert all(b[0] == a[1] + timedelta(days=1) for a, b in itertools.pairwise(tiles))
    assert any("too wide" in log["message"] for log in run.logs)


# --- invalid configuration: fail at once, no request ------------------------------------------------------

INVALID_CONFIGS = [
    ("start_date", {"start_date": "2026/01/01"}),
    ("start_date", {"start_date": "2026-02-30"}),
    ("end_date", {"start_date": "2026-05-01", "end_date": "2026-04-01"}),
    ("engagement_context", {"engagement_context": "radio"}),
    ("api_key", {"api_key": "pk_live_0123456789"}),
    ("api_key", {"api_key": "sk_live_has a space"}),
    ("window_size_days", {"window_size_days": 0}),
    ("window_size_days", {"window_size_days": 91}),
]


@pytest.mark.parametrize(
    ("field", "overrides"), INVALID_CONFIGS, ids=[f"{f}={next(iter(o.values()))}" for f, o in INVALID_CONFIGS]
)
def test_invalid_config_fails_at_once_naming_the_field(
    sandbox: Sandbox, connector: Connector, field: str, overrides: dict[str, Any]
) -> None:
    config = connector.config(**overrides)

    read = connector.read(config)
    error = read.assert_failed("config_error")
    assert field in error["message"], error["message"]
    assert not read.records and read.state is None

    check = connector.check(config)
    assert check.returncode == 0, check.describe()
    status = check.connection_status
    assert status["status"] == "FAILED"
    assert field in status["message"], f"check does not name {field}: {status['message']!r}"

    assert sandbox.requests() == [], "an invalid config must fail before any request"


def test_config_fixtures_are_aimed_right(sandbox: Sandbox) -> None:
    """Guards the assumptions the tests above make about the sandbox fixture."""
    aimed, bystander = two_campaigns(sandbox)
    tiles = windows(sandbox, aimed)
    assert len(tiles) == 5 and tiles[1][1] - tiles[1][0] == timedelta(days=WINDOW - 1)
    assert len(window_rows(sandbox, aimed, *tiles[1])) == 360
    assert sandbox.truth(bystander) and campaign_by_status(sandbox, "completed") not in (aimed, bystander)
