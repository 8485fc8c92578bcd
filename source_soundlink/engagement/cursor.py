"""Cursor state per campaign: what was read, what to read next, and when a campaign is settled.

Why not the CDK's DatetimeBasedCursor (or its per-partition wrapper): its state is the highest
report_date seen, so a campaign with no rows re-reads its whole history on every sync, a campaign that
appears later starts from the global cursor and is never backfilled, and nothing ever stops asking for a
campaign that ended long ago. Here a campaign's state is the span of complete windows read (`from` ..
`through`), so every sync can:

* re-read the trailing `lookback_window_days` before `through`, because Soundlink revises a closed day
  for 7 days (delayed Spotify playback events): the revision window is why the lookback exists;
* backfill from the first day whenever the span does not reach back to what the config asks for (a new
  campaign, start_date moved earlier, engagement_context widened);
* skip a settled campaign: terminal, and read past its last `ended` row + tail + revision window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from source_soundlink import protocol
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.jsonl_decoder import WindowProgress
from source_soundlink.engagement.partitioner import Window
from source_soundlink.errors import CONFIG_ERROR, SoundlinkError

STATE_VERSION = 1
# A campaign is settled once a sync has read past: the day it ended + the 30-day post-end tail
# + the 7-day revision window + 1 day for the last day to close.
SETTLE_AFTER_ENDED_DAYS = 30 + 7 + 1


@dataclass(frozen=True)
class CampaignState:
    """One campaign's state: the single definition of its fields (JSON names in comments)."""

    covered_from: date | None = None  # "from": first day of the span read in complete windows
    through: date | None = None  # "through": last day of the last complete window
    engagement_context: str | None = None  # the context read; absent: both contexts were read
    has_rows: bool = False  # some window of the span held a row
    report_date: str | None = None  # the latest report_date seen
    ended_on: date | None = None  # first day of the trailing run of `ended` rows
    settled: bool = False  # nothing it exports can change any more (see settled())
    updated_at: str | None = None  # the campaign's updatedAt when it settled: a change re-opens it

    @classmethod
    def from_json(cls, raw: Any) -> CampaignState:
        raw = raw if isinstance(raw, dict) else {}
        return cls(
            covered_from=_iso_date(raw.get("from")),
            through=_iso_date(raw.get("through")),
            engagement_context=raw.get("engagement_context"),
            has_rows=bool(raw.get("has_rows")),
            report_date=raw.get("report_date") if isinstance(raw.get("report_date"), str) else None,
            ended_on=_iso_date(raw.get("ended_on")),
            settled=bool(raw.get("settled")),
            updated_at=raw.get("updated_at"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.covered_from:
            out["from"] = self.covered_from.isoformat()
        if self.through:
            out["through"] = self.through.isoformat()
        if self.engagement_context:
            out["engagement_context"] = self.engagement_context
        if self.has_rows:
            out["has_rows"] = True
        if self.report_date:
            out["report_date"] = self.report_date
        if self.ended_on:
            out["ended_on"] = self.ended_on.isoformat()
        if self.settled:
            out["settled"] = True
            out["updated_at"] = self.updated_at
        return out


def first_day_to_read(
    campaign: Campaign, config: SoundlinkConfig, state: CampaignState | None
) -> date | None:
    """First report_date this sync reads for a campaign, or None when it has nothing to read.

    With state that covers the campaign from its first day, re-read `lookback_window_days` before
    `through` (Soundlink revises closed days); otherwise read from the first day (a new campaign,
    start_date moved earlier, or engagement_context widened beyond what was read).
    """
    candidates = [d for d in (config.start_date, campaign.start) if d is not None]
    if not candidates:
        raise SoundlinkError(
            f"campaign {campaign.campaign_id} has no createdAt to start from: set start_date.", CONFIG_ERROR
        )
    first = max(candidates)
    through = covered_through(first, config, state)
    if through is not None and state is not None:
        if state.settled and campaign.terminal and state.updated_at == campaign.updated_at:
            return None
        first = max(first, through - timedelta(days=config.lookback_window_days))
    return first if first <= config.last_date else None


def covered_through(first: date, config: SoundlinkConfig, state: CampaignState | None) -> date | None:
    """`through` if the state covers what this config asks for from `first` on, else None."""
    if state is None or not (state.covered_from and state.through):
        return None
    read_context = state.engagement_context  # None: both contexts were read
    if read_context is not None and read_context != config.engagement_context:
        return None
    # The span must reach `first`: a sync that started after through + 1 would leave a gap never read.
    return state.through if state.covered_from <= first <= state.through + timedelta(days=1) else None


def settled(campaign: Campaign, state: CampaignState) -> bool:
    """True once nothing this campaign exports can change any more (the documented request rule)."""
    if state.through is None or not campaign.terminal:
        return False  # still running, renewing, or unknown (a key without campaigns:read): keep reading
    if state.ended_on is not None:
        return state.through >= state.ended_on + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    # A campaign that never had a row and reached a terminal status: settled once past its planned end.
    if not state.has_rows and campaign.planned_end:
        return state.through >= campaign.planned_end + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    return False


def after_window(
    campaign: Campaign, state: CampaignState, window: Window, progress: WindowProgress, context: str | None
) -> CampaignState:
    """The campaign's state once `window` is complete (every row of it emitted)."""
    covered_from = state.covered_from
    if covered_from is None or window.start < covered_from:
        covered_from = window.start
    has_rows, report_date, ended_on = state.has_rows, state.report_date, state.ended_on
    if progress.last_date is not None:
        has_rows = True
        if progress.last_date >= (report_date or ""):
            report_date = progress.last_date
        if progress.ended_since is None:
            ended_on = None  # its latest rows are not `ended`
        elif progress.saw_not_ended or not ended_on:
            ended_on = _iso_date(progress.ended_since)
    new = CampaignState(covered_from, window.end, context, has_rows, report_date, ended_on)
    if settled(campaign, new):
        return CampaignState(
            covered_from, window.end, context, has_rows, report_date, ended_on, True, campaign.updated_at
        )
    return new


def stream_state(campaigns: dict[str, CampaignState]) -> dict[str, Any]:
    """The stream state Airbyte stores, as JSON."""
    return {"state_version": STATE_VERSION, "campaigns": {cid: cs.to_json() for cid, cs in campaigns.items()}}


def campaign_states(stream_state: dict[str, Any] | None) -> dict[str, CampaignState]:
    """Per-campaign states from a stream state this connector wrote."""
    previous = (stream_state or {}).get("campaigns")
    if not isinstance(previous, dict):
        return {}
    return {cid: CampaignState.from_json(cs) for cid, cs in previous.items() if isinstance(cs, dict)}


def stream_state_from(state: Any) -> dict[str, Any] | None:
    """This stream's state from what Airbyte passes: a list of STATE messages, or a legacy dict.

    When the list holds several messages for the stream (a saved stdout of a sync), the last one is
    the newest checkpoint and wins, as it does in the CDK's ConnectorStateManager.
    """
    if isinstance(state, dict):
        state = state.get(protocol.ENGAGEMENT_STREAM) if "campaigns" not in state else state
        return state if isinstance(state, dict) else None
    found = None
    for message in state or []:
        if not isinstance(message, dict):
            continue
        stream = message.get("stream") or {}
        if (stream.get("stream_descriptor") or {}).get("name") == protocol.ENGAGEMENT_STREAM:
            found = stream.get("stream_state")
    return found


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
