"""The Soundlink HTTP client: one credential header, a client-side request budget, bounded retries.

Why not the CDK's HttpRequester: the export path must keep the body streaming (the CDK's error filters can
consume it), must honour Retry-After, must retry a window whose body was cut (the CDK retries `send` only),
and must not pay the CDK's import and per-record cost. This module is that path's transport, in one place.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from source_soundlink.config import SoundlinkConfig
from source_soundlink.errors import (
    SYSTEM_ERROR,
    TRANSIENT_ERROR,
    Action,
    SoundlinkError,
    classify,
    describe_api_error,
)

Logger = Callable[[str, str], None]  # (level, message)

MAX_ATTEMPTS = 5  # for 5xx, timeouts and connection errors before the body
MAX_RATE_LIMITED = 10  # 429 answers tolerated for one request
MAX_RETRY_AFTER_S = 600  # a Retry-After beyond this fails the sync instead of hanging it
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 300  # a 90-day export can take a while to start on a busy organization
USER_AGENT = "airbyte-source-soundlink/0.1.0"
# Failures worth another try: no answer, or a JSON answer whose body broke (stream=False reads it in get()).
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class RequestBudget:
    """Sliding-window limits shared by every thread (Soundlink: 60 requests/minute, 600/hour per key).

    Waiting here keeps a large backfill off 429s; the server's Retry-After still wins when it answers one.
    A request is dated when it is let go, then re-dated by settle() when its answer arrives: the server
    counts it on arrival, somewhere in between, so only the later date keeps the (limit+1)-th request from
    reaching the server less than a minute after the first (connection setup makes arrivals uneven).
    """

    def __init__(self, per_minute: int, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = ((60.0, per_minute), (3600.0, per_hour))
        self._sent: deque[float] = deque()  # ascending: every date is a clock() reading taken at that time
        self._lock = threading.Lock()
        self._clock = clock
        self._local = threading.local()  # the date of this thread's request in flight

    def acquire(self, log: Logger | None = None, sleep: Callable[[float], None] | None = None) -> float:
        """Block until a request may be sent; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 3600.0:
                    self._sent.popleft()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._sent.append(now)
                    self._local.slot = now
                    return waited
            if log and wait >= 1:
                log(
                    "INFO", f"Request budget reached; waiting {wait:.0f} s before the next Soundlink request."
                )
            (sleep or time.sleep)(wait)
            waited += wait

    def settle(self) -> None:
        """This thread's request got its answer (or failed): re-date it to now, keeping `_sent` ascending."""
        slot, self._local.slot = getattr(self._local, "slot", None), None
        if slot is None:
            return
        with self._lock:
            try:
                self._sent.remove(slot)
            except ValueError:
                return  # already out of the hour window
            self._sent.append(self._clock())

    def _wait_needed(self, now: float) -> float:
        wait = 0.0
        for span, limit in self._limits:
            in_window = [t for t in self._sent if now - t < span] if span < 3600 else list(self._sent)
            if len(in_window) >= limit:
                wait = max(wait, in_window[-limit] + span - now)
        return wait


