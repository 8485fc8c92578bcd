"""Cursor state per campaign: what was read, what to read next, and when a campaign is settled.

Why not the CDK's DatetimeBasedCursor (or its per-partition wrapper): its state is the highest
report_date seen, so a campaign with no rows re-reads its whole history on every sync, a campaign that
appears later starts from the global cursor and is never backfilled, and nothing ever stops asking for a
campaign that ended long ago. Here a campaign's state is the span of complete windows read (`from` ..
`through`), so every sync can:

* re-read the trailing `lookback_window_days` before `through`, because Soundlink revises a closed day
  for REVISION_WINDOW_DAYS (delayed Spotify playback events): the revision window is why the lookback
  exists;
* backfill from the first day whenever the span does not reach back to what the config asks for (a new
  campaign, start_date moved earlier, engagement_context widened);
* skip a settled campaign: terminal, read past its last `ended` row + tail + revision window, and past
  everything its `updatedAt` could have changed (or up to today).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from source_soundlink import protocol
from source_soundlink.config import POST_END_TAIL_DAYS, REVISION_WINDOW_DAYS, ConfigError, SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign, utc_date
from source_soundlink.engagement.window import Window, WindowProgress
from source_soundlink.errors import CONFIG_ERROR, SoundlinkError

STATE_VERSION = 2  # 2: a settled campaign is the compact list [from, through, updatedAt(, context)]
READABLE_VERSIONS = (1, 2)  # 1: written by 0.1.0, every campaign a dict
# What a campaign exports can change until: the day it ended + the post-end tail + the revision window
# + 1 day for the last day to close. Its updatedAt marks the last change of the campaign.
SETTLE_AFTER_ENDED_DAYS = POST_END_TAIL_DAYS + REVISION_WINDOW_DAYS + 1


class UnreadableState(ConfigError):
    """The state Airbyte passed is not one this connector wrote; the message says what is wrong."""


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
    # False for a settled flag 0.1.0 wrote: its rule let an `ended` run settle a campaign renewed later,
    # so plan() checks such a flag against settled() before trusting it.
    settle_checked: bool = True

    @classmethod
    def from_json(cls, raw: Any, version: int = STATE_VERSION) -> CampaignState:
        """Read one campaign's state; raise UnreadableState naming what is wrong."""
        if isinstance(raw, list) and version >= 2:
            return cls._from_settled_list(raw)
        if not isinstance(raw, dict):
            raise UnreadableState(f"it is a {type(raw).__name__}, not an object")
        context = raw.get("engagement_context")
        if context is not None and not isinstance(context, str):
            raise UnreadableState(f"engagement_context {context!r} is not a string")
        report_date = raw.get("report_date")
        if report_date is not None:
            _date_field(raw, "report_date")
        updated_at = raw.get("updated_at")
        return cls(
            covered_from=_date_field(raw, "from"),
            through=_date_field(raw, "through"),
            engagement_context=context,
            has_rows=bool(raw.get("has_rows")),
            report_date=report_date,
            ended_on=_date_field(raw, "ended_on"),
            settled=bool(raw.get("settled")),
            updated_at=updated_at if isinstance(updated_at, str) else None,
            settle_checked=version >= 2,
        )

    @classmethod
    def _from_settled_list(cls, raw: list[Any]) -> CampaignState:
        if not 3 <= len(raw) <= 4 or not all(isinstance(v, str) or v is None for v in raw):
            raise UnreadableState(f"a settled campaign is [from, through, updatedAt(, context)], not {raw!r}")
        fields = dict(zip(("from", "through", "updated_at", "engagement_context"), raw, strict=False))
        through = _date_field(fields, "through")
        # The list keeps no row details. Should the campaign re-open (its updatedAt changed), it counts as
        # having had rows that ended on `through`: it settles again 38 days after that day unless new rows
        # come (a renewal), and a first row on the lookback's first day is not taken for a late delivery.
        return cls(
            covered_from=_date_field(fields, "from"),
            through=through,
            engagement_context=fields.get("engagement_context"),
            has_rows=True,
            ended_on=through,
            settled=True,
            updated_at=fields["updated_at"],
        )

    def to_json(self) -> dict[str, Any] | list[Any]:
        if self.settled and self.covered_from and self.through:
            # Compact: a settled campaign only needs its span (a start_date or context change re-opens
            # it) and the updatedAt it settled with (a renewal re-opens it).
            compact = [self.covered_from.isoformat(), self.through.isoformat(), self.updated_at]
            return [*compact, self.engagement_context] if self.engagement_context else compact
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
        return out


