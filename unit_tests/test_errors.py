"""The one table from a Soundlink answer to a failure type and advice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from source_soundlink.errors import (
    Action,
    Refusal,
    SoundlinkError,
    classify,
    describe_api_error,
    describe_refused_key,
)


@pytest.mark.parametrize(
    ("status", "code", "failure_type", "advice"),
    [
        (401, "invalid_api_key", "config_error", "paste a valid sk_ key"),
        (401, "api_key_revoked", "config_error", "create a new key"),
        (401, "api_key_expired", "config_error", "create a new key"),
        (401, "mixed_credentials", "config_error", "keep auth_header on one scheme"),
        (401, "invalid_token", "config_error", "set auth_header to x-api-key"),
        (403, "insufficient_scope", "config_error", "grant metrics:read"),
        (404, "not_found", "config_error", "check base_url"),
        (404, "campaign_not_found", "config_error", "remove it from campaign_ids"),
        (400, "invalid_date_range", "system_error", "endDate is before its startDate"),
        (400, "page_size_exceeded", "system_error", "over the endpoint's maximum"),
        (429, "rate_limit_exceeded", "transient_error", "lower requests_per_hour"),
        (500, "internal_error", "transient_error", ""),
        (418, "a_code_from_the_future", "system_error", ""),  # unknown codes: handled by status
    ],
)
def test_every_documented_error_code_maps_to_a_failure_type_and_advice(
    status: int, code: str, failure_type: str, advice: str
) -> None:

    error = describe_api_error(
        status, code, "req-42", "campaign c, window 2026-01-01..2026-01-31", "metrics:read"
    )
    assert error.failure_type == failure_type
    assert error.message.startswith(
        f"Soundlink answered {status} {code} for campaign c, window 2026-01-01..2026-01-31"
    )
    assert advice in error.message and "(requestId req-42)" in error.message


@pytest.mark.parametrize(
    ("status", "code", "action", "key_refused"),
    [
        (401, "api_key_revoked", Action.FAIL, True),
        (401, "a_new_401_code", Action.FAIL, True),
        (403, "insufficient_scope", Action.FAIL, True),
        (404, "campaign_not_found", Action.FAIL, False),
        (400, "invalid_query_parameter", Action.FAIL, False),
        (408, None, Action.RETRY, False),
        (429, "rate_limit_exceeded", Action.WAIT, True),  # limits are per key: a 429 holds every request
        (500, "internal_error", Action.RETRY, False),
        (503, None, Action.RETRY, False),
    ],
)
def test_one_table_says_what_the_client_does_with_each_answer(
    status: int, code: str | None, action: Action, key_refused: bool
) -> None:
    verdict = classify(status, code)
    assert (verdict.action, verdict.key_refused) == (action, key_refused)
    assert SoundlinkError("x", status=status, code=code).key_refused is key_refused


@pytest.mark.parametrize(
    ("retry_after", "refusal", "why"),
    [
        (7200, Refusal(1, 0.0, 31, 31), "asks to wait 7200 s, longer than this connector waits (3600 s)"),
        (120, Refusal(2, 3590.0, 31, 31), "has refused the key for 60 minutes and asks for 120 s more"),
        (5, Refusal(11, 55.0, 31, 31), "refused 11 requests in a row"),
    ],
)
def test_given_a_key_refused_for_good_when_described_then_one_message_names_cause_reset_count_and_settings(
    retry_after: int, refusal: Refusal, why: str
) -> None:
    resets_at = datetime(2026, 5, 1, 14, 7, tzinfo=UTC)

    error = describe_refused_key(
        429, "rate_limit_exceeded", "req-9", "campaign c, window a..b", retry_after, resets_at, refusal, 3600
    )

    assert error.failure_type == "transient_error" and error.key_refused
    assert error.message == (
        "Soundlink keeps refusing this API key with 429 rate_limit_exceeded (campaign c, window a..b, "
        f"requestId req-9): it {why}. The key's hourly quota seems to be used up by another client of the "
        "same key (a dashboard, a script, another connection); Soundlink expects it to free at about "
        f"2026-05-01 14:07 UTC (Retry-After {retry_after} s). This sync made 31 requests, 31 of them in the "
        "last hour. What to do: retry after the reset; give the other client its own key, or lower "
        "requests_per_hour (and requests_per_minute, num_workers) on this connection so that both stay "
        "within the key's limits, or split the campaigns across connections with their own keys."
    )
