"""Orchestration of a read: the tasks on a thread pool, the consumer of their queue, STATE, cancel, stats.

Why not the CDK's concurrent read path (ConcurrentReadProcessor, PartitionReader): it builds a Record
object and an AirbyteMessage per row (tens of times our CPU per row; benchmarks/ measures it against a
plain orjson loop) and checkpoints per-partition state that cannot express our cursor (cursor.py). The
shape is the same: one worker per campaign in flight reads its windows in order and queues records, then
a checkpoint per complete window, then a completion sentinel (workers.py); the consumer here, the only
writer of the stream state, turns checkpoints into STATE, so STATE always follows the records it covers
and carries their exact count. state_pacer.py decides when a STATE goes out (paced, rare heartbeats
while the sync waits); the campaign listing runs on a worker too, so the consumer can heartbeat while it
pages or waits. The consumer also sums the windows' announced rows into the stream's ESTIMATE
(estimate.py); failures.py decides when failed campaigns stop the sync (a refused key, an outage) and
words its failure.

The `campaigns` stream is emitted from that same listing when the catalog selects it (campaigns_stream.py
builds its messages): one pass over /v1/campaigns per sync, through the one request budget, with the
heartbeat running, and no CDK import. A cancel (cancel.py) stops new requests, lets the windows in flight
finish for a few seconds, and ends with one STATE covering every complete window. A full refresh resumes
from the state of its interrupted attempt (full_refresh.py).

The pieces: workers.py runs the tasks and is their end of the queue; campaigns.py lists the campaigns;
span_reader.py reads one campaign (cursor.py decides its first day and its next state, partitioner.py
cuts the days into windows); window_reader.py reads one window and jsonl_decoder.py turns its body into
RECORD bytes. The sync's `today` (Soundlink's date or the host's) is decided once, here, after the
listing, and handed to the span readers.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import monotonic as wall_clock  # the cancel's grace period: real seconds, whatever the clock
from typing import Any

import source_soundlink.engagement.campaigns_stream as campaigns_stream
import source_soundlink.engagement.cursor as cursor
from source_soundlink import protocol
from source_soundlink.cancel import CancelToken
from source_soundlink.client import SoundlinkClient
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign, Listing
from source_soundlink.engagement.estimate import SyncEstimate
from source_soundlink.engagement.failures import SyncFailed
from source_soundlink.engagement.full_refresh import Resumption
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.span_reader import CampaignSpanReader
from source_soundlink.engagement.state_pacer import HEARTBEAT_S, STATE_INTERVAL_S, StatePacer
from source_soundlink.engagement.window_reader import WindowReader
from source_soundlink.engagement.workers import (
    DONE,
    WAKE,
    Announced,
    Cancelled,
    Checkpoint,
    Listed,
    Records,
    Waiting,
    Workers,
)
from source_soundlink.errors import SoundlinkError
from source_soundlink.retry_policy import DEFAULT_POLICY, RetryPolicy

CANCEL_GRACE_S = 5.0  # after a cancel, windows in flight may finish for this long (wall clock)


@dataclass
class _Run:
    """What the consumer knows of the sync so far (only the consumer thread touches it)."""

    pacer: StatePacer
    estimate: SyncEstimate  # the workers announce windows; the sum is kept here
    started: float
    campaigns_pending: bool  # the campaigns stream's messages wait for the listing
    pending: int = 1  # tasks whose DONE has not arrived: the listing, then one per campaign
    running_sent: bool = False
    listing_error: SoundlinkError | None = None
    campaigns_error: SoundlinkError | None = None
    grace_ends: float | None = None  # set by a cancel (wall clock): windows in flight may finish until then

    def records(self, item: Records) -> Iterator[bytes]:
        """Records go out, then the stream's estimate if one is due."""
        self.pacer.records(item.count)
        yield item.data
        if line := self.estimate.records(item.count, len(item.data)):
            yield line

    def announced(self, item: Announced) -> Iterator[bytes]:
        if line := self.estimate.announced(item.rows, item.body_bytes):
            yield line


