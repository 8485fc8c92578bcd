"""Orchestration of a `campaign_engagement_daily` read: workers, the output queue, STATE, cancel, stats.

Why not the CDK's concurrent read path (ConcurrentReadProcessor, PartitionReader): it builds a Record
object and an AirbyteMessage per row (~40x our CPU per row, see ../shared/performance-notes.md) and
checkpoints per-partition state that cannot express our cursor (cursor.py). The shape is the same: one
worker per campaign in flight reads its windows in order and queues records, then a checkpoint per
complete window, then a completion sentinel; the consumer, the only writer of the stream state, turns
checkpoints into STATE, so STATE always follows the records it covers and carries their exact count.
state_emitter.py decides when a STATE goes out (throttled, heartbeats while the sync waits); the campaign
listing runs on a worker too, so the consumer can heartbeat while it pages or waits.

The `campaigns` stream is emitted from that same listing when the catalog selects it (campaigns_stream.py
builds its messages): one pass over /v1/campaigns per sync, through the one request budget, with the
heartbeat running, and no CDK import. A cancel (cancel.py) stops new requests, lets the windows in flight
finish for a few seconds, and ends with one STATE covering every complete window. A full refresh resumes
from the state of its interrupted attempt (full_refresh.py).

The pieces: campaigns.py lists the campaigns, cursor.py decides each campaign's first day and its next
state, partitioner.py cuts the days into windows, jsonl_decoder.py reads one window's body.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from time import perf_counter as wall_clock  # the cancel's grace period: real seconds, whatever the clock
from typing import Any

import requests

from source_soundlink import protocol
from source_soundlink.cancel import CancelToken
from source_soundlink.client import SoundlinkClient
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import campaigns_stream, cursor, full_refresh
from source_soundlink.engagement.campaigns import NDJSON, Campaign, Listing, export_path, resolve_campaigns
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder, WindowProgress
from source_soundlink.engagement.partitioner import DateSlicingPartitioner, Window
from source_soundlink.engagement.state_emitter import HEARTBEAT_S, STATE_INTERVAL_S, StateEmitter
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, SoundlinkError

_DONE = object()  # a worker's completion sentinel
_FLUSH = object()  # a worker starts a long wait: checkpoint what is complete before it
_WAKE = object()  # a cancel was requested: the consumer looks at it now, not at its next timeout
LONG_WAIT_S = 10.0  # a wait at least this long flushes the state first
CANCEL_GRACE_S = 5.0  # after a cancel, windows in flight may finish for this long (wall clock)


class SyncFailed(Exception):
    """The sync could not complete; `errors` say why. State already emitted stays valid."""

    def __init__(self, errors: list[SoundlinkError], stream: str = protocol.ENGAGEMENT_STREAM) -> None:
        self.errors = errors
        self.stream = stream
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
    campaign_id: str | None = None  # a full refresh's: the window in flight and how far its rows reach
    partial: full_refresh.Partial | None = None


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
        streams: Collection[str] = (protocol.ENGAGEMENT_STREAM,),
        full_refresh_mode: bool = False,
        cancel: CancelToken | None = None,
    ) -> None:
        """`clock` (default time.monotonic) times the request budget's waits and, with `state_interval_s`
        and `heartbeat_s`, the STATE pacing (state_emitter.py); tests pass fake or shortened ones.
        `streams`: the selected streams of this source (engagement, campaigns or both); `full_refresh_mode`:
        the engagement stream is read in full refresh, resuming from `stream_state` only if a full refresh
        wrote it; `cancel`: set by a SIGTERM/SIGINT handler (read_command.py) to end the sync gracefully."""
        self.config = config
        self._engagement = protocol.ENGAGEMENT_STREAM in streams
        self._campaigns_stream = protocol.CAMPAIGNS_STREAM in streams
        self._listing = Listing() if self._campaigns_stream else None
        self._full_refresh = full_refresh_mode
        self._cancel = cancel or CancelToken()
        self.cancelled: str | None = None  # the signal that cancelled the sync, once it has
        self.abandoned = False  # a worker was still busy when the cancel's grace period ended
        self._debug = debug
        self._clock = clock or time.monotonic
        self._state_pacing = (state_interval_s, heartbeat_s)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=16)  # ~16 chunks of output: memory stays flat
        self._cancelled = threading.Event()  # stop new work: a refused key, or the consumer is gone
        self._consumer_gone = threading.Event()  # nobody reads the queue any more
        self.client = SoundlinkClient(config, self._log, backoff_base_s, sleep=self._wait, clock=self._clock)
        self._resume_note = None
        # Full refresh: the windows in flight, as far as their rows were emitted (only the consumer
        # touches it), and where the handed-in state says the retry resumes inside a window.
        self._partials: dict[str, full_refresh.Partial] = {}
        if full_refresh_mode:
            stream_state, self._partials, self._resume_note = full_refresh.resumable(stream_state)
        self._resume = dict(self._partials)
        self._state = cursor.campaign_states(stream_state)
        self._lock = threading.Lock()
        self._errors: list[SoundlinkError] = []
        self._partitioner = DateSlicingPartitioner(config.window_size_days)
        self._decoder = JsonlDecoder(
            self._fetch,
            self._records,
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
        if self._campaigns_stream:
            yield protocol.stream_status(protocol.CAMPAIGNS_STREAM, "STARTED")
        if self._engagement:
            yield protocol.stream_status(stream, "STARTED")
            if self._resume_note:
                yield protocol.log("INFO", self._resume_note)
        emitter = StateEmitter(*self._state_pacing, clock=self._clock)
        listing_error: SoundlinkError | None = None
        campaigns_error: SoundlinkError | None = None
        campaigns_pending = self._campaigns_stream  # its messages wait for the listing
        running_sent = False
        grace_ends: float | None = None  # set by a cancel: windows in flight may finish until then
        pending = 1  # tasks whose _DONE has not arrived: the listing, then one per campaign
        threading.Thread(target=self._watch_cancel, name="soundlink-cancel", daemon=True).start()
        pool = ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink")
        pool.submit(self._run_listing)
        try:
            while pending:
                if grace_ends is None and self._cancel.reason is not None:
                    self.cancelled = self._cancel.reason
                    self._cancelled.set()  # no new window, no new request; waits end at once
                    grace_ends = wall_clock() + CANCEL_GRACE_S
                timeout: float | None
                if grace_ends is None:
                    # Only the engagement stream heartbeats (the campaigns stream has no state to repeat).
                    timeout = max(0.0, emitter.seconds_until_due()) if self._engagement else None
                else:
                    timeout = grace_ends - wall_clock()
                    if timeout <= 0:
                        self.abandoned = True  # a body still streams: its window is read again next sync
                        break
                try:
                    item = self._out.get(timeout=timeout)
                except queue.Empty:
                    item = None  # nothing arrived: a heartbeat or a deferred checkpoint may be due
                force = False
                if item is None or item is _WAKE:
                    pass
                elif item is _DONE:
                    pending -= 1
                elif type(item) is _Records:
                    if not running_sent:
                        running_sent = True
                        yield protocol.stream_status(stream, "RUNNING")
                    emitter.records(item.count)
                    yield item.data
                    if item.partial is not None:
                        self._partials[item.campaign_id] = item.partial
                elif type(item) is _Checkpoint:
                    with self._lock:
                        self._state[item.campaign_id] = item.campaign_state
                        self.stats["windows"] += 1
                        self.stats["rows"] += item.rows
                    self._partials.pop(item.campaign_id, None)
                    emitter.checkpoint()
                elif item is _FLUSH:
                    force = emitter.changed
                elif type(item) is _Listed:
                    if self._listing is not None:
                        campaigns_pending = False
                        out, campaigns_error = campaigns_stream.messages(self._listing, item.error)
                        yield out
                    if item.campaigns is None:
                        listing_error = item.error
                    elif self._engagement and grace_ends is None:
                        yield self._started(item.campaigns)
                        for campaign in item.campaigns:
                            pool.submit(self._run_campaign, campaign)
                        pending += len(item.campaigns)
                else:
                    yield item
                if grace_ends is None and self._engagement and (force or emitter.due()):
                    yield self._state_message(emitter.emitted())
        finally:
            self._consumer_gone.set()  # a consumer that stops early must not leave workers blocked
            self._cancelled.set()
            self._cancel.release()
            while pending and not self.abandoned:
                if self._out.get() is _DONE:
                    pending -= 1
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)
        if campaigns_pending:  # cancelled before the listing ended
            yield protocol.stream_status(protocol.CAMPAIGNS_STREAM, "INCOMPLETE")
        if self.cancelled:
            yield from self._cancelled_messages(emitter)
            return
        if not self._engagement:
            if campaigns_error is not None:
                raise SyncFailed([campaigns_error], protocol.CAMPAIGNS_STREAM)
            return
        if listing_error is not None:  # no campaign was read: the state handed in stands
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed([listing_error])
        yield self._state_message(emitter.emitted())  # the end, or before the failure's trace
        if self._errors:
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed(self._errors + ([campaigns_error] if campaigns_error else []))
        seconds = time.monotonic() - started
        s = self.stats
        yield protocol.log(
            "INFO",
            f"Sync summary: {s['rows']} rows from {s['windows']} windows of {s['campaigns']} campaigns "
            f"({s['settled']} settled, {s['idle']} with nothing new) in {seconds:.1f} s; "
            f"{s['export_requests']} export requests, {emitter.emitted_states} STATE messages.",
        )
        yield protocol.stream_status(stream, "COMPLETE")
        if campaigns_error is not None:
            # A key without campaigns:read still exported the configured campaigns; the sync fails now.
            raise SyncFailed([campaigns_error], protocol.CAMPAIGNS_STREAM)

    def _cancelled_messages(self, emitter: StateEmitter) -> Iterator[bytes]:
        """After a cancel: one STATE covering every complete window, INCOMPLETE, one LOG line."""
        if self._engagement:
            yield self._state_message(emitter.emitted())
            yield protocol.stream_status(protocol.ENGAGEMENT_STREAM, "INCOMPLETE")
        s = self.stats
        message = (
            f"Sync cancelled ({self.cancelled}): the last STATE covers {s['windows']} complete windows "
            f"({s['rows']} rows) read in this sync; the next sync resumes after them."
        )
        if self.abandoned:
            message += f" Windows still streaming after {CANCEL_GRACE_S:.0f} s are read again then."
        if self._errors:
            first = self._errors[0].message
            message += f" {len(self._errors)} campaigns had failed before; the first: {first}"
        yield protocol.log("WARN", message)

    def _watch_cancel(self) -> None:
        """Wake the consumer when a cancel is requested (a signal handler must not touch the queue)."""
        if self._cancel.wait():
            self._cancelled.set()
            with contextlib.suppress(_Cancelled):
                self._put(_WAKE)

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
        campaigns = resolve_campaigns(self.client, self.config, self._log, self._listing)
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
        planned = (full_refresh.plan if self._full_refresh else cursor.plan)(campaign, self.config, state)
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
            resume = self._resume.pop(campaign.campaign_id, None)
            if resume is not None and resume.start != window.start.isoformat():
                resume = None  # not where the earlier attempt was (cannot happen within one job)
            try:
                progress = self._decoder.read_window(window, resume and (resume.last_date, resume.keys))
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

    def _records(self, data: bytes, count: int, window: Window, progress: WindowProgress) -> None:
        """The decoder emitted rows; a full refresh also tells the consumer how far they reach."""
        partial = None
        if self._full_refresh:
            keys = frozenset(progress.day_keys)
            partial = full_refresh.Partial(window.start.isoformat(), progress.last_date or "", keys)
        self._put(_Records(data, count, window.campaign_id, partial))

    def _state_message(self, record_count: int) -> bytes:
        with self._lock:
            stream_state = cursor.stream_state(self._state)
        if self._full_refresh:
            stream_state = full_refresh.mark(stream_state, self._partials)
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
