"""The window reader: one window's request, a cut body fetched again and resumed, X-Row-Count."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest
import requests_mock
from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink.client import SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.window import Window
from source_soundlink.engagement.window_reader import WindowReader
from source_soundlink.errors import SoundlinkError
from source_soundlink.retry_policy import DEFAULT_POLICY
from unit_tests import builders as b

WINDOW = Window("camp_a", date(2026, 3, 1), date(2026, 3, 5))


class Reading:
    """A WindowReader on a fake clock, with what it emitted and logged."""

    def __init__(self, clock: b.FakeClock, **config: Any) -> None:
        self.records: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.logs: list[str] = []
        client = SoundlinkClient(SoundlinkConfig.from_mapping(b.config(**config)), self.log, clock=clock)
        decoder = JsonlDecoder(lambda data, count, window, progress: self.records.extend(_data(data)))
        context = config.get("engagement_context")
        self.reader = WindowReader(
            client,
            decoder,
            context,
            lambda m: self.other.append(orjson.loads(m)),
            self.log,
            clock.wait,
            clock,
        )

    def log(self, level: str, message: str) -> None:
        self.logs.append(f"{level} {message}")


def _data(chunk: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line)["record"]["data"] for line in chunk.splitlines()]


def test_given_a_window_when_read_then_one_request_names_its_dates_and_context_and_an_estimate_goes_first(
    clock: b.FakeClock,
) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", engagement_context="playlist")
    reading = Reading(clock, engagement_context="playlist")
    with requests_mock.Mocker() as mocker:
        mocker.get(b.EXPORT, content=b.jsonl(rows), headers={"X-Row-Count": str(len(rows))})
        progress = reading.reader.read_window(WINDOW)
        [request] = mocker.request_history

    assert request.qs == {
        "startdate": ["2026-03-01"],
        "enddate": ["2026-03-05"],
        "engagementcontext": ["playlist"],
    }
    assert request.headers["Accept"] == "application/x-ndjson"
    assert reading.records == rows and progress.rows_emitted == len(rows)
    assert [m["trace"]["estimate"]["row_estimate"] for m in reading.other] == [len(rows)]
    assert reading.reader.requests_sent == 1


def test_given_a_body_cut_on_every_fetch_when_read_then_it_fails_after_the_policys_attempts_with_its_backoff(
    clock: b.FakeClock,
) -> None:
    countries = tuple(f"C{i:03d}" for i in range(120))  # bodies over one read chunk (256 KiB)
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", countries=countries)
    body = b.jsonl(rows)
    headers = {"X-Row-Count": str(len(rows)), "X-Request-Id": "req-cut"}
    reading = Reading(clock)
    with requests_mock.Mocker() as mocker:
        cuts = [{"body": b.CutBody(body, 300_000 + 1000 * n), "headers": headers} for n in range(5)]
        mocker.get(b.EXPORT, cuts)
        with pytest.raises(SoundlinkError) as raised:
            reading.reader.read_window(WINDOW)
        fetches = len(mocker.request_history)

    assert fetches == DEFAULT_POLICY.max_attempts
    message = raised.value.message
    assert "cut mid-body 5 times on campaign camp_a, window 2026-03-01..2026-03-05" in message
    assert "req-cut" in message and raised.value.failure_type == "transient_error"
    assert reading.records and reading.records == rows[: len(reading.records)]  # each row once, in order
    assert len(clock.waits) == DEFAULT_POLICY.max_attempts - 1
    for n, wait in enumerate(clock.waits, start=1):  # the policy's backoff, as for a 5xx
        assert 2 ** (n - 1) / 2 <= wait <= 2 ** (n - 1)


def test_given_no_x_row_count_when_read_then_a_warning_says_completeness_cannot_be_checked(
    clock: b.FakeClock,
) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-02")
    reading = Reading(clock)
    with requests_mock.Mocker() as mocker:
        mocker.get(b.EXPORT, content=b.jsonl(rows))
        reading.reader.read_window(WINDOW)

    assert reading.records == rows and reading.other == []
    assert any("no X-Row-Count header" in line for line in reading.logs)


def test_a_body_cut_mid_stream_is_fetched_again_and_resumed_without_repeats() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", countries=("DE", "FR", "US"))
    body = b.jsonl(rows)
    cut_after = len(b.jsonl(rows[:7])) + 5  # the 8th line is cut in the middle
    headers = {"X-Row-Count": str(len(rows)), "X-Request-Id": "req-cut"}
    output, exports = b.read_with(
        [{"body": b.CutBody(body, cut_after), "headers": headers}, {"content": body, "headers": headers}]
    )

    assert not output.errors
    assert [r.record.data for r in output.records] == rows  # every row once, in order
    assert len(exports) == 2
    assert output.is_in_logs("Connection cut mid-body")


@HttpMocker()
def test_short_body_fails_naming_window_and_keeps_state_before_it(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    b.single_window_with(
        http_mocker, b.jsonl_response(rows[:-1], row_count=len(rows), request_id="req-short")
    )

    output = b.read_source(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert f"held {len(rows) - 1} rows but X-Row-Count announced {len(rows)}" in error.message
    assert "req-short" in error.message
    assert b.final_state(output)["campaigns"] == {}  # the window was not checkpointed
