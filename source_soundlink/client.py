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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
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
    describe_refused_key,
)
from source_soundlink.version import VERSION

Logger = Callable[[str, str], None]  # (level, message)

MAX_ATTEMPTS = 5  # for 5xx, timeouts and connection errors before the body
MAX_REFUSALS = 10  # 429s in a row to requests sent while the key was known to be refused: give up
MAX_KEY_WAIT_S = 3600  # Soundlink's quota window: a key refused for longer is used up by another client
CHECK_MAX_KEY_WAIT_S = 60  # `check` answers at once rather than wait for a spent quota
PROBE_POLL_S = 0.5  # after a 429 pause, one request tests the key; the others look again this often
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 300  # a 90-day export can take a while to start on a busy organization
USER_AGENT = f"airbyte-source-soundlink/{VERSION}"  # from the package metadata
# Failures worth another try: no answer, or a JSON answer whose body broke (stream=False reads it in get()).
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class Refusal:
    """The key's situation when a 429 arrives: what the client needs to decide to wait or give up."""

    streak: int  # 429s in a row, each to a request sent after the previous one arrived
    refused_for_s: float  # since the first 429 of the streak
    requests_sent: int  # by this sync, refused ones included
    requests_last_hour: int


class RequestBudget:
    """Sliding-window limits shared by every thread (Soundlink: 60 requests/minute, 600/hour per key),
    and the key-wide pause a 429 asks for.

    Waiting here keeps a large backfill off 429s; the server's Retry-After still wins when it answers one.
    A request is dated when it is let go, then re-dated by settle() when its answer arrives: the server
    counts it on arrival, somewhere in between, so only the later date keeps the (limit+1)-th request from
    reaching the server less than a minute after the first (connection setup makes arrivals uneven).

    Soundlink's limits are per key, so a 429 holds every request of the sync, not only the one that got
    it: nothing leaves before its Retry-After has passed (requests already in flight are left alone).
    Then one request goes first and the others follow once it was answered, so an hour that is still
    spent costs one refused request, not one per worker.
    """

    def __init__(self, per_minute: int, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = ((60.0, per_minute), (3600.0, per_hour))
        self._sent: deque[float] = deque()  # ascending: every date is a clock() reading taken at that time
        self._lock = threading.Lock()
        self._clock = clock
        self._local = threading.local()  # this thread's request in flight: its date, whether it probes
        self._paused_until = 0.0  # no request leaves before this clock() reading (a 429's Retry-After)
        self._probing = False  # the key was refused: the next request goes alone
        self._probe_in_flight = False
        self._streak = 0
        self._streak_since = 0.0
        self._last_refusal = float("-inf")  # when the last counted 429 arrived
        self.requests_sent = 0

    def acquire(self, log: Logger | None = None, sleep: Callable[[float], None] | None = None) -> float:
        """Block until a request may be sent; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 3600.0:
                    self._sent.popleft()
                budget = self._wait_needed(now)
                hold = self._paused_until - now
                if hold <= 0 and self._probe_in_flight:
                    hold = PROBE_POLL_S
                wait = max(budget, hold)
                if wait <= 0:
                    self._sent.append(now)
                    self._local.slot = now
                    self._local.probe = self._probing
                    if self._probing:
                        self._probe_in_flight = True  # the others wait for its answer
                    self.requests_sent += 1
                    return waited
            if log and budget >= 1 and budget >= hold:
                log(
                    "INFO",
                    f"Request budget reached; waiting {budget:.0f} s before the next Soundlink request.",
                )
            (sleep or time.sleep)(wait)
            waited += wait

    def settle(self, answered: bool = True) -> None:
        """This thread's request got an answer other than 429 (`answered`) or none (a connection error)."""
        with self._lock:
            sent = self._redate()
            if answered and sent > self._last_refusal:  # the key works again
                self._probing = False
                self._streak = 0

    def refused(self, retry_after: float) -> Refusal:
        """This thread's request got a 429: hold every request of the key for `retry_after` seconds."""
        with self._lock:
            sent = self._redate()
            now = self._clock()
            self._paused_until = max(self._paused_until, now + retry_after)
            self._probing = True
            if sent > self._last_refusal:  # not a request already in flight when the key was refused
                if self._streak == 0:
                    self._streak_since = now
                self._streak += 1
                self._last_refusal = now
            refused_for = now - self._streak_since if self._streak else 0.0
            return Refusal(self._streak, refused_for, self.requests_sent, len(self._sent))

    def _redate(self) -> float:
        """Re-date this thread's request to now (keeping `_sent` ascending); return when it was sent."""
        slot, self._local.slot = getattr(self._local, "slot", None), None
        if getattr(self._local, "probe", False):
            self._local.probe = self._probe_in_flight = False
        if slot is None:
            return float("inf")
        try:
            self._sent.remove(slot)
        except ValueError:
            return slot  # already out of the hour window
        self._sent.append(self._clock())
        return slot

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
        clock: Callable[[], float] = time.monotonic,
        max_key_wait_s: int = MAX_KEY_WAIT_S,
    ) -> None:
        """`sleep` waits between attempts; the export passes one that a cancelled sync interrupts, and the
        `clock` those waits are measured on. A key refused (429) for longer than `max_key_wait_s` fails."""
        self.config = config
        self._log = log
        self._sleep_fn = sleep
        self._backoff_base_s = backoff_base_s
        self._max_key_wait_s = max_key_wait_s
        self.budget = RequestBudget(config.requests_per_minute, config.requests_per_hour, clock)
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
        refused = 0  # this request's own 429s (Soundlink refuses per key; this bounds a stubborn route too)
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
                self.budget.settle(answered=False)
                failures += 1
                if failures >= MAX_ATTEMPTS:
                    raise SoundlinkError(
                        f"Could not reach Soundlink for {what} after {failures} attempts "
                        f"({type(exc).__name__}); check base_url and the network, then retry.",
                        TRANSIENT_ERROR,
                    ) from None
                self._sleep_backoff(failures, what, type(exc).__name__)
                continue
            except BaseException:
                self.budget.settle(answered=False)  # a probe that never returns must not hold the key
                raise
            self.server_today = _http_date(response.headers.get("Date")) or self.server_today
            status = response.status_code
            self._log("DEBUG", f"GET {path} {dict(params or {})} -> {status}")
            if status < 300:
                self.budget.settle()
                return response
            if status < 400:
                self.budget.settle()
                response.close()
                raise SoundlinkError(
                    f"Soundlink answered {what} with a redirect (HTTP {status}); redirects are not followed, "
                    "so the API key never goes to another host: check base_url.",
                    SYSTEM_ERROR,
                    response.headers.get("X-Request-Id"),
                    status,
                )
            try:
                request_id, code = _error_details(response)
            except BaseException:
                self.budget.settle(answered=False)
                raise
            verdict = classify(status, code)
            if verdict.action is not Action.WAIT:
                self.budget.settle()
            else:
                wait = _retry_after(response)
                refused += 1
                refusal = self.budget.refused(wait)
                refusal = replace(refusal, streak=max(refusal.streak, refused))
                if refusal.refused_for_s + wait > self._max_key_wait_s or refusal.streak > MAX_REFUSALS:
                    resets_at = datetime.now(UTC) + timedelta(seconds=wait)
                    raise describe_refused_key(
                        status, code, request_id, what, wait, resets_at, refusal, self._max_key_wait_s
                    )
                self._log(
                    "WARN",
                    f"Rate limited on {what}; every request of this key is held, waiting {wait} s "
                    "as Retry-After asks.",
                )
                continue  # acquire() holds this request, and every other, until Retry-After has passed
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
