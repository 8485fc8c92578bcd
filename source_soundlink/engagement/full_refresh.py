"""Resumable full refresh: a retried full-refresh attempt continues where the failed one stopped.

The Airbyte platform passes a retried ATTEMPT of a full-refresh job the state of the failed attempt (never
a later job's: full-refresh state is reset between jobs), and the earlier attempt's rows are already in the
same job's Overwrite table. So a full refresh given a state it wrote continues after each campaign's last
complete window, with no lookback (a lookback would put rows in the table twice), and skips campaigns it
finished. The CDK's ResumableFullRefreshCursor does the same with a page token; its completed state
(`__ab_full_refresh_sync_complete`) makes a retry read nothing, and so does ours: a completed full refresh
leaves every campaign covered up to the last date, so a retry reads only a day that began since.

A full-refresh state is told apart from an incremental one by `"full_refresh": true` next to
`state_version`. An incremental state handed to a full refresh (a mode switched by hand) is not resumed
from: it would skip history the Overwrite table no longer holds. An incremental sync may read a
full-refresh state: its spans are complete windows emitted, as an incremental state's are.

Windows in flight: a STATE counts every record emitted before it, also those of windows not complete yet
(other workers stream theirs meanwhile, a window can fail half-way, a process can be killed). So a
full-refresh STATE also records, per campaign with such a window, where its emitted rows reach (`partial`:
the window's first day, the last report_date emitted and the keys emitted on that date; rows come sorted by
report_date), and the retry skips those rows as the decoder skips them after a cut body. Each row reaches
the Overwrite table once, whatever ended the attempt.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

import source_soundlink.engagement.cursor as cursor
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import CampaignState, Plan
from source_soundlink.engagement.window import Window, WindowProgress

MARKER = "full_refresh"
PARTIAL = "partial"


class Partial(NamedTuple):
    """How far the emitted rows of a campaign's window in flight reach."""

    start: str  # the window's first day
    last_date: str  # the last report_date emitted
    keys: frozenset[tuple[Any, ...]]  # (engagement_context, country_code, engaged_spotify_track_id) of it


class Resumption:
    """One full-refresh sync: where the state handed in resumes inside windows (asked by the span readers,
    for each window), and the windows in flight as far as their rows were emitted (kept by the export's
    consumer, the only writer of STATE, for the next one)."""

    def __init__(self, stream_state: dict[str, Any] | None) -> None:
        self.stream_state, self._in_flight, self.note = resumable(stream_state)
        self._resume = dict(self._in_flight)

    @staticmethod
    def plan(campaign: Campaign, config: SoundlinkConfig, state: CampaignState | None) -> Plan | None:
        return plan(campaign, config, state)

    def resume_point(self, window: Window) -> tuple[str, frozenset[tuple[Any, ...]]] | None:
        """How far the earlier attempt's rows reach into `window`: asked for every window of a campaign,
        because this attempt may cut narrower windows than the earlier one (its partitioner starts at the
        configured width again, and a window rejected as too wide is read again narrower)."""
        resume = self._resume.get(window.campaign_id)
        if resume is None or window.start.isoformat() < resume.start:
            return None  # before the window the earlier attempt had in flight: not emitted by it
        if window.start.isoformat() > resume.last_date:
            self._resume.pop(window.campaign_id, None)  # past every row it emitted
            return None
        return resume.last_date, resume.keys

    @staticmethod
    def partial(window: Window, progress: WindowProgress) -> Partial:
        """How far the rows of `window` emitted so far reach."""
        return Partial(window.start.isoformat(), progress.last_date or "", frozenset(progress.day_keys))

    def emitted(self, campaign_id: str, partial: Partial) -> None:
        self._in_flight[campaign_id] = partial

    def completed(self, campaign_id: str) -> None:
        self._in_flight.pop(campaign_id, None)

    def mark(self, stream_state: dict[str, Any]) -> dict[str, Any]:
        return mark(stream_state, self._in_flight)


def mark(stream_state: dict[str, Any], partials: dict[str, Partial]) -> dict[str, Any]:
    """The stream state a full refresh writes: the marker, and the windows in flight."""
    campaigns = dict(stream_state["campaigns"])
    for campaign_id, partial in partials.items():
        entry = campaigns.get(campaign_id, {})
        if isinstance(entry, dict):  # a settled campaign (a list) reads no window
            keys = sorted((list(key) for key in partial.keys), key=repr)
            campaigns[campaign_id] = {**entry, PARTIAL: [partial.start, partial.last_date, keys]}
    return {**stream_state, "campaigns": campaigns, MARKER: True}


def resumable(
    stream_state: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Partial], str | None]:
    """The state a full refresh resumes from (None: start over), the windows in flight it recorded, and a
    note saying what was done with it."""
    if not stream_state or not stream_state.get("campaigns"):
        return None, {}, None
    if stream_state.get(MARKER) is not True:
        return (
            None,
            {},
            (
                "The state handed in was written by an incremental sync: a full refresh reads every campaign "
                "from its start and ignores it."
            ),
        )
    partials, unreadable = {}, []
    for campaign_id, entry in stream_state["campaigns"].items():
        raw = entry.get(PARTIAL) if isinstance(entry, dict) else None
        if raw is None:
            continue
        try:
            start, last_date, keys = raw
            partials[campaign_id] = Partial(str(start), str(last_date), frozenset(tuple(k) for k in keys))
        except (TypeError, ValueError):
            unreadable.append(campaign_id)
    note = "Resuming the interrupted full refresh after the rows it emitted."
    if unreadable:
        note += (
            f" The window in flight of campaigns {unreadable[:5]} is not readable in the state: its rows "
            "already emitted are sent again."
        )
    return stream_state, partials, note


def plan(campaign: Campaign, config: SoundlinkConfig, state: CampaignState | None) -> Plan | None:
    """What a resumed full refresh still reads of a campaign: the days after its last complete window
    (no lookback), nothing once it settled or reached the last date."""
    first = cursor.first_day(campaign, config)
    through = cursor.covered_through(first, config, state)
    if through is None or state is None:
        return Plan(first, CampaignState(), False) if first <= config.last_date else None
    if state.settled and campaign.terminal and state.updated_at == campaign.updated_at:
        return None  # it settled during the earlier attempt: every row it can have was emitted
    start = through + timedelta(days=1)
    return Plan(start, state, False) if start <= config.last_date else None
