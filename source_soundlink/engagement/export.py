"""Orchestration of a `campaign_engagement_daily` read: workers, the output queue, STATE, cancel, stats.

Why not the CDK's concurrent read path (ConcurrentReadProcessor, PartitionReader): it builds a Record
object and an AirbyteMessage per row (tens of times our CPU per row; benchmarks/ measures it against a
plain orjson loop) and checkpoints per-partition state that cannot express our cursor (cursor.py). The
shape is the same: one
worker per campaign in flight reads its windows in order and queues records, then a checkpoint per
complete window, then a completion sentinel; the consumer, the only writer of the stream state, turns
checkpoints into STATE, so STATE always follows the records it covers and carries their exact count.
state_emitter.py decides when a STATE goes out (throttled, heartbeats while the sync waits); the campaign
listing runs on a worker too, so the consumer can heartbeat while it pages or waits.

The pieces: campaigns.py lists the campaigns; span_reader.py reads one campaign (cursor.py decides its
first day and its next state, partitioner.py cuts the days into windows); window_reader.py reads one
window and jsonl_decoder.py turns its body into RECORD bytes. The sync's `today` (Soundlink's date or the
host's) is decided once, here, after the listing, and handed to the span readers.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import source_soundlink.engagement.cursor as cursor
from source_soundlink import protocol
from source_soundlink.client import SoundlinkClient
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign, resolve_campaigns
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.span_reader import CampaignSpanReader
from source_soundlink.engagement.state_emitter import HEARTBEAT_S, STATE_INTERVAL_S, StateEmitter
from source_soundlink.engagement.window_reader import WindowReader
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, SoundlinkError
from source_soundlink.protocol import Logger
from source_soundlink.retry_policy import DEFAULT_POLICY, RetryPolicy

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
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: Clock = SYSTEM_CLOCK,
        state_interval_s: float = STATE_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        """`clock` times every wait (budget, Retry-After, backoff) and, with `state_interval_s` and
        `heartbeat_s`, the STATE pacing (state_emitter.py); tests pass fake or shortened ones."""
        self.config = config
        self._debug = debug
        self._clock = clock
        self._state_pacing = (state_interval_s, heartbeat_s)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=16)  # ~16 chunks of output: memory stays flat
        self._cancelled = threading.Event()  # stop new work: a refused key, or the consumer is gone
        self._consumer_gone = threading.Event()  # nobody reads the queue any more
        self.client = SoundlinkClient(config, self.log, policy, clock, wait=self._wait)
        self._state = cursor.campaign_states(stream_state)
        self._lock = threading.Lock()
        self._errors: list[SoundlinkError] = []
        self._partitioner = DateSlicingPartitioner(config.window_size_days)
        decoder = JsonlDecoder(lambda data, count: self._put(_Records(data, count)))
        self._reader = WindowReader(
            self.client, decoder, config.engagement_context, self._put, self.log, self._wait, clock
        )
        self.stats = {"rows": 0, "windows": 0, "export_requests": 0, "campaigns": 0, "settled": 0, "idle": 0}

    # -- the generator the entrypoints consume ---------------------------------------------------------

    def messages(self) -> Iterator[bytes]:
        stream = protocol.ENGAGEMENT_STREAM
        started = self._clock.now()
        yield protocol.stream_status(stream, "STARTED")
        emitter = StateEmitter(*self._state_pacing, clock=self._clock.now)
        listing_error: SoundlinkError | None = None
        running_sent = False
        pending = 1  # tasks whose _DONE has not arrived: the listing, then one per campaign
        with ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink") as pool:
            pool.submit(self._run_listing)
            try:
                while pending:
                    timeout = self._clock.real_seconds(max(0.0, emitter.seconds_until_due()))
                    try:
                        item = self._out.get(timeout=timeout)
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
                            yield from self._start_campaigns(item.campaigns, pool)
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
        self.stats["export_requests"] = self._reader.requests_sent
        yield _summary(self.stats, self._clock.now() - started, emitter.emitted_states)
        yield protocol.stream_status(stream, "COMPLETE")

    def _start_campaigns(self, campaigns: list[Campaign], pool: ThreadPoolExecutor) -> Iterator[bytes]:
        """After the listing: decide the sync's today once, then hand every campaign to a worker."""
        today, warning = _sync_today(self.config.today, self.client.server_today)
        if warning:
            yield self._log_line("WARN", warning)
        self.stats["campaigns"] = len(campaigns)
        yield self._log_line(
            "INFO",
            f"Syncing engagement of {len(campaigns)} campaigns with up to "
            f"{self.config.num_workers} in parallel.",
        )
        spans = CampaignSpanReader(replace(self.config, today=today), self._partitioner, self._reader, self)
        for campaign in campaigns:
            pool.submit(self._run_campaign, spans, campaign)

    def _run_listing(self) -> None:
        """List the campaigns on a worker, so the consumer keeps heartbeating through budget waits."""
        try:
            with contextlib.suppress(_Cancelled):
                self._put(_listing(self.client, self.config, self.log))
        finally:
            self._out.put(_DONE)

    # -- one campaign on a worker: span_reader.py reads it, calling back the methods below ------------------

    def _run_campaign(self, spans: CampaignSpanReader, campaign: Campaign) -> None:
        try:
            spans.read(campaign)
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

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        with self._lock:
            return self._state.get(campaign_id)

    def checkpoint(self, campaign_id: str, state: CampaignState, rows: int) -> None:
        self._put(_Checkpoint(campaign_id, state, rows))

    def stop_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise _Cancelled

    def tally(self, counter: str) -> None:
        with self._lock:
            self.stats[counter] += 1

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
        if self._clock.wait(seconds, self._cancelled):
            raise _Cancelled

    def log(self, level: str, message: str) -> None:
        """Queue a LOG line (from any worker); DEBUG only with --debug."""
        if level == "DEBUG" and not self._debug:
            return
        with contextlib.suppress(_Cancelled):
            self._put(self._log_line(level, message))

    def _log_line(self, level: str, message: str) -> bytes:
        return protocol.log(level, message.replace(self.config.api_key, "****"))


def _listing(client: SoundlinkClient, config: SoundlinkConfig, log: Logger) -> _Listed:
    """The campaigns to read, or the error that stopped the listing (a cancelled sync raises)."""
    try:
        return _Listed(resolve_campaigns(client, config, log))
    except _Cancelled:
        raise
    except SoundlinkError as error:
        return _Listed(None, error)
    except Exception as exc:
        error = SoundlinkError(f"Unexpected error while listing campaigns: {exc!r}", SYSTEM_ERROR)
        return _Listed(None, error)


def _summary(s: dict[str, int], seconds: float, states: int) -> bytes:
    return protocol.log(
        "INFO",
        f"Sync summary: {s['rows']} rows from {s['windows']} windows of {s['campaigns']} campaigns "
        f"({s['settled']} settled, {s['idle']} with nothing new) in {seconds:.1f} s; "
        f"{s['export_requests']} export requests, {states} STATE messages.",
    )


def _sync_today(host_today: date, server_today: date | None) -> tuple[date, str | None]:
    """The sync's today, and a warning when it is not the host's.

    When the host's clock is ahead of Soundlink's (seconds around midnight UTC are enough), a `through`
    past Soundlink's today would start every later lookback one day too late: read up to Soundlink's."""
    if server_today is not None and server_today < host_today:
        return server_today, (
            f"Soundlink's date is {server_today.isoformat()} while this host's is "
            f"{host_today.isoformat()}; reading up to Soundlink's today."
        )
    return host_today, None
