"""The one table from a Soundlink answer to a failure type and advice."""

from __future__ import annotations

import pytest

from source_soundlink.errors import Action, SoundlinkError, classify, describe_api_error


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
        (429, "rate_limit_exceeded", "transient_error", ""),
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
        (429, "rate_limit_exceeded", Action.WAIT, False),
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