class EngagementExport:
    """Reads the selected streams; `messages()` yields Airbyte messages as newline-terminated bytes."""

    def __init__(
        self,
        config: SoundlinkConfig,
        stream_state: dict[str, Any] | None,
        debug: bool = False,
        policy: RetryPolicy = DEFAULT_POLICY,
        clock: Clock = SYSTEM_CLOCK,
        state_interval_s: float = STATE_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        streams: Collection[str] = (protocol.ENGAGEMENT_STREAM,),
        full_refresh_mode: bool = False,
        cancel: CancelToken | None = None,
    ) -> None:
        """`clock` times every wait (budget, Retry-After, backoff) and, with `state_interval_s` and
        `heartbeat_s`, the STATE pacing (state_pacer.py); tests pass fake or shortened ones.
        `streams`: the selected streams of this source (engagement, campaigns or both); `full_refresh_mode`:
        the engagement stream is read in full refresh, resuming from `stream_state` only if a full refresh
        wrote it; `cancel`: set by a SIGTERM/SIGINT handler (read_command.py) to end the sync gracefully."""
        self.config = config
        self._engagement = protocol.ENGAGEMENT_STREAM in streams
        self._listing = Listing() if protocol.CAMPAIGNS_STREAM in streams else None
        self._full_refresh = Resumption(stream_state) if full_refresh_mode else None
        if self._full_refresh:
            stream_state = self._full_refresh.stream_state  # None unless a full refresh wrote it
        self._cancel = cancel or CancelToken()
        self.cancelled: str | None = None  # the signal that cancelled the sync, once it has
        self.abandoned = False  # a worker was still busy when the cancel's grace period ended
        self._clock = clock
        self._state_pacing = (state_interval_s, heartbeat_s)
        state = cursor.campaign_states(stream_state)
        self._workers = workers = Workers(config, state, clock, debug, self._full_refresh)
        policy = policy if self._engagement else policy.silent()  # only the engagement stream heartbeats
        self.client = SoundlinkClient(config, workers.log, policy, clock, wait=workers.wait)
        self._partitioner = DateSlicingPartitioner(config.window_size_days)
        self._reader = WindowReader(
            self.client,
            JsonlDecoder(workers.records, workers.log),
            config.engagement_context,
            workers.announce,
            workers.log,
            workers.wait,
            clock,
        )
        self.stats = workers.stats

    # -- the generator the entrypoints consume ---------------------------------------------------------

    def messages(self) -> Iterator[bytes]:
        workers = self._workers
        pacer = StatePacer(*self._state_pacing, clock=self._clock.now)
        run = _Run(pacer, SyncEstimate(self._clock.now), self._clock.now(), self._listing is not None)
        yield from _started_messages(self._listing is not None, self._engagement, self._full_refresh, workers)
        threading.Thread(target=self._watch_cancel, name="soundlink-cancel", daemon=True).start()
        pool = ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink")
        pool.submit(workers.run_listing, self.client, self._listing)
        try:
            while run.pending:
                timeout = self._timeout(run)
                if run.grace_ends is not None and timeout is not None and timeout <= 0:
                    self.abandoned = True  # a body still streams: its window is read again next sync
                    break
                try:
                    item = workers.out.get(timeout=timeout)
                except queue.Empty:
                    item = None  # nothing arrived: a heartbeat or a deferred checkpoint may be due
                force = type(item) is Waiting and pacer.waiting(item.seconds)
                yield from self._take(item, run, pool)
                if run.grace_ends is None and self._engagement and (force or pacer.due()):
                    yield self._state_message(pacer.emitted())
        finally:
            # A cancel whose workers all stopped before the consumer woke is still a cancel.
            self.cancelled = self.cancelled or self._cancel.reason
            workers.consumer_gone.set()  # a consumer that stops early must not leave workers blocked
            workers.stopped.set()
            self._cancel.release()
            while run.pending and not self.abandoned:
                if workers.out.get() is DONE:
                    run.pending -= 1
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)
        yield from self._ending(run)

    def _timeout(self, run: _Run) -> float | None:
        """How long the consumer waits for the next item (None: until one comes); a cancel starts its grace
        period, timed on the wall (as the platform's kill after a SIGTERM is), whatever the sync's clock."""
        if run.grace_ends is None and self._cancel.reason is not None:
            self.cancelled = self._cancel.reason
            self._workers.stopped.set()  # no new window, no new request; waits end at once
            run.grace_ends = wall_clock() + CANCEL_GRACE_S
        if run.grace_ends is not None:
            return run.grace_ends - wall_clock()
        if not self._engagement:
            return None  # only the engagement stream heartbeats (the campaigns stream has no state to repeat)
        return self._clock.real_seconds(max(0.0, run.pacer.seconds_until_due()))

    def _take(self, item: Any, run: _Run, pool: ThreadPoolExecutor) -> Iterator[bytes]:
        """Act on one item of the output queue (None: the wait for one timed out)."""
        if item is None or item is WAKE or type(item) is Waiting:
            return
        if item is DONE:
            run.pending -= 1
        elif type(item) is Records:
            if not run.running_sent:
                run.running_sent = True
                yield protocol.stream_status(protocol.ENGAGEMENT_STREAM, "RUNNING")
            yield from run.records(item)
            if item.partial is not None and self._full_refresh:
                self._full_refresh.emitted(item.campaign_id, item.partial)  # once its rows went out
        elif type(item) is Announced:
            yield from run.announced(item)
        elif type(item) is Checkpoint:
            with self._workers.lock:
                self._workers.state[item.campaign_id] = item.campaign_state
                self.stats["windows"] += 1
                self.stats["rows"] += item.rows
            if self._full_refresh:
                self._full_refresh.completed(item.campaign_id)
            run.pacer.checkpoint()
        elif type(item) is Listed:
            if self._listing is not None:
                run.campaigns_pending = False
                out, run.campaigns_error = campaigns_stream.messages(self._listing, item.error)
                yield out
            if item.campaigns is None:
                run.listing_error = item.error
            elif self._engagement and run.grace_ends is None:
                yield from self._start_campaigns(item.campaigns, pool)
                run.pending += len(item.campaigns)
        else:
            yield item

    def _ending(self, run: _Run) -> Iterator[bytes]:
        """The sync's last messages: its STATE, statuses and summary, or the failure it raises."""
        stream, errors = protocol.ENGAGEMENT_STREAM, self._workers.failures.errors
        if self._engagement and (line := run.estimate.final()):
            yield line  # the rows emitted: where the platform's progress bar ends
        if run.campaigns_pending:  # cancelled before the listing ended
            yield protocol.stream_status(protocol.CAMPAIGNS_STREAM, "INCOMPLETE")
        if self.cancelled:
            if self._engagement:
                yield self._state_message(run.pacer.emitted())
                yield protocol.stream_status(stream, "INCOMPLETE")
            yield _cancel_summary(self.cancelled, self.stats, self.abandoned, errors)
            return
        campaigns_failure = [run.campaigns_error] if run.campaigns_error else []
        if not self._engagement:
            if campaigns_failure:
                raise SyncFailed(campaigns_failure, protocol.CAMPAIGNS_STREAM)
            return
        if run.listing_error is not None:  # no campaign was read: the state handed in stands
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed([run.listing_error])
        yield self._state_message(run.pacer.emitted())  # the end, or before the failure's trace
        if errors:
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed(self._workers.failures.reported(self.stats["stopped"]) + campaigns_failure)
        self.stats["export_requests"] = self._reader.requests_sent
        yield _summary(self.stats, self._clock.now() - run.started, run.pacer.emitted_states)
        yield protocol.stream_status(stream, "COMPLETE")
        if campaigns_failure:
            # A key without campaigns:read still exported the configured campaigns; the sync fails now.
            raise SyncFailed(campaigns_failure, protocol.CAMPAIGNS_STREAM)

    def _watch_cancel(self) -> None:
        """Wake the consumer when a cancel is requested (a signal handler must not touch the queue)."""
        if self._cancel.wait():
            self._workers.stopped.set()
            with contextlib.suppress(Cancelled):
                self._workers.put(WAKE)

    def _start_campaigns(self, campaigns: list[Campaign], pool: ThreadPoolExecutor) -> Iterator[bytes]:
        """After the listing: decide the sync's today once, then hand every campaign to a worker."""
        workers = self._workers
        today = cursor.sync_today(self.config.today, self.client.server_today)
        if today.warning:
            yield workers.log_line("WARN", today.warning)
        self.stats["campaigns"] = len(campaigns)
        yield workers.log_line(
            "INFO",
            f"Syncing engagement of {len(campaigns)} campaigns with up to "
            f"{self.config.num_workers} in parallel.",
        )
        config = today.apply(self.config)
        with workers.lock:  # the 0.1.0 settled flags today's rule confirms: trusted before the first STATE
            workers.state.update(cursor.confirm_settled(workers.state, campaigns, config))
        spans = CampaignSpanReader(config, self._partitioner, self._reader, workers, self._full_refresh)
        for campaign in campaigns:
            pool.submit(workers.run_campaign, spans, campaign)

    def _state_message(self, record_count: int) -> bytes:
        with self._workers.lock:
            stream_state = cursor.stream_state(self._workers.state)
        if self._full_refresh:
            stream_state = self._full_refresh.mark(stream_state)
        return protocol.state(protocol.ENGAGEMENT_STREAM, stream_state, record_count)


