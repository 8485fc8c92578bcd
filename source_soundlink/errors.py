"""Soundlink failures as Airbyte understands them: a failure type and a message a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

CONFIG_ERROR = "config_error"
SYSTEM_ERROR = "system_error"
TRANSIENT_ERROR = "transient_error"

# What the user should do about each documented error code. Never parse Soundlink's `message`.
_ADVICE = {
    "invalid_api_key": "the API key is missing, malformed or unknown: paste a valid sk_ key",
    "api_key_revoked": "the API key was revoked: create a new key in Soundlink and update api_key",
    "api_key_expired": "the API key expired: create a new key in Soundlink and update api_key",
    "mixed_credentials": "the server saw two credential headers: keep auth_header on one scheme",
    "invalid_token": "the server rejected the Bearer credential: "
    "set auth_header to x-api-key, or check the key",
    "not_found": "the route is unknown or the Public API is not enabled for this organization: "
    "check base_url and ask Soundlink to enable the Public API",
    "campaign_not_found": "the campaign does not exist or belongs to another organization: "
    "remove it from campaign_ids",
    "invalid_date_range": "the window's endDate is before its startDate",
    "page_size_exceeded": "the page size is over the endpoint's maximum",
}
_SCOPE_ADVICE = {
    "metrics:read": "the API key lacks the metrics:read scope, which engagement exports need: "
    "grant metrics:read to the key",
    "campaigns:read": "the API key lacks the campaigns:read scope, which listing campaigns needs: "
    "grant campaigns:read, or set campaign_ids and start_date so no listing is needed",
}


@dataclass
class SoundlinkError(Exception):
    """A failure the sync surfaces to Airbyte. `message` is for the user; it never holds the API key."""

    message: str
    failure_type: str = SYSTEM_ERROR
    request_id: str | None = None
    status: int | None = None
    code: str | None = None
    rows_emitted: int = 0  # rows of the failing window already emitted (a window split must not repeat them)

    def __str__(self) -> str:
        return self.message


def describe_api_error(
    status: int, code: str | None, request_id: str | None, what: str, scope: str | None = None
) -> SoundlinkError:
    """Turn a documented Soundlink error answer into an actionable error for `what` (campaign, window)."""
    if status in (401, 403) or (status == 404 and code in ("campaign_not_found", "not_found")):
        failure_type = CONFIG_ERROR
    elif status == 429 or status >= 500:
        failure_type = TRANSIENT_ERROR
    else:
        failure_type = SYSTEM_ERROR
    if code == "insufficient_scope" and scope:
        advice = _SCOPE_ADVICE.get(scope, f"the API key lacks the {scope} scope: grant it")
    else:
        advice = _ADVICE.get(code or "", "")
    label = f"{status} {code}" if code else f"HTTP {status}"
    text = f"Soundlink answered {label} for {what}"
    if advice:
        text += f": {advice}"
    text += f" (requestId {request_id or 'not given'})."
    return SoundlinkError(text, failure_type, request_id, status, code)