class SoundlinkClient:
    def __init__(
        self,
        config: SoundlinkConfig,
        log: Logger,
        backoff_base_s: float = 1.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`sleep` waits between attempts; the export passes one that a cancelled sync interrupts."""
        self.config = config
        self._log = log
        self._sleep_fn = sleep
        self._backoff_base_s = backoff_base_s
        self.budget = RequestBudget(config.requests_per_minute, config.requests_per_hour)
        self.server_today: date | None = None  # Soundlink's UTC date, from its last Date header
        self._local = threading.local()  # one Session per thread: Session is not thread-safe
        # Exactly one credential header: older servers answer 401 mixed_credentials to both.
        if config.auth_header == "bearer":
            self._auth = {"Authorization": f"Bearer {config.api_key}"}
        else:
            self._auth = {"x-api-key": config.api_key}

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        what: str,
        scope: str,
        accept: str = "application/json",
        stream: bool = False,
    ) -> requests.Response:
        """GET with retries; returns a 2xx response or raises SoundlinkError describing `what`."""
        url = self.config.base_url + path
        headers = {"Accept": accept, **self._auth}
        failures = 0
        rate_limited = 0
        while True:
            self.budget.acquire(self._log, self._sleep)
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers=headers,
                    stream=stream,
                    timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                    # requests keeps a custom x-api-key header on a redirect to another host.
                    allow_redirects=False,
                )
            except _RETRYABLE as exc:
                self.budget.settle()
                failures += 1
                if failures >= MAX_ATTEMPTS:
                    raise SoundlinkError(
                        f"Could not reach Soundlink for {what} after {failures} attempts "
                        f"({type(exc).__name__}); check base_url and the network, then retry.",
                        TRANSIENT_ERROR,
                    ) from None
                self._sleep_backoff(failures, what, type(exc).__name__)
                continue
            self.budget.settle()
            self.server_today = _http_date(response.headers.get("Date")) or self.server_today
            status = response.status_code
            self._log("DEBUG", f"GET {path} {dict(params or {})} -> {status}")
            if status < 300:
                return response
            if status < 400:
                response.close()
                raise SoundlinkError(
                    f"Soundlink answered {what} with a redirect (HTTP {status}); redirects are not followed, "
                    "so the API key never goes to another host: check base_url.",
                    SYSTEM_ERROR,
                    response.headers.get("X-Request-Id"),
                    status,
                )
            request_id, code = _error_details(response)
            verdict = classify(status, code)
            if verdict.action is Action.WAIT:
                rate_limited += 1
                wait = _retry_after(response)
                if rate_limited > MAX_RATE_LIMITED or wait > MAX_RETRY_AFTER_S:
                    raise SoundlinkError(
                        f"Soundlink kept answering 429 rate_limit_exceeded for {what} (Retry-After {wait} s, "
                        f"{rate_limited} times; requestId {request_id or 'not given'}). Lower "
                        "requests_per_minute/requests_per_hour or num_workers, or retry later.",
                        TRANSIENT_ERROR,
                        request_id,
                        status,
                        code,
                    )
                self._log("WARN", f"Rate limited on {what}; waiting {wait} s as Retry-After asks.")
                self._sleep(wait)
                continue
            if verdict.action is Action.RETRY:
                failures += 1
                if failures >= MAX_ATTEMPTS:
                    error = describe_api_error(status, code, request_id, what, scope)
                    error.message = error.message[:-1] + f"; gave up after {failures} attempts."
                    raise error
                self._sleep_backoff(failures, what, f"{status} {code or ''}".strip())
                continue
            raise describe_api_error(status, code, request_id, what, scope)

    def _sleep_backoff(self, failures: int, what: str, reason: str) -> None:
        # Exponential backoff with full jitter keeps parallel workers from retrying in lockstep.
        delay = self._backoff_base_s * (2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        self._log("WARN", f"{reason} on {what}; retry {failures} of {MAX_ATTEMPTS - 1} in {delay:.1f} s.")
        self._sleep(delay)

    def _sleep(self, seconds: float) -> None:
        (self._sleep_fn or time.sleep)(seconds)


def _http_date(value: str | None) -> date | None:
    """The UTC date of an HTTP Date header; None if absent or unreadable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC).date()
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response) -> int:
    try:
        return max(1, int(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1


def _error_details(response: requests.Response) -> tuple[str | None, str | None]:
    """requestId and error code from Soundlink's JSON error envelope (absent fields stay None)."""
    request_id = response.headers.get("X-Request-Id")
    code = None
    try:
        body = response.json()
    except ValueError:
        return request_id, None
    finally:
        response.close()
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            request_id = meta["requestId"]
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            code = error["code"]
    return request_id, code
