"""The HTTP client: one credential header, Retry-After, bounded retries, redirects, the request
budget, and the error texts it raises."""

from __future__ import annotations

from typing import Any

import orjson
import requests
import requests_mock
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_soundlink.client import SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from unit_tests import builders as b
from unit_tests.builders import API_KEY, BASE_URL


def test_exactly_one_auth_header_is_sent_x_api_key_by_default_or_bearer() -> None:
    for auth_header, present, absent in (
        ("x-api-key", "x-api-key", "Authorization"),
        ("bearer", "Authorization", "x-api-key"),
    ):
        with requests_mock.Mocker() as mocker:
            mocker.get(
                f"{BASE_URL}/v1/campaigns", json={"data": {"items": [], "pagination": {"totalPages": 1}}}
            )
            output = b.read_source(b.config(auth_header=auth_header, end_date="2026-03-05"))
            assert not output.errors
            sent = mocker.request_history[0].headers
            assert absent not in sent
            expected = API_KEY if present == "x-api-key" else f"Bearer {API_KEY}"
            assert sent[present] == expected


@HttpMocker()
def test_retry_after_is_honoured_then_the_window_is_read(
    clock: b.FakeClock, http_mocker: HttpMocker = None
) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rate_limited = b.error_response(429, "rate_limit_exceeded", "req-429", {"Retry-After": "17"})
    b.single_window_with(http_mocker, [rate_limited, b.jsonl_response(rows)])

    output = b.read_source(b.config(end_date="2026-03-05"), clock=clock)

    assert not output.errors
    assert len(output.records) == len(rows)
    assert [round(wait) for wait in clock.waits] == [17]  # the key-wide pause, less the answer's own time


@HttpMocker()
def test_server_errors_are_retried_a_bounded_number_of_times(
    clock: b.FakeClock, http_mocker: HttpMocker = None
) -> None:
    b.single_window_with(
        http_mocker, [b.error_response(500, "internal_error", f"req-500-{i}") for i in range(5)]
    )

    output = b.read_source(b.config(end_date="2026-03-05"), clock=clock)

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.transient_error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert "req-500-4" in error.message and "after 5 attempts" in error.message
    # Exponential backoff with jitter: the n-th wait lies in [2^(n-1) / 2, 2^(n-1)] seconds.
    assert len(clock.waits) == 4
    for n, wait in enumerate(clock.waits, start=1):
        assert 2 ** (n - 1) / 2 <= wait <= 2 ** (n - 1)


@HttpMocker()
def test_metrics_scope_error_says_which_scope(http_mocker: HttpMocker = None) -> None:
    b.single_window_with(http_mocker, b.error_response(403, "insufficient_scope", "req-scope"))

    output = b.read_source(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "metrics:read" in error.message
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message and "req-scope" in error.message


@HttpMocker()
def test_revoked_key_is_a_config_error_and_the_key_is_never_printed(
    capsys: Any, http_mocker: HttpMocker = None
) -> None:
    b.single_window_with(http_mocker, b.error_response(401, "api_key_revoked", "req-401"))

    output = b.read_source(b.config(end_date="2026-03-05"), debug=True)

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "revoked" in error.message and "req-401" in error.message
    assert any(m.log.message.startswith("GET ") for m in output.logs)  # --debug logged the requests
    everything = b"".join(
        orjson.dumps(AirbyteMessageSerializer.dump(m)) for m in output.get_message_iterator()
    )
    printed = capsys.readouterr()
    assert API_KEY.encode() not in everything
    assert API_KEY not in printed.out + printed.err


@HttpMocker()
def test_invalid_bearer_token_says_to_check_auth_header(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(
        HttpRequest(
            f"{BASE_URL}/v1/campaigns",
            query_params={"page": "1", "pageSize": "100", "sortBy": "createdAt", "sortOrder": "asc"},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ),
        b.error_response(401, "invalid_token", "req-tok"),
    )

    output = b.read_source(b.config(auth_header="bearer"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "set auth_header to x-api-key" in error.message and "req-tok" in error.message


def test_redirects_are_not_followed_so_the_key_never_leaves() -> None:
    output, exports = b.read_with(
        [{"status_code": 302, "headers": {"Location": "https://cdn.example/export"}}]
    )

    error = output.errors[-1].trace.error
    assert "redirect (HTTP 302)" in error.message and "check base_url" in error.message
    assert len(exports) == 1


def test_given_the_probe_after_a_429_fails_unexpectedly_when_another_request_asks_then_it_is_not_held() -> (
    None
):
    config = SoundlinkConfig.from_mapping(b.config())
    client = SoundlinkClient(config, lambda level, message: None, clock=b.FakeClock())
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/v1/ping",
            [
                {"status_code": 429, "headers": {"Retry-After": "30"}, "json": {"error": {"code": "x"}}},
                {"exc": requests.exceptions.InvalidHeader("a header the client refuses")},
                {"json": {"data": {"status": "ok"}}},
            ],
        )

        def first() -> Exception:
            try:
                client.get("/v1/ping", None, "the ping", "")
            except requests.exceptions.InvalidHeader as error:
                return error
            raise AssertionError("the probe did not fail")

        assert isinstance(b.in_thread(first), requests.exceptions.InvalidHeader)  # the 429, then the probe
        answer = b.in_thread(lambda: client.get("/v1/ping", None, "the ping", ""))  # must not poll forever
    assert answer.json() == {"data": {"status": "ok"}}