@dataclass(frozen=True)
class Plan:
    """What one sync reads of a campaign: from `first` through the config's last date, on top of `base`."""

    first: date
    base: CampaignState  # the state the windows extend (empty when the old span no longer applies)
    incremental: bool  # the old span is kept: `first` is its trailing lookback, not the campaign's start


def plan(campaign: Campaign, config: SoundlinkConfig, state: CampaignState | None) -> Plan | None:
    """What to read of a campaign this sync, or None when there is nothing to read.

    With state that covers the campaign from its first day, re-read `lookback_window_days` before
    `through` (Soundlink revises closed days); otherwise read from the first day (a new campaign,
    start_date moved earlier, or engagement_context widened beyond what was read).
    """
    first = first_day(campaign, config)
    through = covered_through(first, config, state)
    if through is None or state is None:
        return Plan(first, CampaignState(), False) if first <= config.last_date else None
    if (
        state.settled
        and campaign.terminal
        and state.updated_at == campaign.updated_at
        and (state.settle_checked or settled(campaign, state, config.today))
    ):
        return None
    lookback_start = through - timedelta(days=config.lookback_window_days)
    base = state
    if config.start_date and state.covered_from and state.covered_from < config.start_date > lookback_start:
        # start_date cuts into days that can still change: they are not re-read now, so the span must
        # not claim them (clearing start_date later then re-reads them).
        base = replace(state, covered_from=config.start_date)
    start = max(first, lookback_start)
    return Plan(start, base, True) if start <= config.last_date else None


def first_day(campaign: Campaign, config: SoundlinkConfig) -> date:
    """The first report_date the config asks for: the campaign's start, or start_date if later."""
    candidates = [d for d in (config.start_date, campaign.start) if d is not None]
    if not candidates:
        raise SoundlinkError(
            f"campaign {campaign.campaign_id} has no createdAt to start from: set start_date.", CONFIG_ERROR
        )
    return max(candidates)


def first_day_to_read(
    campaign: Campaign, config: SoundlinkConfig, state: CampaignState | None
) -> date | None:
    """First report_date this sync reads for a campaign, or None when it has nothing to read."""
    planned = plan(campaign, config, state)
    return planned.first if planned else None


def covered_through(first: date, config: SoundlinkConfig, state: CampaignState | None) -> date | None:
    """`through` if the state covers what this config asks for from `first` on, else None.

    A `through` after today (a host clock ahead of Soundlink's, or an edited state) counts as today, so
    the campaign is read again instead of looking up to date forever.
    """
    if state is None or not (state.covered_from and state.through):
        return None
    read_context = state.engagement_context  # None: both contexts were read
    if read_context is not None and read_context != config.engagement_context:
        return None
    through = min(state.through, config.today)
    # The span must reach `first`: a sync that started after through + 1 would leave a gap never read.
    return through if state.covered_from <= first <= through + timedelta(days=1) else None


def settled(campaign: Campaign, state: CampaignState, today: date) -> bool:
    """True once nothing this campaign exports can change any more (the documented request rule).

    Terminal status, its `ended` rows (or, without rows, its planned end) past the tail and revision
    window, and the read past everything its updatedAt could have changed (or up to today): an `ended`
    run alone proves nothing, a campaign renewed later has rows again after it.
    """
    if state.through is None or not campaign.terminal:
        return False  # still running, renewing, or unknown (a key without campaigns:read): keep reading
    changed = utc_date(campaign.updated_at)
    reached = state.through >= today or (
        changed is not None and state.through >= changed + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    )
    if not reached:
        return False
    if state.ended_on is not None:
        return state.through >= state.ended_on + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    # A campaign that never had a row and reached a terminal status: settled once past its planned end.
    if not state.has_rows and campaign.planned_end:
        return state.through >= campaign.planned_end + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    return False


