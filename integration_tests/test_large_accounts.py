"""Large accounts and hours-long syncs, over real HTTP against the sandbox.

STATE is paced to one a minute with heartbeats while the sync waits; a 429 holds every request of the key;
a key whose hourly quota is spent elsewhere fails once. Minutes and hours are warped where a test must
watch them (helpers.pinned_connector_command; the sandbox's clock too when its rate limiter must follow).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import soundlink_sandbox.server as sandbox_server
from helpers import (
    RUN_TIMEOUT_S,
    Connector,
    assert_same_rows,
    assert_unique_pks,
    by_pk,
    campaign_state,
    catalog,
    export_requests,
)
from soundlink_sandbox import Sandbox


@dataclass
class TimedMessage:
    at: float  # real seconds since the run started, when the line reached this process
    message: dict[str, Any]

    @property
    def type(self) -> str:
        return self.message["type"]


def timed_read(
    connector: Connector, config: dict[str, Any], warp: float, state: dict[str, Any] | None = None
) -> tuple[int, list[TimedMessage]]:
    """Run `source-soundlink read` with warped clocks; every stdout message with its arrival time."""
    argv = connector.argv("read", config, catalog(), state)
    started = time.monotonic()
    proc = subprocess.Popen(
        [*connector.command(warp=warp), *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    messages = [TimedMessage(time.monotonic() - started, json.loads(line)) for line in proc.stdout]
    returncode = proc.wait(timeout=RUN_TIMEOUT_S)
    assert config["api_key"].encode() not in b"".join(json.dumps(m.message).encode() for m in messages)
    return returncode, messages


def states(messages: list[TimedMessage]) -> list[dict[str, Any]]:
    return [m.message["state"] for m in messages if m.type == "STATE"]


def records(messages: list[TimedMessage]) -> list[dict[str, Any]]:
    return [m.message["record"]["data"] for m in messages if m.type == "RECORD"]


def assert_record_counts_exact(messages: list[TimedMessage]) -> None:
    counted = sum(s["sourceStats"]["recordCount"] for s in states(messages))
    assert counted == len(records(messages)), "the STATE recordCounts do not add up to the records emitted"


def state_bytes(run_stdout: bytes) -> list[int]:
    return [len(line) for line in run_stdout.splitlines() if line.startswith(b'{"type":"STATE"')]


@pytest.fixture
def warped_sandbox_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The sandbox's clock (its rate limiter, its request log) runs as fast as the connector's."""
    factor = 1000.0
    origin = time.time()
    monkeypatch.setattr(
        sandbox_server,
        "time",
        type("WarpedTime", (), {"time": staticmethod(lambda: origin + (time.time() - origin) * factor)}),
    )
    yield factor


# --- STATE: paced, bounded, never ahead of data ------------------------------------------------------------


def test_given_1000_campaigns_when_backfilled_revised_and_synced_again_then_deduplicated_equals_the_truth(
    tmp_path: Path,
) -> None:
    """A large account (most campaigns ended long ago): the backfill, a revision, an incremental sync.

    Warped 60x, a minute of STATE pacing lasts a second: each sync emits a STATE every second or so, not one
    per window, and the STATE bytes of a sync stay within 10x its final state.
    """
    today = datetime.now(UTC).date().isoformat()
    with Sandbox(
        today=today, campaigns=1000, account_mix="large", rows_per_day=1, rate_limit_per_minute=0,
        rate_limit_per_hour=0, cache_mb=64,
    ) as sandbox:  # fmt: skip
        connector = Connector(sandbox, tmp_path)
        config = connector.config(num_workers=8)
        command = connector.command(warp=60.0)

        backfill = connector.read(config, command=command).assert_ok()
        windows = len(export_requests(sandbox))
        sandbox.clear_requests()
        sandbox.revise()
        incremental = connector.read(config, state=backfill.state, command=command).assert_ok()
        truth = sandbox.truth()
        requested = [r.campaign_id for r in export_requests(sandbox)]

    assert_unique_pks(backfill.records)
    assert_unique_pks(incremental.records)
    assert_same_rows(by_pk(backfill.records, incremental.records), truth)
    for run in (backfill, incremental):
        sizes = state_bytes(run.stdout)
        assert sum(sizes) <= 10 * sizes[-1], f"{len(sizes)} STATE messages, {sum(sizes)} bytes"
        assert sum(s["sourceStats"]["recordCount"] for s in run.state_messages) == len(run.records)
    assert len(backfill.state_messages) < windows / 10, "STATE is paced by time, not one per window"
    # One request per campaign that can still change, none for a settled one.
    final = incremental.state["campaigns"]
    open_campaigns = {
        cid for cid in backfill.state["campaigns"] if not campaign_state(backfill.state, cid).get("settled")
    }
    assert sorted(requested) == sorted(open_campaigns)
    assert len(open_campaigns) < 200 and len(final) == 1000


# --- heartbeats --------------------------------------------------------------------------------------------


