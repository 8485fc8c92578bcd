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

What stays inexact: rows of a window still in flight at the last STATE before a hard kill (SIGKILL, a lost
pod) are sent again by the retry, since a STATE counts every record emitted before it while a window's
rows are only checkpointed when the window completes. A cancel (SIGTERM) lets the windows in flight finish
first, and a failed sync finishes every window of the other campaigns before its last STATE.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import cursor
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import CampaignState, Plan

MARKER = "full_refresh"


def mark(stream_state: dict[str, Any]) -> dict[str, Any]:
    """The stream state a full refresh writes."""
    return {**stream_state, MARKER: True}


def resumable(stream_state: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """The state a full refresh resumes from (None: start over), and a note saying what was done with it."""
    if not stream_state or not stream_state.get("campaigns"):
        return None, None
    if stream_state.get(MARKER) is True:
        return stream_state, "Resuming the interrupted full refresh after the windows it completed."
    return None, (
        "The state handed in was written by an incremental sync: a full refresh reads every campaign from "
        "its start and ignores it."
    )


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
