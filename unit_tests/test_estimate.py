"""The sync-wide ESTIMATE: the sum the consumer keeps (estimate.py) and the messages a read sends."""

from __future__ import annotations

import orjson
import requests_mock

from source_soundlink import protocol
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import EngagementExport
from source_soundlink.engagement.estimate import SyncEstimate
from unit_tests import builders as b
from unit_tests.builders import BASE_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_given_windows_announced_when_estimated_then_it_is_the_sum_and_never_below_the_rows_emitted() -> None:
    clock = FakeClock()
    estimate = SyncEstimate(clock, interval_s=1.0)

    estimate.announced(100, 10_000)
    assert estimate.due() == (100, 10_000), "before any record, bytes are the announced body bytes"
    clock.now += 1
    estimate.announced(50, 5_000)
    estimate.records(100, 12_000)
    assert estimate.due() == (150, 18_000), "then the rows estimate times the mean bytes of a row emitted"
    clock.now += 1
    estimate.records(80, 9_600)  # a window without X-Row-Count: the rows emitted pass the announced ones
    assert estimate.due() == (180, 21_600)


def test_given_a_window_that_failed_half_way_when_corrected_then_the_final_estimate_is_its_rows() -> None:
    clock = FakeClock()
    estimate = SyncEstimate(clock)
    estimate.announced(100, 0)
    estimate.records(40, 4_000)
    estimate.announced(-60, 0)  # the window ended after 40 of its 100 rows

    assert estimate.current() == (40, 4_000)
    assert estimate.final() == (40, 4_000)
    assert estimate.final() is None, "sent once"


def test_given_announcements_within_a_second_when_asked_then_one_estimate_goes_out_per_interval() -> None:
    clock = FakeClock()
    estimate = SyncEstimate(clock, interval_s=1.0)
    sent = []
    for _ in range(100):  # 100 windows announced in 10 s
        clock.now += 0.1
        estimate.announced(10, 1_000)
        if due := estimate.due():
            sent.append(due[0])

    assert 9 <= len(sent) <= 11 and sent == sorted(sent)
    assert sent[-1] <= 1_000 and estimate.current() == (1_000, 100_000)
    assert estimate.final() == (0, 0), "no row came after all: the last ESTIMATE says so"
    assert SyncEstimate(clock).final() is None, "nothing emitted, nothing announced: no ESTIMATE"


def test_given_a_read_with_a_cut_and_an_unannounced_window_then_each_estimate_covers_the_rows_emitted() -> (
    None
):
    windows = [("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20"), ("2026-03-21", "2026-03-25")]
    rows = [b.daily_rows("camp_a", start, end) for start, end in windows]
    body = [b.jsonl(r) for r in rows]
    responses = [
        {
            "content": body[0],
            "headers": {"X-Row-Count": str(len(rows[0])), "Content-Length": str(len(body[0]))},
        },
        {"body": b.CutBody(body[1], len(body[1]) // 2), "headers": {"X-Row-Count": str(len(rows[1]))}},
        {"content": body[1], "headers": {"X-Row-Count": str(len(rows[1]))}},  # the re-fetch after the cut
        {"content": body[2]},  # no X-Row-Count
    ]
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=b.LISTING)
        mocker.get(b.EXPORT, responses)
        config = SoundlinkConfig.from_mapping(b.config(end_date="2026-03-25", window_size_days=10))
        export = EngagementExport(config, None, backoff_base_s=0)
        messages = [orjson.loads(line) for chunk in export.messages() for line in chunk.splitlines()]

    emitted, estimates = 0, []
    for message in messages:
        if message["type"] == "RECORD":
            emitted += 1
        elif message["type"] == "TRACE" and message["trace"]["type"] == "ESTIMATE":
            estimate = message["trace"]["estimate"]
            assert estimate["row_estimate"] >= emitted, "an ESTIMATE below the rows already emitted"
            estimates.append(estimate)
    assert emitted == sum(map(len, rows))
    assert estimates[0]["row_estimate"] == len(rows[0]), "the first window announced, nothing else yet"
    assert estimates[0]["byte_estimate"] == len(body[0]), "before any record: the announced body bytes"
    assert estimates[-1]["row_estimate"] == emitted
    assert estimates[-1]["byte_estimate"] == sum(map(len, body)) - emitted, "the rows' bytes, exactly"
    assert all(e["name"] == protocol.ENGAGEMENT_STREAM and e["type"] == "STREAM" for e in estimates)