def test_given_the_hourly_budget_spent_when_the_sync_waits_then_a_state_arrives_at_least_every_two_minutes(
    sandbox: Sandbox, connector: Connector
) -> None:
    """requests_per_hour 2 and three requests: the third waits about an hour (12 real seconds, warped 300x).

    The connector beats once a (warped) minute; test_state_emitter checks that schedule exactly on a fake
    clock. Over real pipes a beat can arrive late by the machine's scheduling stalls, which the warp
    multiplies (0.4 s on a loaded 2-core CI machine is 2 warped minutes), so this test asserts the beats'
    number over the hour and bounds the longest gap loosely: no beat at all would leave a gap of an hour."""
    warp = 300.0
    two = sorted(c.campaign_id for c in sandbox.app.campaign_list() if c.status == "active")[:2]
    config = connector.config(campaign_ids=two, requests_per_hour=2)

    returncode, messages = timed_read(connector, config, warp)

    assert returncode == 0, [m.message for m in messages if m.type != "RECORD"][-5:]
    beats = [m for m in messages if m.type in ("RECORD", "STATE")]
    gaps = [(later.at - earlier.at) * warp for earlier, later in itertools.pairwise(beats)]
    assert max(gaps) <= 240, f"{max(gaps):.0f} warped seconds without a RECORD or STATE"
    waiting = [
        m for m in messages if m.type == "LOG" and "Request budget reached" in m.message["log"]["message"]
    ]
    assert waiting and float(waiting[0].message["log"]["message"].split("waiting ")[1].split(" s")[0]) > 3000
    heartbeats = [s for s in states(messages) if s["sourceStats"]["recordCount"] == 0]
    assert len(heartbeats) >= 45, "about one STATE per (warped) minute of the hour's wait"
    assert_record_counts_exact(messages)
    assert_same_rows(by_pk(records(messages)), [r for cid in two for r in sandbox.truth(cid)])


# --- a 429 holds the key ----------------------------------------------------------------------------------


def test_given_a_429_with_retry_after_when_syncing_then_no_request_of_the_key_leaves_before_it_passes(
    sandbox: Sandbox, connector: Connector
) -> None:
    sandbox.configure(latency=0.05)  # the other workers are busy when the 429 comes
    aimed = max(sandbox.app.campaign_list(), key=lambda c: len(sandbox.truth(c.campaign_id))).campaign_id
    sandbox.add_faults(
        [
            {"kind": "slow_first_byte", "delay": 0.01, "path_contains": f"/campaigns/{aimed}/"},
            {"kind": "rate_limit", "retry_after": 3, "path_contains": f"/campaigns/{aimed}/"},
        ]
    )

    run = connector.read(connector.config(window_size_days=30, num_workers=3)).assert_ok()

    log = sandbox.requests()
    refused = next(e for e in log if e["status"] == 429)
    after = [e for e in log if e["time"] > refused["time"]]
    in_flight = [e for e in after if e["time"] - refused["time"] < 0.1]  # sent before the 429 arrived
    assert len(in_flight) <= 2, in_flight
    held = [e for e in after if e not in in_flight]
    assert held, "the sync went on after the wait"
    assert min(e["time"] for e in held) - refused["time"] >= 3.0, "a request left during Retry-After"
    assert_unique_pks(run.records)
    assert_same_rows(by_pk(run.records), sandbox.truth())


# --- a key whose hourly quota is spent elsewhere ------------------------------------------------------------


def test_given_the_hour_spent_by_another_client_when_30_campaigns_sync_then_it_fails_once_naming_the_cause(
    tmp_path: Path, warped_sandbox_clock: float
) -> None:
    """595 of the key's 600 requests of the hour are spent elsewhere, and the other client spends the hour
    again before it frees: the sync waits out one Retry-After (heartbeating), then fails once."""
    warp = warped_sandbox_clock
    today = datetime.now(UTC).date().isoformat()
    with Sandbox(
        today=today, campaigns=30, rows_per_day=1, rate_limit_per_minute=0, rate_limit_per_hour=600,
        cache_mb=16,
    ) as sandbox:  # fmt: skip
        connector = Connector(sandbox, tmp_path)
        spent_at = sandbox_server.time.time()  # warped, as the sandbox's rate limiter sees it
        sandbox.spend_quota(595)
        again = threading.Timer(3000 / warp, lambda: sandbox.spend_quota(600))  # the other client, again
        again.start()
        try:
            returncode, messages = timed_read(connector, connector.config(num_workers=3), warp)
        finally:
            again.cancel()
        log = sandbox.requests()

    assert returncode == 1
    traces = [m.message["trace"] for m in messages if m.type == "TRACE"]
    errors = [t["error"] for t in traces if t["type"] == "ERROR"]
    assert len(errors) == 1, errors
    error = errors[0]
    message = error["message"]
    assert error["failure_type"] == "transient_error"
    assert message.count("Soundlink keeps refusing this API key") == 1 and "campaigns failed" not in message
    assert "used up by another client of the same key" in message and " UTC (Retry-After " in message
    assert f"This sync made {len(log)} requests" in message and "lower requests_per_hour" in message
    refused = [e for e in log if e["status"] == 429]
    assert 2 <= len(refused) <= 3 + 1, "up to one refusal per worker in flight, then one probe after the wait"
    first, probe = refused[0], refused[-1]
    in_flight = 0.2 * warp  # 0.2 real seconds: requests sent before the first 429 reached the connector
    held = [e for e in log if e["time"] > first["time"] + in_flight]
    assert held and held[0] is probe, "after the requests in flight, the probe was the next one"
    assert probe["time"] >= spent_at + 3600 - 1, "the probe left before the first Retry-After had passed"
    assert len(states(messages)) >= 30, "heartbeats through the hour's wait"
    assert_record_counts_exact(messages)
