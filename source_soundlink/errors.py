"""Soundlink answers as Airbyte understands them: one table from (HTTP status, error code) to what the
client does next, the failure type, whether the whole key is refused, and advice a person can act on.

The client (retry, wait, fail) and the error texts read this one table, so a status is never classified
twice. Never parse Soundlink's `message`; codes the table does not know are handled by their status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

CONFIG_ERROR = "config_error"
SYSTEM_ERROR = "system_error"
TRANSIENT_ERROR = "transient_error"
# Our own code for a body whose rows disagree with its X-Row-Count: Soundlink answered, so not an outage.
ROW_COUNT_MISMATCH = "row_count_mismatch"


class Action(Enum):
    FAIL = "fail"  # report the error now
    RETRY = "retry"  # back off, then send again (bounded)
    WAIT = "wait"  # the key is rate limited: wait out Retry-After, then send again


@dataclass(frozen=True)
class Verdict:
    action: Action
    failure_type: str
    advice: str = ""
    key_refused: bool = False  # every other request with this key would fail the same way (now or if
    # the client gives up waiting): the sync stops every worker and reports the error once


_KEY_ADVICE = {
    "invalid_api_key": "the API key is missing, malformed or unknown: paste a valid sk_ key",
    "api_key_revoked": "the API key was revoked: create a new key in Soundlink and update api_key",
    "api_key_expired": "the API key expired: create a new key in Soundlink and update api_key",
    "mixed_credentials": "the server saw two credential headers: keep auth_header on one scheme",
    "invalid_token": "the server rejected the Bearer credential: "
    "set auth_header to x-api-key, or check the key",
}
_SCOPE_ADVICE = {
    "metrics:read": "the API key lacks the metrics:read scope, which engagement exports need: "
    "grant metrics:read to the key",
    "campaigns:read": "the API key lacks the campaigns:read scope, which listing campaigns needs: "
    "grant campaigns:read, or set campaign_ids and start_date so no listing is needed",
}
# (status, code) -> verdict; (status, None) is the verdict for any other code of that status.
_TABLE: dict[tuple[int, str | None], Verdict] = {
    **{(401, code): Verdict(Action.FAIL, CONFIG_ERROR, advice, True) for code, advice in _KEY_ADVICE.items()},
    (401, None): Verdict(Action.FAIL, CONFIG_ERROR, key_refused=True),
    (403, None): Verdict(Action.FAIL, CONFIG_ERROR, key_refused=True),  # insufficient_scope: advice by scope
    (404, "not_found"): Verdict(
        Action.FAIL,
        CONFIG_ERROR,
        "the route is unknown or the Public API is not enabled for this organization: "
        "check base_url and ask Soundlink to enable the Public API",
    ),
    (404, "campaign_not_found"): Verdict(
        Action.FAIL,
        CONFIG_ERROR,
        "the campaign does not exist or belongs to another organization: remove it from campaign_ids",
    ),
    (400, "invalid_date_range"): Verdict(
        Action.FAIL, SYSTEM_ERROR, "the window's endDate is before its startDate"
    ),
    (400, "page_size_exceeded"): Verdict(
        Action.FAIL, SYSTEM_ERROR, "the page size is over the endpoint's maximum"
    ),
    (408, None): Verdict(Action.RETRY, TRANSIENT_ERROR),
    # Soundlink's limits are per key: a 429 holds every request of the sync until Retry-After has passed.
    (429, None): Verdict(
        Action.WAIT,
        TRANSIENT_ERROR,
        "retry after the reset; give the other client its own key, or lower requests_per_hour "
        "(and requests_per_minute, num_workers) on this connection so that both stay within the key's "
        "limits, or split the campaigns across connections with their own keys",
        key_refused=True,
    ),
}
_SERVER_ERROR = Verdict(Action.RETRY, TRANSIENT_ERROR)
_OTHER = Verdict(Action.FAIL, SYSTEM_ERROR)


def classify(status: int, code: str | None) -> Verdict:
    """What to do with a non-2xx, non-3xx Soundlink answer."""
    verdict = _TABLE.get((status, code)) or _TABLE.get((status, None))
    if verdict is not None:
        return verdict
    return _SERVER_ERROR if status >= 500 else _OTHER


@dataclass(frozen=True)
class Refusal:
    """The key's situation when a 429 arrives: what the client needs to decide to wait or give up."""

    streak: int  # 429s in a row, each to a request sent after the previous one arrived
    refused_for_s: float  # since the first 429 of the streak
    requests_sent: int  # by this sync, refused ones included
    requests_last_hour: int


@dataclass
class SoundlinkError(Exception):
    """A failure the sync surfaces to Airbyte. `message` is for the user; it never holds the API key."""

    message: str
    failure_type: str = SYSTEM_ERROR
    request_id: str | None = None
    status: int | None = None
    code: str | None = None
    rows_emitted: int = 0  # rows of the failing window already emitted (a window split must not repeat them)
    where: str | None = None  # the campaign and window it concerns, for a summary of many failures

    def __str__(self) -> str:
        return self.message

    @property
    def key_refused(self) -> bool:
        return self.status is not None and classify(self.status, self.code).key_refused


def describe_api_error(
    status: int, code: str | None, request_id: str | None, what: str, scope: str | None = None
) -> SoundlinkError:
    """Turn a documented Soundlink error answer into an actionable error for `what` (campaign, window)."""
    verdict = classify(status, code)
    if code == "insufficient_scope" and scope:
        advice = _SCOPE_ADVICE.get(scope, f"the API key lacks the {scope} scope: grant it")
    else:
        advice = verdict.advice
    label = f"{status} {code}" if code else f"HTTP {status}"
    text = f"Soundlink answered {label} for {what}"
    if advice:
        text += f": {advice}"
    text += f" (requestId {request_id or 'not given'})."
    return SoundlinkError(text, verdict.failure_type, request_id, status, code)


def describe_refused_key(
    status: int,
    code: str | None,
    request_id: str | None,
    what: str,
    retry_after: int,
    resets_at: datetime,
    refusal: Refusal,
    max_wait_s: int,
) -> SoundlinkError:
    """A key Soundlink keeps answering 429 (its hourly quota spent elsewhere): one message for the sync."""
    if retry_after > max_wait_s:
        why = f"it asks to wait {retry_after} s, longer than this connector waits ({max_wait_s} s)"
    elif refusal.refused_for_s + retry_after > max_wait_s:
        minutes = refusal.refused_for_s / 60
        why = f"it has refused the key for {minutes:.0f} minutes and asks for {retry_after} s more"
    else:
        why = f"it refused {refusal.streak} requests in a row"
    verdict = classify(status, code)
    label = f"{status} {code}" if code else f"HTTP {status}"
    text = (
        f"Soundlink keeps refusing this API key with {label} ({what}, requestId "
        f"{request_id or 'not given'}): {why}. The key's hourly quota seems to be used up by another client "
        "of the same key (a dashboard, a script, another connection); Soundlink expects it to free at about "
        f"{resets_at:%Y-%m-%d %H:%M} UTC (Retry-After {retry_after} s). This sync made "
        f"{refusal.requests_sent} requests, {refusal.requests_last_hour} of them in the last hour. "
        f"What to do: {verdict.advice}."
    )
    return SoundlinkError(text, verdict.failure_type, request_id, status, code)
