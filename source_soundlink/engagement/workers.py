"""The worker side of a sync: the listing task, one task per campaign, and their end of the output queue.

Workers never write STATE. They queue RECORD bytes, a checkpoint per complete window and a completion
sentinel per task; the consumer (export.py), the only writer of the stream state, turns those into
messages, so STATE always follows the records it covers. A put gives up once the consumer is gone, and
every wait (budget, Retry-After, backoff) ends at once when the sync stops (a refused key, a cancel, a
consumer that stopped), so no worker keeps a finished sync waiting for up to an hour.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

from source_soundlink import protocol
from source_soundlink.client import SoundlinkClient
from source_soundlink.clock import Clock
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign, Listing, resolve_campaigns
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.full_refresh import Partial, Resumption
from source_soundlink.engagement.span_reader import CampaignSpanReader
from source_soundlink.engagement.window import Window, WindowProgress
from source_soundlink.errors import SYSTEM_ERROR, SoundlinkError

DONE = object()  # a task's completion sentinel
FLUSH = object()  # a worker starts a long wait: checkpoint what is complete before it
WAKE = object()  # a cancel was requested: the consumer looks at it now, not at its next timeout
LONG_WAIT_S = 10.0  # a wait at least this long flushes the state first


@dataclass
class Records:
    data: bytes  # newline-terminated RECORD messages
    count: int
    campaign_id: str
    partial: Partial | None = None  # a full refresh's: how far the rows of the window in flight reach


@dataclass
class Checkpoint:
    campaign_id: str
    campaign_state: CampaignState
    rows: int


@dataclass
class Listed:
    campaigns: list[Campaign] | None  # None: the listing failed with `error`
    error: SoundlinkError | None = None


class Cancelled(Exception):
    """The sync stopped: the worker ends its task without a failure."""


class Workers:
    """What the worker threads of one sync share: the output queue, the campaigns' states as the consumer
    recorded them, the failures, the stop signals and the summary's counters. It is the span readers'
    SpanHost (span_reader.py) and the decoder's `emit_records`."""

    def __init__(
        self,
        config: SoundlinkConfig,
        state: dict[str, CampaignState],
        clock: Clock,
        debug: bool,
        full_refresh: Resumption | None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._debug = debug
        self._full_refresh = full_refresh
        self.out: queue.Queue[Any] = queue.Queue(maxsize=16)  # ~16 chunks of output: memory stays flat
        self.stopped = threading.Event()  # no new work: a refused key, a cancel, or the consumer is gone
        self.consumer_gone = threading.Event()  # nobody reads the queue any more
        self.lock = threading.Lock()  # guards `state`, `errors` and `stats`
        self.state = state  # the consumer writes it when it takes a checkpoint
        self.errors: list[SoundlinkError] = []
        self.stats = {"rows": 0, "windows": 0, "export_requests": 0, "campaigns": 0, "settled": 0, "idle": 0}

    # -- the tasks ----------------------------------------------------------------------------------------

    def run_listing(self, client: SoundlinkClient, listing: Listing | None) -> None:
        """List the campaigns on a worker, so the consumer keeps heartbeating through budget waits; with
        `listing`, the listed items are kept there for the campaigns stream."""
        try:
            with contextlib.suppress(Cancelled):
                self.put(_listed(client, self._config, self.log, listing))
        finally:
            self.out.put(DONE)

    def run_campaign(self, spans: CampaignSpanReader, campaign: Campaign) -> None:
        try:
            spans.read(campaign)
        except Cancelled:
            pass
        except SoundlinkError as error:
            self.fail(error)
        except Exception as exc:  # a bug must still fail the sync loudly, with the campaign named
            self.fail(
                SoundlinkError(f"Unexpected error on campaign {campaign.campaign_id}: {exc!r}", SYSTEM_ERROR)
            )
        finally:
            self.out.put(DONE)

    def fail(self, error: SoundlinkError) -> None:
        with self.lock:
            if error.key_refused and any(e.key_refused for e in self.errors):
                return  # requests in flight when the key was refused fail alike: report it once
            self.errors.append(error)
        if error.key_refused:
            self.stopped.set()  # the key itself is refused: every other campaign would fail the same way

    # -- what a span reader and the decoder call back -----------------------------------------------------

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        with self.lock:
            return self.state.get(campaign_id)

    def checkpoint(self, campaign_id: str, state: CampaignState, rows: int) -> None:
        self.put(Checkpoint(campaign_id, state, rows))

    def stop_if_cancelled(self) -> None:
        if self.stopped.is_set():
            raise Cancelled

    def tally(self, counter: str) -> None:
        with self.lock:
            self.stats[counter] += 1

    def records(self, data: bytes, count: int, window: Window, progress: WindowProgress) -> None:
        """The decoder emitted rows; a full refresh also tells the consumer how far they reach."""
        partial = Resumption.partial(window, progress) if self._full_refresh else None
        self.put(Records(data, count, window.campaign_id, partial))

    # -- the queue's worker end ---------------------------------------------------------------------------

    def put(self, item: Any) -> None:
        while True:
            if self.consumer_gone.is_set():
                raise Cancelled
            try:
                self.out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def wait(self, seconds: float) -> None:
        """Sleep (budget, Retry-After, backoff) unless the sync stops. Before a long wait, the consumer
        checkpoints what is complete (this worker's windows before it included): a sync killed during the
        wait then resumes after them. The consumer heartbeats while workers wait."""
        if seconds >= LONG_WAIT_S:
            self.put(FLUSH)
        if self._clock.wait(seconds, self.stopped):
            raise Cancelled

    def log(self, level: str, message: str) -> None:
        """Queue a LOG line (from any worker); DEBUG only with --debug."""
        if level == "DEBUG" and not self._debug:
            return
        with contextlib.suppress(Cancelled):
            self.put(self.log_line(level, message))

    def log_line(self, level: str, message: str) -> bytes:
        return protocol.log(level, message.replace(self._config.api_key, "****"))


def _listed(
    client: SoundlinkClient, config: SoundlinkConfig, log: protocol.Logger, listing: Listing | None
) -> Listed:
    """The campaigns to read, or the error that stopped the listing (a cancelled sync raises)."""
    try:
        return Listed(resolve_campaigns(client, config, log, listing))
    except Cancelled:
        raise
    except SoundlinkError as error:
        return Listed(None, error)
    except Exception as exc:
        error = SoundlinkError(f"Unexpected error while listing campaigns: {exc!r}", SYSTEM_ERROR)
        return Listed(None, error)