def after_window(
    campaign: Campaign,
    state: CampaignState,
    window: Window,
    progress: WindowProgress,
    config: SoundlinkConfig,
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
            ended_on = date.fromisoformat(progress.ended_since)
    new = CampaignState(covered_from, window.end, config.engagement_context, has_rows, report_date, ended_on)
    if settled(campaign, new, config.today):
        return replace(new, settled=True, updated_at=campaign.updated_at)
    return new


def late_delivery(state: CampaignState, planned: Plan, window: Window, progress: WindowProgress) -> bool:
    """A campaign that never had a row now has rows from the first day of its first window: it may have
    started delivering late (after days as `creating`) with rows back to its start, before the lookback.
    Read once from its start; afterwards it has rows, so this never repeats."""
    return (
        planned.incremental
        and not state.has_rows
        and window.start == planned.first
        and state.covered_from is not None
        and window.start > state.covered_from
        and progress.first_date == window.start.isoformat()
    )


def stream_state(campaigns: dict[str, CampaignState]) -> dict[str, Any]:
    """The stream state Airbyte stores, as JSON."""
    return {"state_version": STATE_VERSION, "campaigns": {cid: cs.to_json() for cid, cs in campaigns.items()}}


def campaign_states(stream_state: dict[str, Any] | None) -> dict[str, CampaignState]:
    """Per-campaign states from a stream state; raise UnreadableState if it is not one we wrote."""
    if not stream_state:
        return {}  # no state, or Airbyte's empty state after a reset
    if not isinstance(stream_state, dict):
        raise UnreadableState(f"the stream state is a {type(stream_state).__name__}, not an object")
    version = stream_state.get("state_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise UnreadableState(
            f"state_version is {version!r}; this connector reads {', '.join(map(str, READABLE_VERSIONS))}"
        )
    campaigns = stream_state.get("campaigns")
    if not isinstance(campaigns, dict):
        raise UnreadableState(
            f"campaigns is a {type(campaigns).__name__}, not an object keyed by campaign id"
        )
    states = {}
    for campaign_id, raw in campaigns.items():
        try:
            states[campaign_id] = CampaignState.from_json(raw, version)
        except UnreadableState as error:
            raise UnreadableState(f"campaign {campaign_id}: {error}") from None
    return states


def stream_state_from(state: Any) -> dict[str, Any] | None:
    """This stream's state from what Airbyte passes, or what a user saved of an earlier sync.

    Accepted: Airbyte's list of per-stream states; a list of STATE messages as the connector prints them
    (`{"type": "STATE", "state": {...}}`), or one of them; a legacy dict keyed by stream name; the stream
    state itself. When several entries are for this stream (a saved sync output), the last one is the
    newest checkpoint and wins, as in the CDK's ConnectorStateManager. Anything else raises
    UnreadableState: guessing could skip data, and ignoring it would re-read all history unexplained.
    """
    if state is None:
        return None
    if isinstance(state, dict):
        if state.get("type") == "STATE" or "stream" in state:
            state = [state]
        elif "state_version" in state:
            return state  # the stream state itself
        elif set(state) <= set(protocol.STREAMS):
            return state.get(protocol.ENGAGEMENT_STREAM)  # legacy {stream name: stream state}, or {}
        else:
            raise UnreadableState(
                f"it is an object with keys {sorted(state)[:5]}, not a state of this source"
            )
    if not isinstance(state, list):
        raise UnreadableState(f"it is a {type(state).__name__}, not a list of STATE messages")
    found = None
    for position, message in enumerate(state, 1):
        if isinstance(message, dict) and message.get("type") == "STATE":
            message = message.get("state")  # a whole message as printed
        stream = message.get("stream") if isinstance(message, dict) else None
        if not isinstance(stream, dict):
            raise UnreadableState(f"entry {position} of the list is not a per-stream (STREAM) state")
        if (stream.get("stream_descriptor") or {}).get("name") == protocol.ENGAGEMENT_STREAM:
            found = stream.get("stream_state")
    return found


def read_state(state: Any) -> dict[str, Any] | None:
    """The stream state to resume from, checked before any request; raise UnreadableState that says what
    is wrong and how to start over."""
    try:
        stream_state = stream_state_from(state)
        campaign_states(stream_state)
    except UnreadableState as error:
        raise UnreadableState(
            f"The state passed for {protocol.ENGAGEMENT_STREAM} cannot be read: {error}. It is not a state "
            "this connector wrote, and guessing could skip data. To start over, refresh the stream in "
            "Airbyte (Refresh, or clear its data), or run `read` without --state."
        ) from None
    return stream_state


def _date_field(raw: dict[str, Any], name: str) -> date | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise UnreadableState(f"{name} {value!r} is not a YYYY-MM-DD date")
