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


def sent(line: bytes) -> tuple[int, int] | None:
    """The (row_estimate, byte_estimate) of an ESTIMATE line, None for b"" (none due)."""
    if not line:
        return None
    estimate = orjson.loads(line)["trace"]["estimate"]
    assert estimate["name"] == protocol.ENGAGEMENT_STREAM and estimate["type"] == "STREAM"
    return estimate["row_estimate"], estimate["byte_estimate"]


OVERHEAD = protocol.record_overhead(protocol.ENGAGEMENT_STREAM)


def test_given_windows_announced_when_estimated_then_it_is_the_sum_and_never_below_the_rows_emitted(
    clock: b.FakeClock,
) -> None:
    estimate = SyncEstimate(clock.now, interval_s=1.0)

    assert sent(estimate.announced(100, 10_000)) == (100, 10_000), "before any record: the body bytes"
    clock.time += 1
    assert sent(estimate.announced(50, 5_000)) == (150, 15_000)
    clock.time += 1
    assert estimate.records(100, 12_000 + 100 * OVERHEAD) == b"", "the rows expected did not change"
    assert estimate.current() == (150, 18_000), "bytes: the rows estimate times a row's mean data bytes"
    clock.time += 1
    # A window without X-Row-Count: the rows emitted pass the rows announced.
    assert sent(estimate.records(80, 9_600 + 80 * OVERHEAD)) == (180, 21_600)


def test_given_a_window_that_failed_half_way_when_corrected_then_the_final_estimate_is_its_rows(
    clock: b.FakeClock,
) -> None:
    estimate = SyncEstimate(clock.now)
    estimate.announced(100, 0)
    estimate.records(40, 4_000 + 40 * OVERHEAD)
    estimate.announced(-60, 0)  # the window ended after 40 of its 100 rows

    assert estimate.current() == (40, 4_000)
    assert sent(estimate.final()) == (40, 4_000)
    assert estimate.final() == b"", "sent once"


def test_given_announcements_within_a_second_when_asked_then_one_estimate_goes_out_per_interval(
    clock: b.FakeClock,
) -> None:
    estimate = SyncEstimate(clock.now, interval_s=1.0)
    rows_sent = []
    for _ in range(100):  # 100 windows announced in 10 s
        clock.time += 0.1
        if line := estimate.announced(10, 1_000):
            rows_sent.append(sent(line)[0])

    assert 9 <= len(rows_sent) <= 11 and rows_sent == sorted(rows_sent)
    assert rows_sent[-1] <= 1_000 and estimate.current() == (1_000, 100_000)
    assert sent(estimate.final()) == (0, 0), "no row came after all: the last ESTIMATE says so"
    assert SyncEstimate(clock.now).final() == b"", "nothing emitted, nothing announced: no ESTIMATE"


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
        export = EngagementExport(config, None, clock=b.FakeClock())
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
