"""Connector configuration: parsed once, validated before any request, with messages that name the field.

Plain Python (no CDK import) because the `read` fast path validates config without loading airbyte-cdk.
The JSON schema users see lives in manifest.yaml's `spec`; this module enforces the same rules and says
exactly which field is wrong and why.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.getsoundlink.com"
MAX_WINDOW_DAYS = 90  # the export answers at most 90 inclusive days
REVISION_WINDOW_DAYS = 7  # Soundlink revises a closed day for 7 days (delayed playback events)
POST_END_TAIL_DAYS = 30  # an ended campaign keeps exporting rows (status `ended`) for 30 days
ENGAGEMENT_CONTEXTS = ("catalog", "playlist")
AUTH_HEADERS = ("x-api-key", "bearer")
DEFAULT_AUTH_HEADER = AUTH_HEADERS[0]


class Bounds(NamedTuple):
    default: int
    minimum: int
    maximum: int


# The spec's integer properties; manifest.yaml's spec carries the same numbers (a unit test holds them).
INT_FIELDS = {
    "lookback_window_days": Bounds(REVISION_WINDOW_DAYS, REVISION_WINDOW_DAYS, 90),
    "window_size_days": Bounds(MAX_WINDOW_DAYS, 1, MAX_WINDOW_DAYS),
    "num_workers": Bounds(3, 1, 10),
    "requests_per_minute": Bounds(60, 1, 100_000),  # Soundlink's documented limit: 60 per key
    "requests_per_hour": Bounds(600, 1, 1_000_000),  # and 600 per key
}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEY_RE = re.compile(r"^sk_[\x21-\x7e]+$")  # printable ASCII: what an HTTP header can carry verbatim


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and says how to fix it."""


def today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class SoundlinkConfig:
    api_key: str
    base_url: str = DEFAULT_BASE_URL
    campaign_ids: tuple[str, ...] = ()
    start_date: date | None = None
    end_date: date | None = None
    engagement_context: str | None = None
    lookback_window_days: int = INT_FIELDS["lookback_window_days"].default
    window_size_days: int = INT_FIELDS["window_size_days"].default
    auth_header: str = DEFAULT_AUTH_HEADER
    num_workers: int = INT_FIELDS["num_workers"].default
    requests_per_minute: int = INT_FIELDS["requests_per_minute"].default
    requests_per_hour: int = INT_FIELDS["requests_per_hour"].default
    today: date = field(default_factory=today_utc)

    @property
    def last_date(self) -> date:
        """The last report_date a sync may request: end_date, but never after today (UTC)."""
        return min(self.end_date, self.today) if self.end_date else self.today

    @classmethod
    def from_mapping(cls, raw: Any, today: date | None = None) -> SoundlinkConfig:
        if not isinstance(raw, dict):
            raise ConfigError("The configuration must be a JSON object.")
        api_key = raw.get("api_key")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigError("api_key is required: paste your Soundlink API key (it starts with sk_).")
        if not api_key.startswith("sk_"):
            raise ConfigError("api_key must be a Soundlink secret key starting with 'sk_'.")
        if not _KEY_RE.fullmatch(api_key):
            raise ConfigError(
                "api_key must not contain spaces, line breaks or other non-printable characters."
            )
        start_date = _optional_date(raw, "start_date")
        end_date = _optional_date(raw, "end_date")
        if start_date and end_date and end_date < start_date:
            raise ConfigError(
                f"end_date {end_date.isoformat()} is before start_date {start_date.isoformat()}: "
                "set end_date on or after start_date, or leave it empty to sync up to today."
            )
        context = raw.get("engagement_context") or None
        if context is not None and context not in ENGAGEMENT_CONTEXTS:
            raise ConfigError(
                f"engagement_context must be one of {', '.join(ENGAGEMENT_CONTEXTS)} "
                f"(or empty for both), not {context!r}."
            )
        auth_header = raw.get("auth_header") or DEFAULT_AUTH_HEADER
        if auth_header not in AUTH_HEADERS:
            raise ConfigError(f"auth_header must be 'x-api-key' or 'bearer', not {auth_header!r}.")
        return cls(
            api_key=api_key,
            base_url=_base_url(raw.get("base_url") or DEFAULT_BASE_URL),
            campaign_ids=_campaign_ids(raw.get("campaign_ids")),
            start_date=start_date,
            end_date=end_date,
            engagement_context=context,
            lookback_window_days=_int(raw, "lookback_window_days"),
            window_size_days=_int(raw, "window_size_days"),
            auth_header=auth_header,
            num_workers=_int(raw, "num_workers"),
            requests_per_minute=_int(raw, "requests_per_minute"),
            requests_per_hour=_int(raw, "requests_per_hour"),
            today=today or today_utc(),
        )


def _optional_date(raw: dict[str, Any], name: str) -> date | None:
    value = raw.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ConfigError(f"{name} must be a date in YYYY-MM-DD format, not {value!r}.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a real calendar date.") from None


def _int(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    default, minimum, maximum = INT_FIELDS[name]
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number between {minimum} and {maximum}, not {value!r}.")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, not {value}.")
    return value


def _campaign_ids(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError("campaign_ids must be a list of campaign id strings (or empty for all campaigns).")
    return tuple(dict.fromkeys(item.strip() for item in value))


def _base_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"base_url must be a URL such as {DEFAULT_BASE_URL}.")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"base_url must be an https:// URL, not {value!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "base_url must use https:// (plain http is allowed only for loopback hosts such as "
            "127.0.0.1 or localhost, e.g. the local sandbox): the API key would travel in clear text."
        )
    return value.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
