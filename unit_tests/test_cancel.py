"""The export's cancel path (a SIGTERM or SIGINT reaches it as CancelToken.request): no new request, the
windows in flight finish, one STATE covering every complete window with an exact count, INCOMPLETE, one LOG.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import orjson
import requests_mock

from source_soundlink import cancel
from source_soundlink.cancel import CancelToken
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import EngagementExport
from unit_tests import builders as b
from unit_tests.builders import BASE_URL

CAMPAIGNS = [f"camp_{i}" for i in range(6)]
EXPORTS = re.compile(r"/v1/campaigns/camp_[0-9]+/metrics/engagement/export")


def _listing() -> dict[str, Any]:
    items = [b.campaign(cid, created="2026-03-01") for cid in CAMPAIGNS]
    return {"data": {"items": items, "pagination": {"page": 1, "totalPages": 1}}}


def _messages(export: EngagementExport) -> list[dict[str, Any]]:
    return [orjson.loads(line) for chunk in export.messages() for line in chunk.splitlines()]


def _export(token: CancelToken, clock: Clock, **config: Any) -> EngagementExport:
    settings = b.config(end_date="2026-03-30", window_size_days=10, **config)
    # Pacing far longer than the sync: only the cancel can bring a STATE before the end.
    return EngagementExport(
        SoundlinkConfig.from_mapping(settings),
        None,
        clock=clock,
        state_interval_s=1e6,
        heartbeat_s=1e6,
        cancel=token,
    )


def test_given_windows_in_flight_when_cancelled_then_they_finish_and_one_state_covers_them(
    clock: b.FakeClock,
) -> None:
    token = CancelToken()
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def answer(request: Any, context: Any) -> bytes:
        query = parse_qs(request.query)
        start, end = query["startdate"][0], query["enddate"][0]
        with lock:
            sent.append((request.path.split("/")[3], start))
            if len(sent) == 3:
                token.request("SIGTERM")  # while this window (and the other worker's) is in flight
        rows = b.daily_rows(request.path.split("/")[3], start.upper(), end.upper())
        context.headers["X-Row-Count"] = str(len(rows))
        time.sleep(0.05)  # a body on its way when the cancel lands
        return b.jsonl(rows)

    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=_listing())
        mocker.get(EXPORTS, content=answer)
        export = _export(token, clock, num_workers=2)
        messages = _messages(export)

    assert export.cancelled == "SIGTERM" and not export.abandoned
    assert len(sent) <= 4, f"requests were started after the cancel: {sent}"  # 3, and the other worker's
    kinds = [m["type"] for m in messages]
    states = [m["state"] for m in messages if m["type"] == "STATE"]
    assert len(states) == 1 and kinds[-3] == "STATE"
    assert messages[-2]["trace"]["stream_status"]["status"] == "INCOMPLETE"
    assert messages[-1]["type"] == "LOG" and "Sync cancelled (SIGTERM)" in messages[-1]["log"]["message"]
    records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
    assert states[0]["sourceStats"]["recordCount"] == len(records)
    # Every window requested finished in the grace period: the STATE covers each one, and holds no other.
    covered = states[0]["stream"]["stream_state"]["campaigns"]
    for campaign_id, start in sent:
        assert covered[campaign_id]["from"] == "2026-03-01"
        assert covered[campaign_id]["through"] >= start
    emitted = {(r["campaign_id"], r["report_date"]) for r in records}
    claimed = {
        (cid, day.isoformat())
        for cid, span in covered.items()
        for day in _days(date.fromisoformat(span["from"]), date.fromisoformat(span["through"]))
    }
    assert claimed == emitted


def test_given_a_worker_waiting_out_a_retry_after_when_cancelled_then_the_sync_ends_at_once() -> None:
    token = CancelToken()
    limited = {
        "status_code": 429,
        "headers": {"Retry-After": "300"},
        "json": {"error": {"code": "rate_limit_exceeded"}},
    }
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=_listing())
        mocker.get(EXPORTS, **limited)
        export = _export(token, SYSTEM_CLOCK, num_workers=3)  # real, interruptible waits
        threading.Timer(0.5, token.request, ("SIGINT",)).start()
        started = time.monotonic()
        messages = _messages(export)
        elapsed = time.monotonic() - started

    assert elapsed < 5  # not the 300 s Retry-After
    assert export.cancelled == "SIGINT"
    state = [m["state"] for m in messages if m["type"] == "STATE"][-1]
    assert state["stream"]["stream_state"]["campaigns"] == {} and state["sourceStats"]["recordCount"] == 0
    assert "Sync cancelled (SIGINT)" in messages[-1]["log"]["message"]


def test_given_installed_handlers_when_a_signal_arrives_then_the_token_names_it_and_handlers_restore() -> (
    None
):
    token = CancelToken()
    before = signal.getsignal(signal.SIGTERM)
    restore = cancel.install(token)
    try:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)  # a second signal does not change the reason
    finally:
        restore()
    assert token.reason == "SIGTERM" and token.wait()
    assert signal.getsignal(signal.SIGTERM) is before
    assert cancel.exit_code("SIGTERM") == 143 and cancel.exit_code("SIGINT") == 130


def _days(first: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