def _started_messages(
    campaigns: bool, engagement: bool, full_refresh: Resumption | None, workers: Workers
) -> Iterator[bytes]:
    """The STARTED statuses of the selected streams, and how a full refresh resumes."""
    if campaigns:
        yield protocol.stream_status(protocol.CAMPAIGNS_STREAM, "STARTED")
    if engagement:
        yield protocol.stream_status(protocol.ENGAGEMENT_STREAM, "STARTED")
        if full_refresh and full_refresh.note:
            yield workers.log_line("INFO", full_refresh.note)


def _summary(s: dict[str, int], seconds: float, states: int) -> bytes:
    return protocol.log(
        "INFO",
        f"Sync summary: {s['rows']} rows from {s['windows']} windows of {s['campaigns']} campaigns "
        f"({s['settled']} settled, {s['idle']} with nothing new) in {seconds:.1f} s; "
        f"{s['export_requests']} export requests, {states} STATE messages.",
    )


def _cancel_summary(reason: str, s: dict[str, int], abandoned: bool, errors: list[SoundlinkError]) -> bytes:
    """The LOG line a cancelled sync ends with: what its last STATE covers, and what is read again."""
    message = (
        f"Sync cancelled ({reason}): the last STATE covers {s['windows']} complete windows "
        f"({s['rows']} rows) read in this sync; the next sync resumes after them."
    )
    if abandoned:
        message += f" Windows still streaming after {CANCEL_GRACE_S:.0f} s are read again then."
    if errors:
        message += f" {len(errors)} campaigns had failed before; the first: {errors[0].message}"
    return protocol.log("WARN", message)
