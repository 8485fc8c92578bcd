"""Which campaigns a sync reads: the campaign object, listing every page, and lookups of configured ids.

The engagement export needs the list itself (ids, start dates, status, updatedAt) before its first window,
with its own errors: a key without campaigns:read can still export configured campaign_ids, and a
configured id the listing lacks is looked up so that its 404 names it. The same pass keeps the listed items
for the `campaigns` stream (Listing, campaigns_stream.py), so a sync lists the campaigns once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from source_soundlink.client import SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from source_soundlink.errors import SYSTEM_ERROR, SoundlinkError
from source_soundlink.protocol import Logger
from source_soundlink.retry_policy import CHECK_POLICY

NDJSON = "application/x-ndjson"
TERMINAL_STATUSES = frozenset({"failed", "completed", "ended", "stopped"})
PAGE_SIZE = 100  # the listing's maximum


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    start: date | None  # UTC date of createdAt; None when the key cannot read campaigns
    status: str | None = None
    planned_end: date | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, obj: dict[str, Any]) -> Campaign:
        start = utc_date(obj.get("createdAt"))
        duration = obj.get("campaignDuration")
        known = start and isinstance(duration, int) and 0 <= duration <= 36_500
        planned_end = start + timedelta(days=duration) if known else None
        status, updated_at = obj.get("status"), obj.get("updatedAt")
        return cls(
            obj["campaignId"],
            start,
            status if isinstance(status, str) else None,
            planned_end,
            updated_at if isinstance(updated_at, str) else None,
        )

    @property
    def terminal(self) -> bool:
        """Finished for good unless renewed; None (a key without campaigns:read) is not terminal."""
        return self.status in TERMINAL_STATUSES


@dataclass
class Listing:
    """The listing's items as the `campaigns` stream emits them (the manifest's record filter applied), so
    a sync that selects both streams lists the campaigns once. `error` says why there are none."""

    items: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False  # every page was read
    error: SoundlinkError | None = None


def resolve_campaigns(
    client: SoundlinkClient, config: SoundlinkConfig, log: Logger, listing: Listing | None = None
) -> list[Campaign]:
    """The campaigns to sync: all the key can list, or the configured campaign_ids (each one checked).
    With `listing`, the listed items are kept there for the campaigns stream."""
    wanted = config.campaign_ids
    try:
        listed = _list_campaigns(client, listing)
    except SoundlinkError as error:
        if listing is not None:
            listing.error = error
        if error.code == "insufficient_scope" and wanted and config.start_date:
            log(
                "WARN",
                "The key cannot list campaigns (no campaigns:read); syncing the configured campaign_ids "
                f"from start_date {config.start_date.isoformat()}.",
            )
            return [Campaign(cid, None) for cid in wanted]
        raise
    if not wanted:
        return list({c.campaign_id: c for c in listed}.values())  # a page drift could repeat one
    by_id = {c.campaign_id: c for c in listed}
    # An id the listing lacks gets its own lookup, whose 404 campaign_not_found names it.
    return [by_id.get(cid) or _campaign(client, cid) for cid in wanted]


def _list_campaigns(client: SoundlinkClient, listing: Listing | None = None) -> list[Campaign]:
    campaigns: list[Campaign] = []
    wanted = set(client.config.campaign_ids or ())
    page = 1
    while True:
        params = {"page": page, "pageSize": PAGE_SIZE, "sortBy": "createdAt", "sortOrder": "asc"}
        what = f"the campaign list (page {page})"
        body = get_json(client, "/v1/campaigns", params, what, "campaigns:read")
        data = body.get("data")
        items = data.get("items") if isinstance(data, dict) else None
        total_pages = (data.get("pagination") or {}).get("totalPages") if isinstance(data, dict) else None
        if not isinstance(items, list) or not isinstance(total_pages, int):
            raise _not_documented(what, body, "no data.items list or data.pagination.totalPages number")
        campaigns.extend(_campaign_from(item, what, body) for item in items)
        if listing is not None:
            listing.items.extend(i for i in items if not wanted or i["campaignId"] in wanted)
        if page >= total_pages:
            if listing is not None:
                listing.complete = True
            return campaigns
        page += 1


def _campaign(client: SoundlinkClient, campaign_id: str) -> Campaign:
    path = f"/v1/campaigns/{quote(campaign_id, safe='')}"
    what = f"campaign {campaign_id}"
    body = get_json(client, path, None, what, "campaigns:read")
    return _campaign_from(body.get("data"), what, body)


def _campaign_from(item: Any, what: str, body: dict[str, Any]) -> Campaign:
    """A campaign object of an answer, or an error naming the answer and its requestId."""
    campaign_id = item.get("campaignId") if isinstance(item, dict) else None
    if not isinstance(campaign_id, str) or not campaign_id:
        raise _not_documented(what, body, f"an item without a campaignId string: {str(item)[:200]}")
    return Campaign.from_api(item)


def _not_documented(what: str, body: dict[str, Any], detail: str) -> SoundlinkError:
    meta = body.get("meta")
    request_id = meta.get("requestId") if isinstance(meta, dict) else None
    return SoundlinkError(
        f"Soundlink answered {what} with a body that is not the documented campaign list ({detail}; "
        f"requestId {request_id or 'not given'}). Retry; if it persists, report it to Soundlink with the "
        "requestId.",
        SYSTEM_ERROR,
        request_id if isinstance(request_id, str) else None,
    )


def get_json(
    client: SoundlinkClient, path: str, params: dict[str, Any] | None, what: str, scope: str
) -> dict[str, Any]:
    response = client.get(path, params, what, scope)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SoundlinkError(
            f"Soundlink answered {what} with a body that is not the documented JSON.", SYSTEM_ERROR
        )
    return body


def export_path(campaign_id: str) -> str:
    return f"/v1/campaigns/{quote(campaign_id, safe='')}/metrics/engagement/export"


def check_connection(config: SoundlinkConfig, log: Logger) -> None:
    """Cheap calls that prove the key, its scopes and the configured campaigns; raises SoundlinkError.

    /v1/ping proves the key; resolving campaigns proves campaigns:read (or that campaign_ids and
    start_date make it unnecessary) and that every configured campaign exists; a one-day export of the
    first campaign, closed before its body is read, proves metrics:read.
    """
    client = SoundlinkClient(config, log, CHECK_POLICY)
    get_json(client, "/v1/ping", None, "the connection check (/v1/ping)", "")
    campaigns = resolve_campaigns(client, config, log)
    if campaigns:
        today = config.today.isoformat()
        params = {"startDate": today, "endDate": today}
        what = f"campaign {campaigns[0].campaign_id}, window {today}..{today} (connection check)"
        client.get(
            export_path(campaigns[0].campaign_id), params, what, "metrics:read", NDJSON, stream=True
        ).close()


def utc_date(value: Any) -> date | None:
    """The UTC calendar date of an ISO-8601 timestamp (or date); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
