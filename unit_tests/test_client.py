"""The HTTP client: one credential header, Retry-After, bounded retries, redirects, the request
budget, and the error texts it raises."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import requests
import requests_mock
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_soundlink.client import RequestBudget, SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from source_soundlink.source import SourceSoundlink
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
def test_retry_after_is_honoured_then_the_window_is_read(sleeps: Any, http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rate_limited = b.error_response(429, "rate_limit_exceeded", "req-429", {"Retry-After": "17"})
    b.single_window_with(http_mocker, [rate_limited, b.jsonl_response(rows)])

    output = b.read_source(b.config(end_date="2026-03-05"))

    assert not output.errors
    assert len(output.records) == len(rows)
    assert [round(wait) for wait in sleeps.waits] == [17]  # the key-wide pause, less the answer's own time


@HttpMocker()
def test_server_errors_are_retried_a_bounded_number_of_times(
    sleeps: Any, http_mocker: HttpMocker = None
) -> None:
    b.single_window_with(
        http_mocker, [b.error_response(500, "internal_error", f"req-500-{i}") for i in range(5)]
    )

    output = b.read_source(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.transient_error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert "req-500-4" in error.message and "after 5 attempts" in error.message
    # Exponential backoff with jitter: the n-th wait lies in [2^(n-1) / 2, 2^(n-1)] seconds.
    assert len(sleeps.waits) == 4
    for n, wait in enumerate(sleeps.waits, start=1):
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

    output = read(SourceSoundlink(), b.config(end_date="2026-03-05"), b.catalog(), debug=True)

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "revoked" in error.message and "req-401" in error.message
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_request_budget_waits_for_the_minute_window(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("source_soundlink.client.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    budget = RequestBudget(per_minute=3, per_hour=100, clock=clock)
    waits = [budget.acquire() for _ in range(7)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == 60  # the 4th request waits for the 1st to leave the minute window
    assert clock.now == 120  # 7 requests at 3/minute need two full minutes


def test_request_budget_waits_for_the_hour_window(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("source_soundlink.client.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    budget = RequestBudget(per_minute=1000, per_hour=5, clock=clock)
    for _ in range(5):
        budget.acquire()
    assert budget.acquire() == 3600


# -- the key-wide pause a 429 asks for ---------------------------------------------------------------------


def in_thread(action: Any) -> Any:
    """Run `action` on its own thread (the budget keeps each thread's request apart) and return its result."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(action()))
    worker.start()
    worker.join(10)
    assert result, "the action did not finish"
    return result[0]


def test_given_a_429_when_others_ask_then_none_leaves_before_retry_after_and_one_probe_goes_first() -> None:
    now = [0.0]
    budget = RequestBudget(per_minute=1000, per_hour=10_000, clock=lambda: now[0])

    def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    budget.acquire(sleep=fake_sleep)  # this thread's request goes out at 0 ...
    now[0] = 1.0
    assert budget.refused(30).streak == 1  # ... and is answered 429, Retry-After 30, at 1

    sent: dict[str, float] = {}
    probe_answered, polled = threading.Event(), threading.Event()

    def probe() -> None:  # another worker's request: held for the whole Retry-After, then it goes alone
        budget.acquire(sleep=fake_sleep)
        sent["probe"] = now[0]
        probe_answered.wait(5)
        budget.settle()  # answered 200: the key works again

    def third() -> None:  # polls (a real, tiny sleep: the fake clock stays put) until the probe's answer
        budget.acquire(sleep=lambda seconds: (polled.set(), time.sleep(0.001)))
        sent["third"] = now[0]

    workers = [threading.Thread(target=probe)]
    workers[0].start()
    while "probe" not in sent:
        time.sleep(0.001)
    assert sent["probe"] == 31.0
    workers.append(threading.Thread(target=third))
    workers[1].start()
    assert polled.wait(5)
    time.sleep(0.05)
    assert "third" not in sent, "a second request left while the probe was unanswered"
    now[0] = 32.0
    probe_answered.set()
    for worker in workers:
        worker.join(5)
    assert sent == {"probe": 31.0, "third": 32.0}


def test_given_requests_in_flight_when_all_are_refused_then_one_refusal_counts_and_a_success_resets() -> None:
    now = [0.0]
    budget = RequestBudget(per_minute=1000, per_hour=10_000, clock=lambda: now[0])
    barrier = threading.Barrier(3)

    def refused_after_all_sent() -> int:
        budget.acquire()
        barrier.wait(5)  # three requests in flight at once
        return budget.refused(60).streak

    streaks = []
    workers = [threading.Thread(target=lambda: streaks.append(refused_after_all_sent())) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(5)
    assert sorted(streaks) == [1, 1, 1]  # sent before the key was known to be refused: one refusal

    def probe(answer: str) -> int:
        budget.acquire(sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
        if answer == "429":
            return budget.refused(60).streak
        budget.settle()
        return 0

    assert in_thread(lambda: probe("429")) == 2  # the probe after the pause, refused again
    assert in_thread(lambda: probe("200")) == 0
    assert in_thread(lambda: probe("429")) == 1  # a new streak after the key worked


def test_given_the_probe_after_a_429_fails_unexpectedly_when_another_request_asks_then_it_is_not_held() -> (
    None
):
    now = [0.0]
    clock_budget = RequestBudget(per_minute=1000, per_hour=10_000, clock=lambda: now[0])
    config = SoundlinkConfig.from_mapping(b.config())
    client = SoundlinkClient(
        config, lambda level, message: None, sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    client.budget = clock_budget
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

        assert isinstance(in_thread(first), requests.exceptions.InvalidHeader)  # the 429, then the probe
        answer = in_thread(lambda: client.get("/v1/ping", None, "the ping", ""))  # must not poll forever
    assert answer.json() == {"data": {"status": "ok"}}
