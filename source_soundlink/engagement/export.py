"""Orchestration of a `campaign_engagement_daily` read: workers, the output queue, STATE, cancel, stats.

Why not the CDK's concurrent read path (ConcurrentReadProcessor, PartitionReader): it builds a Record
object and an AirbyteMessage per row (tens of times our CPU per row; benchmarks/ measures it against a
plain orjson loop) and checkpoints per-partition state that cannot express our cursor (cursor.py). The
shape is the same: one
worker per campaign in flight reads its windows in order and queues records, then a checkpoint per
complete window, then a completion sentinel; the consumer, the only writer of the stream state, turns
checkpoints into STATE, so STATE always follows the records it covers and carries their exact count.
state_pacer.py decides when a STATE goes out (paced, rare heartbeats while the sync waits); the campaign
listing runs on a worker too, so the consumer can heartbeat while it pages or waits. The consumer also
sums the windows' announced rows into the stream's ESTIMATE (estimate.py), and failures.py decides when
failed campaigns stop the sync early (a refused key, an outage) and words its failure.

The pieces: campaigns.py lists the campaigns; span_reader.py reads one campaign (cursor.py decides its
first day and its next state, partitioner.py cuts the days into windows); window_reader.py reads one
window and jsonl_decoder.py turns its body into RECORD bytes. The sync's `today` (Soundlink's date or the
host's) is decided once, here, after the listing, and handed to the span readers.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
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
from source_soundlink.engagement.estimate import SyncEstimate
from source_soundlink.engagement.failures import SyncFailed, SyncFailures
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.span_reader import CampaignSpanReader
from source_soundlink.engagement.state_pacer import HEARTBEAT_S, LONG_WAIT_S, STATE_INTERVAL_S, StatePacer
from source_soundlink.engagement.window_reader import WindowReader
from source_soundlink.errors import SYSTEM_ERROR, SoundlinkError
from source_soundlink.protocol import Logger
from source_soundlink.retry_policy import DEFAULT_POLICY, RetryPolicy

_DONE = object()  # a worker's completion sentinel
# The sync's counters; "stopped": campaigns a cancel or the outage breaker stopped before they were done.
_STATS = ("rows", "windows", "export_requests", "campaigns", "settled", "idle", "stopped")


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
class _Announced:
    rows: int  # a window's change to the sync's expected rows (estimate.py)
    body_bytes: int


@dataclass
class _Waiting:
    seconds: float  # a worker starts a wait this long (budget, Retry-After)


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
        `heartbeat_s`, the STATE pacing (state_pacer.py); tests pass fake or shortened ones."""
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
        self._failures = SyncFailures(self.log)
        self._partitioner = DateSlicingPartitioner(config.window_size_days)
        decoder = JsonlDecoder(lambda data, count: self._put(_Records(data, count)))
        announce = lambda rows, body_bytes: self._offer(_Announced(rows, body_bytes))  # noqa: E731
        self._reader = WindowReader(
            self.client, decoder, config.engagement_context, announce, self.log, self._wait, clock
        )
        self.stats = dict.fromkeys(_STATS, 0)

    # -- the generator the entrypoints consume ---------------------------------------------------------

    def messages(self) -> Iterator[bytes]:
        stream = protocol.ENGAGEMENT_STREAM
        started = self._clock.now()
        yield protocol.stream_status(stream, "STARTED")
        pacer = StatePacer(*self._state_pacing, clock=self._clock.now)
        estimate = SyncEstimate(self._clock.now)  # the workers announce windows; the sum is kept here
        listing_error: SoundlinkError | None = None
        running_sent = False
        pending = 1  # tasks whose _DONE has not arrived: the listing, then one per campaign
        with ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink") as pool:
            pool.submit(self._run_listing)
            try:
                while pending:
                    timeout = self._clock.real_seconds(max(0.0, pacer.seconds_until_due()))
                    try:
                        item = self._out.get(timeout=timeout)
                    except queue.Empty:
                        item = None  # nothing arrived: a heartbeat or a deferred checkpoint may be due
                    force = False
                    if item is _DONE:
                        pending -= 1
                    elif type(item) is _Records:
                        if not running_sent:
                            running_sent = True
                            yield protocol.stream_status(stream, "RUNNING")
                        pacer.records(item.count)
                        yield item.data
                        if line := estimate.records(item.count, len(item.data)):
                            yield line
                    elif type(item) is _Announced:
                        if line := estimate.announced(item.rows, item.body_bytes):
                            yield line
                    elif type(item) is _Checkpoint:
                        with self._lock:
                            self._state[item.campaign_id] = item.campaign_state
                            self.stats["windows"] += 1
                            self.stats["rows"] += item.rows
                        pacer.checkpoint()
                    elif type(item) is _Waiting:
                        force = pacer.waiting(item.seconds)
                    elif type(item) is _Listed:
                        if item.campaigns is None:
                            listing_error = item.error
                        else:
                            yield from self._start_campaigns(item.campaigns, pool)
                            pending += len(item.campaigns)
                    elif item is not None:
                        yield item
                    if force or pacer.due():
                        yield _state_line(self._lock, self._state, pacer.emitted())
            finally:
                self._consumer_gone.set()  # a consumer that stops early must not leave workers blocked
                self._cancelled.set()
                while pending:
                    if self._out.get() is _DONE:
                        pending -= 1
        if listing_error is not None:  # no campaign was read: the state handed in stands
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed([listing_error])
        if line := estimate.final():  # the rows emitted: where the platform's progress bar ends
            yield line
        yield _state_line(self._lock, self._state, pacer.emitted())  # the end, or before a failure's trace
        if failed := self._failures.sync_failed(self.stats["stopped"]):
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise failed
        self.stats["export_requests"] = self._reader.requests_sent
        yield _summary(self.stats, self._clock.now() - started, pacer.emitted_states)
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
                self._put(_listing(self.client, self.config, self.log, self._fail))
        finally:
            self._out.put(_DONE)

    # -- one campaign on a worker: span_reader.py reads it, calling back the methods below ------------------

    def _run_campaign(self, spans: CampaignSpanReader, campaign: Campaign) -> None:
        try:
            spans.read(campaign)
        except _Cancelled:
            self.tally("stopped")  # left (or left unfinished) for the next sync
        except SoundlinkError as error:
            self._fail(error)
        except Exception as exc:  # a bug must still fail the sync loudly, with the campaign named
            self._fail(
                SoundlinkError(f"Unexpected error on campaign {campaign.campaign_id}: {exc!r}", SYSTEM_ERROR)
            )
        finally:
            self._out.put(_DONE)

    def _fail(self, error: SoundlinkError) -> None:
        if self._failures.add(error):  # a refused key, or an outage: every other window would fail too
            self._cancelled.set()

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        with self._lock:
            return self._state.get(campaign_id)

    def checkpoint(self, campaign_id: str, state: CampaignState, rows: int) -> None:
        self._failures.success()  # a window completed: Soundlink's export service works
        self._put(_Checkpoint(campaign_id, state, rows))

    def stop_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise _Cancelled

    def tally(self, counter: str) -> None:
        with self._lock:
            self.stats[counter] += 1

    # -- output ------------------------------------------------------------------------------------------

    def _offer(self, item: Any) -> None:
        """Queue `item` unless the consumer is gone (a log line, an estimate: nobody needs them then)."""
        with contextlib.suppress(_Cancelled):
            self._put(item)

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
        """Sleep (budget, Retry-After, backoff) unless the sync is cancelled (a refused key, an outage, a
        consumer that stopped). Before a long wait the consumer may checkpoint what is complete, this
        worker's windows included (state_pacer.py): a sync killed during the wait resumes after them."""
        if seconds >= LONG_WAIT_S:
            self._put(_Waiting(seconds))
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        if self._clock.wait(seconds, self._cancelled):
            raise _Cancelled

    def log(self, level: str, message: str) -> None:
        """Queue a LOG line (from any worker); DEBUG only with --debug."""
        if level != "DEBUG" or self._debug:
            self._offer(self._log_line(level, message))

    def _log_line(self, level: str, message: str) -> bytes:
        return protocol.log(level, message.replace(self.config.api_key, "****"))


def _listing(
    client: SoundlinkClient, config: SoundlinkConfig, log: Logger, fail: Callable[[SoundlinkError], None]
) -> _Listed:
    """The campaigns to read, or the error that stopped the listing (a cancelled sync raises). A
    configured id Soundlink does not know goes to `fail`: named in the sync's failure, after the other
    campaigns are synced."""
    unknown: list[SoundlinkError] = []
    try:
        campaigns = resolve_campaigns(client, config, log, unknown)
    except _Cancelled:
        raise
    except SoundlinkError as error:
        return _Listed(None, error)
    except Exception as exc:
        error = SoundlinkError(f"Unexpected error while listing campaigns: {exc!r}", SYSTEM_ERROR)
        return _Listed(None, error)
    for error in unknown:
        fail(error)
    return _Listed(campaigns)


def _state_line(lock: threading.Lock, states: dict[str, CampaignState], record_count: int) -> bytes:
    """A STATE message of the whole stream state (the workers' checkpoints update it under `lock`)."""
    with lock:
        stream_state = cursor.stream_state(states)
    return protocol.state(protocol.ENGAGEMENT_STREAM, stream_state, record_count)


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
