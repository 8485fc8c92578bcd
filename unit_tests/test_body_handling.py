"""How an export body is read: resume after a cut, CRLF, within-day order, redirects, early logs."""

from __future__ import annotations

import io
import time
from typing import Any

import orjson
import requests_mock
import urllib3
from airbyte_cdk.test.entrypoint_wrapper import read

from source_soundlink.export import EngagementExport
from source_soundlink.source import SourceSoundlink
from unit_tests import builders as b
from unit_tests.builders import BASE_URL

EXPORT = f"{BASE_URL}/v1/campaigns/camp_a/metrics/engagement/export"
LISTING = {"data": {"items": [b.campaign("camp_a", created="2026-03-01")], "pagination": {"totalPages": 1}}}


class CutBody(io.BytesIO):
    """A body whose connection breaks after `limit` bytes, as urllib3 reports it."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.limit:
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
        size = self.limit - self.tell() if size is None or size < 0 else min(size, self.limit - self.tell())
        return super().read(size)


def _as_emitted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """In-process, the CDK's entrypoint serializer drops top-level nulls (the CLI keeps them)."""
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _jsonl(rows: list[dict[str, Any]], newline: bytes = b"\n") -> bytes:
    return b"".join(orjson.dumps(r) + newline for r in rows)


def _read_with(responses: list[dict[str, Any]], **config: Any):
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=LISTING)
        mocker.get(EXPORT, responses)
        output = read(SourceSoundlink(), b.config(end_date="2026-03-05", **config), b.catalog())
        exports = [r for r in mocker.request_history if r.path.endswith("/export")]
    return output, exports


def test_a_body_cut_mid_stream_is_fetched_again_and_resumed_without_repeats() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", countries=("DE", "FR", "US"))
    body = _jsonl(rows)
    cut_after = len(_jsonl(rows[:7])) + 5  # the 8th line is cut in the middle
    headers = {"X-Row-Count": str(len(rows)), "X-Request-Id": "req-cut"}
    output, exports = _read_with(
        [{"body": CutBody(body, cut_after), "headers": headers}, {"content": body, "headers": headers}]
    )

    assert not output.errors
    assert [r.record.data for r in output.records] == _as_emitted(rows)  # every row once, in order
    assert len(exports) == 2
    assert output.is_in_logs("Connection cut mid-body")


def test_crlf_line_ends_are_read_as_plain_rows() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    output, _ = _read_with([{"content": _jsonl(rows, b"\r\n"), "headers": {"X-Row-Count": str(len(rows))}}])

    assert not output.errors
    assert [r.record.data for r in output.records] == _as_emitted(rows)


def test_within_a_day_any_collation_is_accepted_but_a_repeated_key_is_not() -> None:
    # Mixed-case track ids sorted case-insensitively (as a database collation might), not by code point.
    rows = [
        b.row("camp_a", "2026-03-01", track=t) for t in ("aTrack000000000000000a", "BTrack000000000000000b")
    ]
    output, _ = _read_with([{"content": _jsonl(rows), "headers": {"X-Row-Count": "2"}}])
    assert not output.errors and len(output.records) == 2

    repeated = [*rows, rows[0]]
    output, _ = _read_with([{"content": _jsonl(repeated), "headers": {"X-Row-Count": "3"}}])
    assert (
        "line 3: it repeats the primary key of an earlier row of 2026-03-01"
        in output.errors[-1].trace.error.message
    )


def test_dates_going_backwards_fail() -> None:
    rows = [b.row("camp_a", "2026-03-02"), b.row("camp_a", "2026-03-01")]
    output, _ = _read_with([{"content": _jsonl(rows), "headers": {"X-Row-Count": "2"}}])
    assert "line 2: report_date 2026-03-01 comes after 2026-03-02" in output.errors[-1].trace.error.message


def test_redirects_are_not_followed_so_the_key_never_leaves() -> None:
    output, exports = _read_with(
        [{"status_code": 302, "headers": {"Location": "https://cdn.example/export"}}]
    )

    error = output.errors[-1].trace.error
    assert "redirect (HTTP 302)" in error.message and "check base_url" in error.message
    assert len(exports) == 1


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
        mocker.get(EXPORT, content=_jsonl(rows), headers={"X-Row-Count": str(len(rows))})
        output = read(SourceSoundlink(), b.config(end_date="2026-03-05"), b.catalog())

    assert not output.errors
    assert len(output.records) == len(rows)
    assert sum("Rate limited" in m.log.message for m in output.logs) == 18


def test_a_non_terminal_campaign_with_ended_rows_is_never_settled() -> None:
    # camp_a is `active` (e.g. renewed under the same id): its `ended` rows do not settle it.
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", status="ended")
    output, _ = _read_with([{"content": _jsonl(rows), "headers": {"X-Row-Count": str(len(rows))}}])
    assert not output.errors
    state = output.most_recent_state.stream_state.__dict__["campaigns"]["camp_a"]
    assert "settled" not in state and state["ended_on"] == "2026-03-01"


ORIGINAL_WAIT = EngagementExport._wait  # captured before the autouse fixture replaces it


def test_a_refused_key_interrupts_other_campaigns_waiting_out_a_retry_after(monkeypatch: Any) -> None:
    monkeypatch.setattr(EngagementExport, "_wait", ORIGINAL_WAIT)  # real, interruptible waits
    listing = {
        "data": {
            "items": [b.campaign("camp_a", created="2026-03-01"), b.campaign("camp_b", created="2026-03-01")],
            "pagination": {"totalPages": 1},
        }
    }
    revoked = {"error": {"code": "api_key_revoked", "message": "x"}, "meta": {"requestId": "req-401"}}
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=listing)
        mocker.get(EXPORT, status_code=401, json=revoked)
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
