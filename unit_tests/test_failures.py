"""The outage breaker's rule and the bound on a sync's failure message (engagement/failures.py)."""

from __future__ import annotations

import re

import requests_mock

from source_soundlink.engagement.failures import (
    MAX_MESSAGE_CHARS,
    TRIP_AFTER,
    OutageBreaker,
    SyncFailed,
    combined_message,
)
from source_soundlink.errors import (
    CONFIG_ERROR,
    ROW_COUNT_MISMATCH,
    SYSTEM_ERROR,
    TRANSIENT_ERROR,
    SoundlinkError,
)
from unit_tests import builders as b
from unit_tests.builders import BASE_URL


def outage(n: int, status: int | None = 503) -> SoundlinkError:
    return SoundlinkError(
        f"Soundlink answered {status} for campaign camp_{n:05d}, window 2026-01-01..2026-03-31 "
        f"(requestId req-{n}); gave up after 5 attempts.",
        TRANSIENT_ERROR,
        f"req-{n}",
        status,
        "unavailable" if status else None,
        where=f"campaign camp_{n:05d}, window 2026-01-01..2026-03-31",
    )


def test_given_outage_failures_in_a_row_when_counted_then_the_breaker_trips_once_on_the_third() -> None:
    breaker = OutageBreaker()

    tripped = [breaker.failure(outage(n, 503 if n % 2 else None)) for n in range(6)]

    assert tripped == [False] * (TRIP_AFTER - 1) + [True] + [False] * (6 - TRIP_AFTER)
    assert breaker.tripped


def test_given_a_bad_campaign_among_healthy_ones_when_windows_complete_between_then_it_never_trips() -> None:
    breaker = OutageBreaker()
    for n in range(50):  # a failure after every other campaign's window: successes keep resetting it
        assert not breaker.failure(outage(n))
        breaker.success()

    assert not breaker.tripped


def test_given_failures_that_are_not_outages_when_counted_then_they_neither_trip_nor_reset_it() -> None:
    breaker = OutageBreaker()
    others = [
        SoundlinkError("unknown campaign", CONFIG_ERROR, "req-404", 404, "campaign_not_found"),
        SoundlinkError("bad row", SYSTEM_ERROR),
        SoundlinkError("429 for an hour", TRANSIENT_ERROR, "req-429", 429, "rate_limit_exceeded"),
        # Soundlink answered, but the body disagreed with its X-Row-Count: about that window, not an outage.
        SoundlinkError("short body", TRANSIENT_ERROR, "req-200", None, ROW_COUNT_MISMATCH),
    ]
    breaker.failure(outage(1))
    for error in others * 3:
        assert not breaker.failure(error)
    breaker.failure(outage(2))

    assert not breaker.tripped and breaker.failure(outage(3))


def test_given_a_tripped_breaker_when_reported_then_one_short_transient_error_names_the_first_few() -> None:
    breaker = OutageBreaker()
    unknown = SoundlinkError("campaign camp_typo does not exist", CONFIG_ERROR, "req-404", 404)
    errors = [outage(n) for n in range(2)] + [unknown] + [outage(n) for n in range(2, 10_000)]
    for error in errors:
        breaker.failure(error)

    reported = breaker.report(errors, left=120)

    assert reported[1:] == [unknown], "failures that are not the outage are kept as they are"
    summary = reported[0]
    assert summary.failure_type == TRANSIENT_ERROR and len(summary.message) <= MAX_MESSAGE_CHARS
    assert re.findall(r"requestId (req-\d+)", summary.message) == ["req-0", "req-1", "req-2", "req-3"]
    assert "campaign camp_00000, window 2026-01-01..2026-03-31 (HTTP 503 unavailable" in summary.message
    assert "and 9996 more" in summary.message and "120 campaigns were left" in summary.message
    assert "retry later" in summary.message
    failure = SyncFailed(reported)
    assert failure.failure_type == CONFIG_ERROR, "the unknown campaign needs the user: a config error"
    assert len(str(failure)) <= MAX_MESSAGE_CHARS


def test_given_10000_failed_campaigns_when_combined_then_the_message_is_bounded_and_counts_the_rest() -> None:
    errors = [outage(n) for n in range(10_000)]

    message = combined_message(errors)

    assert len(message) <= MAX_MESSAGE_CHARS
    shown = message.count("requestId req-")
    assert shown >= 3 and message.startswith("10000 failures: ")
    assert message.endswith(f"and {10_000 - shown} more (see the sync's log).")
    assert combined_message(errors[:1]) == errors[0].message
    assert len(combined_message([SoundlinkError("x" * 5000)])) <= MAX_MESSAGE_CHARS


def test_given_one_campaign_whose_exports_fail_when_synced_then_the_others_complete_and_it_is_named(
    clock: b.FakeClock,
) -> None:
    campaigns = [b.campaign(f"camp_{i:02d}", created="2026-03-01") for i in range(8)]
    listing = {"data": {"items": campaigns, "pagination": {"totalPages": 1}}}
    rows = {c["campaignId"]: b.daily_rows(c["campaignId"], "2026-03-01", "2026-03-05") for c in campaigns}
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=listing)
        for cid, body in rows.items():
            mocker.get(
                f"{BASE_URL}/v1/campaigns/{cid}/metrics/engagement/export",
                content=b.jsonl(body),
                headers={"X-Row-Count": str(len(body))},
            )
        mocker.get(
            f"{BASE_URL}/v1/campaigns/camp_03/metrics/engagement/export",
            status_code=503,
            json={"error": {"code": "unavailable"}, "meta": {"requestId": "req-503"}},
        )
        output = b.read_source(b.config(end_date="2026-03-05", num_workers=3), clock=clock)
        sent = [r.path for r in mocker.request_history if r.path.endswith("/export")]

    assert (
        len(output.records) == 7 * 5 * 2
        and sent.count("/v1/campaigns/camp_03/metrics/engagement/export") == 5
    )
    assert set(b.final_state(output)["campaigns"]) == {c["campaignId"] for c in campaigns} - {"camp_03"}
    assert len(output.errors) == 1
    message = output.errors[0].trace.error.message
    assert "camp_03" in message and "req-503" in message and "kept failing" not in message
