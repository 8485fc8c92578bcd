"""Orchestration of a `campaign_engagement_daily` read: workers, the output queue, STATE, cancel, stats.

Why not the CDK's concurrent read path (ConcurrentReadProcessor, PartitionReader): it builds a Record
object and an AirbyteMessage per row (~40x our CPU per row, docs/performance.md) and
checkpoints per-partition state that cannot express our cursor (cursor.py). The shape is the same: one
worker per campaign in flight reads its windows in order and queues records, then a checkpoint per
complete window, then a completion sentinel; the consumer, the only writer of the stream state, turns
checkpoints into STATE, so STATE always follows the records it covers and carries their exact count.
state_emitter.py decides when a STATE goes out (throttled, heartbeats while the sync waits); the campaign
listing runs on a worker too, so the consumer can heartbeat while it pages or waits.

The pieces: campaigns.py lists the campaigns, cursor.py decides each campaign's first day and its next
state, partitioner.py cuts the days into windows, jsonl_decoder.py reads one window's body.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import requests

from source_soundlink import protocol
from source_soundlink.client import SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import cursor
from source_soundlink.engagement.campaigns import NDJSON, Campaign, export_path, resolve_campaigns
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.partitioner import DateSlicingPartitioner, Window
from source_soundlink.engagement.state_emitter import HEARTBEAT_S, STATE_INTERVAL_S, StateEmitter
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, SoundlinkError

_DONE = object()  # a worker's completion sentinel
_FLUSH = object()  # a worker starts a long wait: checkpoint what is complete before it
LONG_WAIT_S = 10.0  # a wait at least this long flushes the state first


class SyncFailed(Exception):
    """The sync could not complete; `errors` say why. State already emitted stays valid."""

    def __init__(self, errors: list[SoundlinkError]) -> None:
        self.errors = errors
        first = errors[0]
        self.failure_type = (
            CONFIG_ERROR if any(e.failure_type == CONFIG_ERROR for e in errors) else first.failure_type
        )
        if len(errors) == 1:
            message = first.message
        else:
            message = f"{len(errors)} campaigns failed: " + " | ".join(e.message for e in errors)
        super().__init__(message)


@dataclass
class _Records:
    data: bytes  # newline-terminated RECORD messages
    count: int


@dataclass
class _Checkpoint:
    campaign_id: str
    campaign_state: CampaignState
    rows: int


@dataclass
class _Listed:
    campaigns: list[Campaign] | None  # None: the listing failed with `error`
    error: SoundlinkError | None = None


class _Cancelled(Exception):
    pass


class EngagementExport:
    """Reads campaign_engagement_daily; `messages()` yields Airbyte messages as newline-terminated bytes."""

    def __init__(
        self,
        config: SoundlinkConfig,
        stream_state: dict[str, Any] | None,
        debug: bool = False,
        backoff_base_s: float = 1.0,
        clock: Callable[[], float] | None = None,
        state_interval_s: float = STATE_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        """`clock` (default time.monotonic) times the request budget's waits and, with `state_interval_s`
        and `heartbeat_s`, the STATE pacing (state_emitter.py); tests pass fake or shortened ones."""
        self.config = config
        self._debug = debug
        self._clock = clock or time.monotonic
        self._state_pacing = (state_interval_s, heartbeat_s)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=16)  # ~16 chunks of output: memory stays flat
        self._cancelled = threading.Event()  # stop new work: a refused key, or the consumer is gone
        self._consumer_gone = threading.Event()  # nobody reads the queue any more
        self.client = SoundlinkClient(config, self._log, backoff_base_s, sleep=self._wait, clock=self._clock)
        self._state = cursor.campaign_states(stream_state)
        self._lock = threading.Lock()
        self._errors: list[SoundlinkError] = []
        self._partitioner = DateSlicingPartitioner(config.window_size_days)
        self._decoder = JsonlDecoder(
            self._fetch,
            lambda data, count: self._put(_Records(data, count)),
            self._put,
            self._log,
            lambda seconds: self._wait(seconds),
            backoff_base_s,
        )
        self.stats = {"rows": 0, "windows": 0, "export_requests": 0, "campaigns": 0, "settled": 0, "idle": 0}

    # -- the generator the entrypoints consume ---------------------------------------------------------

    def messages(self) -> Iterator[bytes]:
        stream = protocol.ENGAGEMENT_STREAM
        started = time.monotonic()
        yield protocol.stream_status(stream, "STARTED")
        emitter = StateEmitter(*self._state_pacing, clock=self._clock)
        listing_error: SoundlinkError | None = None
        running_sent = False
        pending = 1  # tasks whose _DONE has not arrived: the listing, then one per campaign
        with ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink") as pool:
            pool.submit(self._run_listing)
            try:
                while pending:
                    try:
                        item = self._out.get(timeout=max(0.0, emitter.seconds_until_due()))
                    except queue.Empty:
                        item = None  # nothing arrived: a heartbeat or a deferred checkpoint may be due
                    force = False
                    if item is None:
                        pass
                    elif item is _DONE:
                        pending -= 1
                    elif type(item) is _Records:
                        if not running_sent:
                            running_sent = True
                            yield protocol.stream_status(stream, "RUNNING")
                        emitter.records(item.count)
                        yield item.data
                    elif type(item) is _Checkpoint:
                        with self._lock:
                            self._state[item.campaign_id] = item.campaign_state
                            self.stats["windows"] += 1
                            self.stats["rows"] += item.rows
                        emitter.checkpoint()
                    elif item is _FLUSH:
                        force = emitter.changed
                    elif type(item) is _Listed:
                        if item.campaigns is None:
                            listing_error = item.error
                        else:
                            yield self._started(item.campaigns)
                            for campaign in item.campaigns:
                                pool.submit(self._run_campaign, campaign)
                            pending += len(item.campaigns)
                    else:
                        yield item
                    if force or emitter.due():
                        yield self._state_message(emitter.emitted())
            finally:
                self._consumer_gone.set()  # a consumer that stops early must not leave workers blocked
                self._cancelled.set()
                while pending:
                    if self._out.get() is _DONE:
                        pending -= 1
        if listing_error is not None:  # no campaign was read: the state handed in stands
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed([listing_error])
        yield self._state_message(emitter.emitted())  # the end, or before the failure's trace
        if self._errors:
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed(self._errors)
        seconds = time.monotonic() - started
        s = self.stats
        yield protocol.log(
            "INFO",
            f"Sync summary: {s['rows']} rows from {s['windows']} windows of {s['campaigns']} campaigns "
            f"({s['settled']} settled, {s['idle']} with nothing new) in {seconds:.1f} s; "
            f"{s['export_requests']} export requests, {emitter.emitted_states} STATE messages.",
        )
        yield protocol.stream_status(stream, "COMPLETE")

    def _started(self, campaigns: list[Campaign]) -> bytes:
        self.stats["campaigns"] = len(campaigns)
        return protocol.log(
            "INFO",
            f"Syncing engagement of {len(campaigns)} campaigns with up to "
            f"{self.config.num_workers} in parallel.",
        )

    def _run_listing(self) -> None:
        """List the campaigns on a worker, so the consumer keeps heartbeating through budget waits."""
        try:
            try:
                listed = _Listed(self._campaigns())
            except SoundlinkError as error:
                listed = _Listed(None, error)
            except _Cancelled:
                return
            except Exception as exc:
                error = SoundlinkError(f"Unexpected error while listing campaigns: {exc!r}", SYSTEM_ERROR)
                listed = _Listed(None, error)
            with contextlib.suppress(_Cancelled):
                self._put(listed)
        finally:
            self._out.put(_DONE)

    def _campaigns(self) -> list[Campaign]:
        campaigns = resolve_campaigns(self.client, self.config, self._log)
        server_today = self.client.server_today
        if server_today is not None and server_today < self.config.today:
            # The host's clock is ahead of Soundlink's (seconds around midnight UTC are enough): a
            # `through` past Soundlink's today would start every later lookback one day too late.
            self._log(
                "WARN",
                f"Soundlink's date is {server_today.isoformat()} while this host's is "
                f"{self.config.today.isoformat()}; reading up to Soundlink's today.",
            )
            self.config = replace(self.config, today=server_today)
        return campaigns

    # -- one campaign: its windows, in order, checkpointing each ----------------------------------------

    def _run_campaign(self, campaign: Campaign) -> None:
        try:
            self._sync_campaign(campaign)
        except _Cancelled:
            pass
        except SoundlinkError as error:
            self._fail(error)
        except Exception as exc:  # a bug must still fail the sync loudly, with the campaign named
            self._fail(
                SoundlinkError(f"Unexpected error on campaign {campaign.campaign_id}: {exc!r}", SYSTEM_ERROR)
            )
        finally:
            self._out.put(_DONE)

    def _fail(self, error: SoundlinkError) -> None:
        with self._lock:
            if error.key_refused and any(e.key_refused for e in self._errors):
                return  # requests in flight when the key was refused fail alike: report it once
            self._errors.append(error)
        if error.key_refused:
            self._cancelled.set()  # the key itself is refused: every other campaign would fail the same way

    def _sync_campaign(self, campaign: Campaign) -> None:
        with self._lock:
            state = self._state.get(campaign.campaign_id)
        planned = cursor.plan(campaign, self.config, state)
        if planned is None:
            with self._lock:
                self.stats["settled" if state and state.settled else "idle"] += 1
            return
        if state and state.through and state.through > self.config.today:
            self._log(
                "WARN",
                f"campaign {campaign.campaign_id}: the state's through {state.through.isoformat()} is after "
                f"today ({self.config.today.isoformat()}, Soundlink's date); reading it again from "
                f"{planned.first.isoformat()}.",
            )
        if not self._read_span(campaign, planned):
            first = cursor.first_day(campaign, self.config)
            self._log(
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
        windows = self._partitioner.windows(campaign.campaign_id, planned.first, self.config.last_date)
        for window in windows:
            if self._cancelled.is_set():
                raise _Cancelled
            try:
                progress = self._decoder.read_window(window)
            except SoundlinkError as error:
                if windows.split(window, error):
                    self._log(
                        "WARN",
                        f"Soundlink rejected {window} as too wide (400 invalid_query_parameter, requestId "
                        f"{error.request_id}); retrying with windows of {windows.width} days.",
                    )
                    continue
                raise
            if cursor.late_delivery(state, planned, window, progress):
                return False
            state = cursor.after_window(campaign, state, window, progress, self.config)
            self._put(_Checkpoint(campaign.campaign_id, state, progress.rows_emitted))
            if state.settled:
                break  # read past everything its updatedAt could have changed: nothing later can change
        return True

    def _fetch(self, window: Window) -> requests.Response:
        params = {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()}
        if self.config.engagement_context:
            params["engagementContext"] = self.config.engagement_context
        with self._lock:
            self.stats["export_requests"] += 1
        return self.client.get(
            export_path(window.campaign_id), params, str(window), "metrics:read", NDJSON, stream=True
        )

    def _state_message(self, record_count: int) -> bytes:
        with self._lock:
            stream_state = cursor.stream_state(self._state)
        return protocol.state(protocol.ENGAGEMENT_STREAM, stream_state, record_count)

    # -- output ------------------------------------------------------------------------------------------

    def _put(self, item: Any) -> None:
        while True:
            if self._consumer_gone.is_set():
                raise _Cancelled
            try:
                self._out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _wait(self, seconds: float) -> None:
        """Sleep (budget, Retry-After, backoff) unless the sync is cancelled: a refused key or a consumer
        that stopped must not keep workers waiting for up to an hour. Before a long wait, the consumer
        checkpoints what is complete (this worker's windows before it included): a sync killed during the
        wait then resumes after them. The consumer heartbeats while workers wait."""
        if seconds >= LONG_WAIT_S:
            self._put(_FLUSH)
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise _Cancelled

    def _log(self, level: str, message: str) -> None:
        if level == "DEBUG" and not self._debug:
            return
        line = protocol.log(level, message.replace(self.config.api_key, "****"))
        with contextlib.suppress(_Cancelled):
            self._put(line)
