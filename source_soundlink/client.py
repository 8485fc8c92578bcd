"""The Soundlink HTTP client: one credential header, the shared request budget, bounded retries.

Why not the CDK's HttpRequester: the export path must keep the body streaming (the CDK's error filters can
consume it), must honour Retry-After for every request of the key, must retry a window whose body was cut
(the CDK retries `send` only), and must not pay the CDK's import and per-record cost. This module is that
path's transport: `get` sends (`_send`) and, on an error answer, decides with retry_policy.py and
errors.py's table whether to wait, retry or fail (`_on_error`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import requests

from source_soundlink import network_guard
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import SoundlinkConfig
from source_soundlink.errors import (
    SYSTEM_ERROR,
    TRANSIENT_ERROR,
    SoundlinkError,
    describe_api_error,
    describe_refused_key,
)
from source_soundlink.protocol import Logger
from source_soundlink.request_budget import RequestBudget
from source_soundlink.retry_policy import DEFAULT_POLICY, NO_ANSWER_ERRORS, RetryPolicy
from source_soundlink.version import VERSION

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 300  # a 90-day export can take a while to start on a busy organization
USER_AGENT = f"airbyte-source-soundlink/{VERSION}"  # from the package metadata


@dataclass
class _Request:
    """One logical GET and what went wrong with it so far."""

    path: str
    params: Mapping[str, Any] | None
    what: str  # names the campaign and window (or page) in every message
    scope: str
    failures: int = 0  # 5xx, 408, no answer
    refused: int = 0  # this request's own 429s (Soundlink refuses per key; this bounds a stubborn route)


class SoundlinkClient:
    def __init__(
        self,
        config: SoundlinkConfig,
        log: Logger,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: Clock = SYSTEM_CLOCK,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        """`wait` sleeps between attempts (default: the clock's); the export passes one that a cancelled
        sync interrupts. The budget's sliding windows are measured on `clock`."""
        self.config = config
        self.policy = policy
        self._log = log
        self._wait = wait or clock.wait
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
            session = network_guard.protect(requests.Session())  # Airbyte Cloud: public https only
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
        request = _Request(path, params, what, scope)
        headers = {"Accept": accept, **self._auth}
        while True:
            self.budget.acquire(self._log, self._wait)
            try:
                response = self._send(request, headers, stream)
            except NO_ANSWER_ERRORS as exc:
                self.budget.settle(answered=False)
                reason = type(exc).__name__
                self._back_off(request, reason, partial(_unreachable, request.what, reason=reason))
                continue
            except BaseException:
                self.budget.settle(answered=False)  # a probe that never returns must not hold the key
                raise
            if response.status_code < 300:
                self.budget.settle()
                return response
            self._on_error(request, response)  # returns when the request is to be sent again

    def _send(self, request: _Request, headers: dict[str, str], stream: bool) -> requests.Response:
        response = self.session.get(
            self.config.base_url + request.path,
            params=request.params,
            headers=headers,
            stream=stream,
            timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            # requests keeps a custom x-api-key header on a redirect to another host.
            allow_redirects=False,
        )
        self.server_today = _http_date(response.headers.get("Date")) or self.server_today
        self._log("DEBUG", f"GET {request.path} {dict(request.params or {})} -> {response.status_code}")
        return response

    def _on_error(self, request: _Request, response: requests.Response) -> None:
        """Settle an answer of 300 or more: return to send again (after waiting), or raise."""
        status = response.status_code
        if status < 400:
            self.budget.settle()
            response.close()
            raise SoundlinkError(
                f"Soundlink answered {request.what} with a redirect (HTTP {status}); redirects are not "
                "followed, so the API key never goes to another host: check base_url.",
                SYSTEM_ERROR,
                response.headers.get("X-Request-Id"),
                status,
            )
        try:
            request_id, code = _error_details(response)
        except BaseException:
            self.budget.settle(answered=False)
            raise
        if self.policy.waits(status, code):
            self._on_refused(request, response, status, code, request_id)
            return  # acquire() holds this request, and every other, until Retry-After has passed
        self.budget.settle()
        if not self.policy.retries(status, code):
            raise describe_api_error(status, code, request_id, request.what, request.scope)

        def gave_up(attempts: int) -> SoundlinkError:
            error = describe_api_error(status, code, request_id, request.what, request.scope)
            error.message = error.message[:-1] + f"; gave up after {attempts} attempts."
            return error

        self._back_off(request, f"{status} {code or ''}".strip(), gave_up)

    def _on_refused(
        self,
        request: _Request,
        response: requests.Response,
        status: int,
        code: str | None,
        request_id: str | None,
    ) -> None:
        """A 429: hold the key for its Retry-After, or give up when the key's quota is spent elsewhere."""
        wait = _retry_after(response)
        request.refused += 1
        refusal = self.budget.refused(wait)
        refusal = replace(refusal, streak=max(refusal.streak, request.refused))
        if self.policy.key_given_up(refusal, wait):
            resets_at = datetime.now(UTC) + timedelta(seconds=wait)
            raise describe_refused_key(
                status,
                code,
                request_id,
                request.what,
                wait,
                resets_at,
                refusal,
                self.policy.max_retry_after_s,
            )
        self._log(
            "WARN",
            f"Rate limited on {request.what}; every request of this key is held, waiting {wait} s "
            "as Retry-After asks.",
        )

    def _back_off(self, request: _Request, reason: str, gave_up: Callable[[int], SoundlinkError]) -> None:
        """Count a failed attempt; wait before the next one, or raise `gave_up(attempts)`."""
        request.failures += 1
        if self.policy.gives_up(request.failures):
            raise gave_up(request.failures) from None
        delay = self.policy.backoff_s(request.failures)
        retries = self.policy.max_attempts - 1
        self._log(
            "WARN", f"{reason} on {request.what}; retry {request.failures} of {retries} in {delay:.1f} s."
        )
        self._wait(delay)


def _unreachable(what: str, attempts: int, reason: str) -> SoundlinkError:
    return SoundlinkError(
        f"Could not reach Soundlink for {what} after {attempts} attempts ({reason}); check "
        "base_url and the network, then retry.",
        TRANSIENT_ERROR,
    )


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
