"""Kill and resume: a multi-window, multi-campaign sync is SIGKILLed at several points and rerun from the
last STATE it emitted, until a run completes. Nothing may be lost and nothing the final state claims may be
missing.

Like the Airbyte platform, the test treats only records that precede a run's last STATE as committed:
records after it (read from the pipe before the kill) are dropped, so the next run must deliver them again.

STATE is paced to one a minute (state_emitter.py), so the connector runs with its clocks warped (see
helpers.pinned_connector_command): a warped minute lasts 30 ms, and each run emits a STATE every few
windows, throttled as in production, which gives the kills many different points to land on.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    RUN_TIMEOUT_S,
    Connector,
    assert_same_rows,
    assert_unique_pks,
    by_pk,
    campaign_state,
    catalog,
    export_requests,
    utc_today,
)
from soundlink_sandbox import Sandbox

WINDOW_DAYS = 10
LOOKBACK_DAYS = 7
WARP = 2000.0  # the connector's clocks: a minute of STATE pacing lasts 30 ms


@dataclass
class KilledRun:
    messages: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    stderr: bytes = b""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def committed(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Records up to the last STATE, and that state (None if the run emitted none)."""
        last = max((i for i, m in enumerate(self.messages) if m["type"] == "STATE"), default=-1)
        records = [m["record"]["data"] for m in self.messages[:last] if m["type"] == "RECORD"]
        state = self.messages[last]["state"]["stream"]["stream_state"] if last >= 0 else None
        return records, state

    @property
    def uncommitted_records(self) -> int:
        last = max((i for i, m in enumerate(self.messages) if m["type"] == "STATE"), default=-1)
        return sum(1 for m in self.messages[last + 1 :] if m["type"] == "RECORD")


Stop = Callable[[list[dict[str, Any]]], bool]


def after_states(n: int) -> Stop:
    return lambda messages: sum(m["type"] == "STATE" for m in messages) >= n


def mid_records(states: int, records: int) -> Stop:
    """After `states` STATE lines and then `records` more RECORD lines: in the middle of a window."""

    def stop(messages: list[dict[str, Any]]) -> bool:
        seen = [i for i, m in enumerate(messages) if m["type"] == "STATE"]
        if len(seen) < states:
            return False
        return sum(m["type"] == "RECORD" for m in messages[seen[states - 1] :]) >= records

    return stop


def run_and_kill(
    connector: Connector,
    config: dict[str, Any],
    state: dict[str, Any] | None,
    stop: Stop | None,
    sync_mode: str = "incremental",
) -> KilledRun:
    """Run `source-soundlink read`, reading stdout line by line; SIGKILL it as soon as `stop` says so."""
    argv = connector.argv("read", config, catalog(sync_mode=sync_mode), state)
    stderr_path = connector.workdir / "stderr.txt"
    run = KilledRun()
    with open(stderr_path, "wb") as stderr:
        command = connector.command(warp=WARP)
        proc = subprocess.Popen([*command, *argv], stdout=subprocess.PIPE, stderr=stderr)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                run.messages.append(json.loads(line))
                if stop is not None and stop(run.messages):
                    proc.kill()  # SIGKILL: no cleanup, no final STATE, exactly like a lost pod
                    break
            run.returncode = proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run.stderr = stderr_path.read_bytes()
    assert config["api_key"].encode() not in stderr_path.read_bytes()
    return run


def clear_requests_once_quiet(sandbox: Sandbox, quiet_s: float = 0.3, limit_s: float = 10.0) -> None:
    """Clear the request log once the killed run's last requests have landed in it.

    A request sent just before the SIGKILL can reach the sandbox's handler a moment later; cleared too
    early, it would show up in the next run's log as if that run had made it.
    """
    deadline = time.monotonic() + limit_s
    seen = -1
    while time.monotonic() < deadline:
        log = sandbox.requests()
        if len(log) == seen and all(entry["status"] is not None for entry in log):
            break
        seen = len(log)
        time.sleep(quiet_s)
    sandbox.clear_requests()


def expected_first_windows(sandbox: Sandbox, state: dict[str, Any] | None) -> dict[str, date]:
    """Where each campaign's reading must start given the state the run was handed."""
    out = {}
    for c in sandbox.app.campaign_list():
        cs = (
            campaign_state(state, c.campaign_id)
            if c.campaign_id in (state or {}).get("campaigns", {})
            else None
        )
        if cs and cs.get("settled"):
            continue
        start = c.start
        if cs and date.fromisoformat(cs["from"]) <= start:
            start = max(start, date.fromisoformat(cs["through"]) - timedelta(days=LOOKBACK_DAYS))
        out[c.campaign_id] = start
    return out


