"""One campaign's read in a sync: plan its span, read its windows in order, checkpoint each complete one.

Why not the CDK's partition reader (PartitionReader over a StreamSlicer's slices): its slices come from
the cursor's own state and are read independently, while a campaign's windows here depend on each other:
the span is planned from our cursor (cursor.py), a window the server finds too wide is read again
narrower (partitioner.py), a campaign that turns out to have delivered late is re-read from its start
before anything is checkpointed, and a settled campaign stops reading. A resumed full refresh plans from
its interrupted attempt's state and skips the rows that attempt emitted (full_refresh.py).
"""

from __future__ import annotations

from typing import Protocol

import source_soundlink.engagement.cursor as cursor
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.full_refresh import Resumption
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.window_reader import WindowReader
from source_soundlink.errors import SoundlinkError


class SpanHost(Protocol):
    """What a span reader needs from the sync that runs it (workers.py provides it)."""

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        """The campaign's state as the sync last recorded it."""

    def checkpoint(self, campaign_id: str, state: CampaignState, rows: int) -> None:
        """A window is complete: every row of it was handed over before this call."""

    def stop_if_cancelled(self) -> None:
        """Raise if the sync was cancelled (the reader calls it before each window)."""

    def tally(self, counter: str) -> None:
        """Count a campaign in the sync's summary ("settled", "idle")."""

    def log(self, level: str, message: str) -> None: ...


class CampaignSpanReader:
    """Reads the campaigns of one sync. `config.today` is the sync's today, decided once by the caller;
    `resumption` is given when the sync is a full refresh."""

    def __init__(
        self,
        config: SoundlinkConfig,
        partitioner: DateSlicingPartitioner,
        reader: WindowReader,
        host: SpanHost,
        resumption: Resumption | None = None,
    ) -> None:
        self._config = config
        self._partitioner = partitioner
        self._reader = reader
        self._host = host
        self._resumption = resumption

    def read(self, campaign: Campaign) -> None:
        """Read what the campaign's state leaves to read; raise SoundlinkError naming it if that fails."""
        config, host = self._config, self._host
        state = host.campaign_state(campaign.campaign_id)
        planned = (self._resumption.plan if self._resumption else cursor.plan)(campaign, config, state)
        if planned is None:
            host.tally("settled" if state and state.settled else "idle")
            return
        if state and state.through and state.through > config.today and config.today_settles:
            host.log(
                "WARN",
                f"campaign {campaign.campaign_id}: the state's through {state.through.isoformat()} is after "
                f"today ({config.today.isoformat()}, Soundlink's date); reading it again from "
                f"{planned.first.isoformat()}.",
            )
        if not self._read_span(campaign, planned):
            first = cursor.first_day(campaign, config)
            host.log(
                "INFO",
                f"campaign {campaign.campaign_id} never had a row and now has rows from the first day read "
                f"({planned.first.isoformat()}): it may have started delivering late, so it is read once "
                f"from its start ({first.isoformat()}).",
            )
            self._read_span(campaign, cursor.Plan(first, CampaignState(), incremental=False))

    def _read_span(self, campaign: Campaign, planned: cursor.Plan) -> bool:
        """Read and checkpoint the planned windows through the last date; False when the campaign turned
        out to need a read from its start (late delivery), in which case nothing was checkpointed."""
        state = planned.base
        windows = self._partitioner.windows(campaign.campaign_id, planned.first, self._config.last_date)
        for window in windows:
            self._host.stop_if_cancelled()
            resume = self._resumption.resume_point(window) if self._resumption else None
            try:
                progress = self._reader.read_window(window, resume)
            except SoundlinkError as error:
                if windows.split(window, error):
                    self._host.log(
                        "WARN",
                        f"Soundlink rejected {window} as too wide (400 invalid_query_parameter, requestId "
                        f"{error.request_id}); retrying with windows of {windows.width} days.",
                    )
                    continue
                raise
            if cursor.late_delivery(state, planned, window, progress):
                return False
            state = cursor.after_window(campaign, state, window, progress, self._config)
            self._host.checkpoint(campaign.campaign_id, state, progress.rows_emitted)
            if state.settled:
                break  # read past everything its updatedAt could have changed: nothing later can change
        return True
