"""The retry policy: how many attempts, how long between them, and when a refused key is given up."""

from __future__ import annotations

import pytest

from source_soundlink.errors import Refusal
from source_soundlink.retry_policy import CHECK_POLICY, DEFAULT_POLICY, RetryPolicy


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_given_a_retry_when_backing_off_then_the_wait_doubles_each_time_with_jitter(
    attempt: int,
) -> None:
    policy = RetryPolicy(backoff_base_s=1.5)
    ceiling = 1.5 * 2 ** (attempt - 1)

    assert policy.backoff_s(attempt, uniform=lambda low, high: low) == ceiling / 2
    assert policy.backoff_s(attempt, uniform=lambda low, high: high) == ceiling
    assert ceiling / 2 <= policy.backoff_s(attempt) <= ceiling


def test_given_failed_attempts_when_counted_then_the_policy_gives_up_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize(
    ("status", "code", "retries", "waits"),
    [
        (500, "internal_error", True, False),
        (503, None, True, False),
        (408, None, True, False),
        (429, "rate_limit_exceeded", False, True),
        (401, "api_key_revoked", False, False),
        (400, "invalid_query_parameter", False, False),
    ],
)
def test_given_an_error_answer_then_errors_table_decides_whether_it_is_retried_or_waited_out(
    status: int, code: str | None, retries: bool, waits: bool
) -> None:
    assert (DEFAULT_POLICY.retries(status, code), DEFAULT_POLICY.waits(status, code)) == (retries, waits)


@pytest.mark.parametrize(
    ("refusal", "retry_after", "given_up"),
    [
        (Refusal(1, 0.0, 5, 5), 3599, False),  # an hour's quota spent: wait it out, heartbeating
        (Refusal(1, 0.0, 5, 5), 3601, True),  # longer than the quota window: someone else uses the key
        (Refusal(2, 3000.0, 9, 9), 601, True),  # refused for over an hour in all
        (Refusal(10, 50.0, 9, 9), 5, False),
        (Refusal(11, 55.0, 9, 9), 5, True),  # 429s in a row past max_refusals
    ],
)
def test_given_a_refused_key_when_asked_then_it_is_given_up_past_the_quota_window_or_the_refusals(
    refusal: Refusal, retry_after: int, given_up: bool
) -> None:
    assert DEFAULT_POLICY.key_given_up(refusal, retry_after) is given_up


def test_given_check_when_the_key_is_refused_for_more_than_a_minute_then_it_gives_up_at_once() -> None:
    assert CHECK_POLICY.key_given_up(Refusal(1, 0.0, 1, 1), 61)
    assert not CHECK_POLICY.key_given_up(Refusal(1, 0.0, 1, 1), 30)