def test_sigkill_at_several_points_then_resume_loses_nothing(sandbox: Sandbox, connector: Connector) -> None:
    sandbox.configure(latency=0.02)  # ~40 windows of 10 days: slow enough to kill mid-way
    config = connector.config(window_size_days=WINDOW_DAYS, num_workers=3)
    today = sandbox.app.today()
    plan: list[Stop | None] = [after_states(1), after_states(3), after_states(6), mid_records(2, 60)]
    plan += [None] * 4  # then run to completion (a lookback re-read per run; one run should do)

    committed: list[list[dict[str, Any]]] = []
    state: dict[str, Any] | None = None
    completed = None
    for number, stop in enumerate(plan, 1):
        clear_requests_once_quiet(sandbox)
        run = run_and_kill(connector, config, state, stop)
        records, new_state = run.committed
        assert_unique_pks(run.records)  # within one run, even a killed one, no primary key twice
        # Every campaign (re)starts exactly where the handed state says: its first day, or lookback.
        starts = expected_first_windows(sandbox, state)
        for cid, first in starts.items():
            requested = sorted(r.start for r in export_requests(sandbox, cid))
            if requested:
                assert requested[0] == first, f"run {number}: {cid} started at {requested[0]}, not {first}"
        if stop is None:
            assert run.returncode == 0, f"run {number} failed: {run.stderr[-2000:]!r} {run.messages[-3:]}"
            completed = run
            committed.append(run.records)
            state = new_state
            break
        assert run.returncode == -9, f"run {number} ended before it could be killed ({run.returncode})"
        if stop is plan[3]:
            assert run.uncommitted_records >= 60, "the mid-records kill leaves records after the last STATE"
        assert new_state is not None, f"run {number} emitted no STATE before the kill"
        committed.append(records)
        state = new_state
    assert completed is not None, "no run completed"

    # The deduplicated union of committed records is exactly the truth: no record lost, none invented.
    union = by_pk(*committed)
    truth = sandbox.truth()
    assert_same_rows(union, truth)
    # No window the final state claims is missing, and the state claims everything up to today (or, for
    # a settled campaign, up to the window in which it settled: no row can follow).
    final = state["campaigns"]
    assert set(final) == {c.campaign_id for c in sandbox.app.campaign_list()}
    for cid in final:
        cs = campaign_state(state, cid)
        if cs.get("settled"):
            ended_on = sandbox.app.campaigns[cid].end + timedelta(days=1)  # rows `ended` after its end
            settled_by = ended_on + timedelta(days=38)
            assert settled_by <= date.fromisoformat(cs["through"]), (cid, cs)
        else:
            assert cs["through"] == today.isoformat(), (cid, cs)
        claimed = {
            key
            for key, row in by_pk(truth).items()
            if row["campaign_id"] == cid and cs["from"] <= row["report_date"] <= cs["through"]
        }
        assert claimed <= union.keys()
        assert cs["from"] == sandbox.app.campaigns[cid].start.isoformat()
    assert len(committed) >= 5, "every planned kill happened before the completing run"


def test_sigkill_while_the_key_waits_out_a_429_then_resume(sandbox: Sandbox, connector: Connector) -> None:
    """Killed while every worker is held by a 429's Retry-After: the STATE emitted since covers every window
    answered before it (workers checkpoint as they start the wait), no request left during the wait, and
    the rerun from that STATE loses nothing."""
    sandbox.configure(latency=0.02)
    aimed = max(sandbox.app.campaign_list(), key=lambda c: len(sandbox.truth(c.campaign_id))).campaign_id
    # The aimed campaign's third request is refused for 3000 warped seconds (1.5 s real).
    faults = [{"kind": "slow_first_byte", "delay": 0.01, "path_contains": f"/campaigns/{aimed}/"}] * 2
    faults.append({"kind": "rate_limit", "retry_after": 3000, "path_contains": f"/campaigns/{aimed}/"})
    sandbox.add_faults(faults)
    config = connector.config(window_size_days=WINDOW_DAYS, num_workers=3)

    limited_at: list[float] = []

    def waiting(messages: list[dict[str, Any]]) -> bool:
        """Half a real second into the 1.5 s wait: windows in flight at the 429 are done, every worker waits
        (and heartbeats keep coming, so a message arrives to stop on)."""
        last = messages[-1]
        if not limited_at and last["type"] == "LOG" and "Rate limited" in last["log"]["message"]:
            limited_at.append(time.monotonic())
        return bool(limited_at) and time.monotonic() - limited_at[0] >= 0.5

    killed = run_and_kill(connector, config, None, waiting)
    assert killed.returncode == -9
    records, state = killed.committed
    assert state is not None
    log = sandbox.requests()
    refused = next(e for e in log if e["status"] == 429)
    assert all(e["time"] <= refused["time"] + 0.2 for e in log), "a request left during the Retry-After"
    # Every window answered before the 429 was complete before the kill, and the last STATE covers it.
    answered = [r for r in export_requests(sandbox) if r.status == 200]
    for request in answered:
        covered = state["campaigns"].get(request.campaign_id) or {}
        assert covered.get("through", "") >= request.end.isoformat(), (request, covered)
    assert (
        state["campaigns"][aimed]["through"]
        == max(r.end for r in answered if r.campaign_id == aimed).isoformat()
    )

    clear_requests_once_quiet(sandbox)
    done = run_and_kill(connector, config, state, None)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_unique_pks(done.records)
    assert_same_rows(by_pk(records, done.records), sandbox.truth())


# --- graceful cancel: SIGTERM (the platform) and SIGINT (Ctrl-C) ----------------------------------------


def run_and_signal(
    connector: Connector, config: dict[str, Any], state: dict[str, Any] | None, sig: int, after_records: int,
    sync_mode: str = "incremental",
) -> tuple[KilledRun, float]:  # fmt: skip
    """Run `source-soundlink read` and send `sig` once `after_records` RECORD lines arrived; the run and
    the seconds from the signal to the exit."""
    argv = connector.argv("read", config, catalog(sync_mode=sync_mode), state)
    run = KilledRun()
    proc = subprocess.Popen([*connector.command(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    signalled_at = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        records = 0
        for line in proc.stdout:
            run.messages.append(json.loads(line))
            records += run.messages[-1]["type"] == "RECORD"
            if signalled_at is None and records >= after_records:
                proc.send_signal(sig)
                signalled_at = time.monotonic()
        run.returncode = proc.wait(timeout=RUN_TIMEOUT_S)
        run.stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert signalled_at is not None, f"the run ended before {after_records} records: {run.messages[-3:]}"
    assert config["api_key"].encode() not in run.stderr
    return run, time.monotonic() - signalled_at


def _assert_cancelled_cleanly(run: KilledRun, seconds: float, sig: int) -> dict[str, Any]:
    """Exit 128 + signal within 10 s, no traceback; the run ends with STATE, INCOMPLETE and one LOG, and the
    STATE's record counts add up to every record emitted; returns the last state."""
    assert run.returncode == 128 + sig, (run.returncode, run.stderr[-2000:], run.messages[-3:])
    assert seconds < 10
    assert b"Traceback" not in run.stderr and not any(
        m["type"] == "TRACE" and m["trace"]["type"] == "ERROR" for m in run.messages
    )
    last = run.messages[-3:]
    assert [m["type"] for m in last] == ["STATE", "TRACE", "LOG"], last
    assert last[1]["trace"]["stream_status"]["status"] == "INCOMPLETE"
    assert "Sync cancelled" in last[2]["log"]["message"]
    states = [m["state"] for m in run.messages if m["type"] == "STATE"]
    assert sum(s["sourceStats"]["recordCount"] for s in states) == len(run.records)
    assert run.uncommitted_records == 0
    return states[-1]["stream"]["stream_state"]


def _large_sandbox() -> Sandbox:
    return Sandbox(
        today=utc_today(), campaigns=300, rows_per_day=2, rate_limit_per_minute=0, rate_limit_per_hour=0,
        cache_mb=64, latency=0.01,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_given_300_campaigns_when_signalled_mid_sync_then_it_checkpoints_and_the_next_sync_is_exact(
    tmp_path: Path, sig: int
) -> None:
    with _large_sandbox() as sandbox:
        connector = Connector(sandbox, tmp_path)
        config = connector.config(num_workers=8)
        cancelled, seconds = run_and_signal(connector, config, None, sig, after_records=5000)
        state = _assert_cancelled_cleanly(cancelled, seconds, sig)
        first = export_requests(sandbox)
        clear_requests_once_quiet(sandbox)
        resumed = connector.read(config, state=state).assert_ok()
        second = export_requests(sandbox)
        truth = sandbox.truth()
        starts = expected_first_windows(sandbox, state)

    assert_unique_pks(cancelled.records)
    assert_same_rows(by_pk(cancelled.records, resumed.records), truth)
    # Each campaign resumes where the cancel's STATE says (its lookback, or its start if none was complete).
    for cid in {r.campaign_id for r in second}:
        assert min(r.start for r in second if r.campaign_id == cid) == starts[cid]
    assert first and second  # the cancel came mid-way: both runs did part of the work


def test_given_a_full_refresh_cancelled_half_way_when_retried_with_its_state_then_each_row_comes_once(
    tmp_path: Path,
) -> None:
    """Resumable full refresh: the retried attempt continues after the windows the first completed (no
    lookback), so an Overwrite table receives every row once; it makes well under a fresh sync's requests."""
    with _large_sandbox() as sandbox:
        connector = Connector(sandbox, tmp_path)
        config = connector.config(num_workers=8)
        fresh = connector.read(config, sync_mode="full_refresh").assert_ok()
        fresh_requests = len(export_requests(sandbox))
        clear_requests_once_quiet(sandbox)
        half = len(fresh.records) // 2
        cancelled, seconds = run_and_signal(
            connector, config, None, signal.SIGTERM, after_records=half, sync_mode="full_refresh"
        )
        state = _assert_cancelled_cleanly(cancelled, seconds, signal.SIGTERM)
        first = {(r.campaign_id, r.start) for r in export_requests(sandbox) if r.status == 200}
        clear_requests_once_quiet(sandbox)
        retried = connector.read(config, state=state, sync_mode="full_refresh").assert_ok()
        second = {(r.campaign_id, r.start) for r in export_requests(sandbox)}
        truth = sandbox.truth()

    assert state["full_refresh"] is True
    both = cancelled.records + retried.records
    assert_unique_pks(both)  # each row once across the two attempts
    assert_same_rows(by_pk(both), truth)
    assert not first & second, f"windows requested by both attempts: {sorted(first & second)[:5]}"
    assert len(second) < 0.75 * fresh_requests, (len(second), fresh_requests)


def after_a_state_with_rows_it_does_not_cover(messages: list[dict[str, Any]]) -> bool:
    """Right after a STATE preceded by rows of a window it does not cover (a window still in flight)."""
    if messages[-1]["type"] != "STATE":
        return False
    covered = messages[-1]["state"]["stream"]["stream_state"]["campaigns"]
    for message in messages:
        if message["type"] == "RECORD":
            row = message["record"]["data"]
            span = covered.get(row["campaign_id"])
            through = span.get("through") if isinstance(span, dict) else span[1] if span else None
            if through is None or row["report_date"] > through:
                return True
    return False


def test_given_a_full_refresh_sigkilled_mid_windows_when_retried_with_its_state_then_each_row_comes_once(
    sandbox: Sandbox, connector: Connector
) -> None:
    """A hard kill lands while windows are half emitted (STATE paced as in production, clocks warped): the
    committed rows of the killed attempt plus the retry's rows are the truth, each row once (Overwrite)."""
    sandbox.configure(latency=0.02)
    config = connector.config(window_size_days=WINDOW_DAYS, num_workers=3)
    killed = run_and_kill(connector, config, None, after_a_state_with_rows_it_does_not_cover, "full_refresh")
    assert killed.returncode == -9
    records, state = killed.committed
    assert state is not None and state["full_refresh"] is True
    clear_requests_once_quiet(sandbox)
    retried = run_and_kill(connector, config, state, None, sync_mode="full_refresh")
    assert retried.returncode == 0, retried.stderr[-2000:]

    both = records + retried.records
    assert_unique_pks(both)
    assert_same_rows(by_pk(both), sandbox.truth())


def test_given_every_export_hanging_when_sigtermed_then_it_exits_within_the_grace_period_with_a_state(
    sandbox: Sandbox, connector: Connector
) -> None:
    """Requests in flight that do not answer (a stalled server) cannot hold the exit: after 5 s of grace
    the connector checkpoints what is complete and exits, the stalled windows to be read again."""
    sandbox.add_faults([{"kind": "slow_first_byte", "delay": 12.0, "times": 100}])
    argv = connector.argv("read", connector.config(num_workers=3), catalog(), None)
    proc = subprocess.Popen([*connector.command(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while len(export_requests(sandbox)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
        seconds = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 143 and seconds < 8 and b"Traceback" not in stderr, (proc.returncode, seconds)
    messages = [json.loads(line) for line in stdout.splitlines()]
    assert [m["type"] for m in messages[-3:]] == ["STATE", "TRACE", "LOG"]
    assert messages[-3]["state"]["sourceStats"]["recordCount"] == 0
    assert "read again" in messages[-1]["log"]["message"]
