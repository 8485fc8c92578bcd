"""The `campaign_engagement_daily` read path: campaigns → date windows → streamed, validated JSONL → bytes.

Owned in Python rather than built from the CDK's declarative pieces, because each of these is a
requirement the CDK 7.39.1 pieces cannot meet (see ../shared/airbyte-cdk-notes.md and performance-notes.md):

* State per campaign is the last day of the last *complete* window (`through`), not the highest record
  seen: a campaign with no rows does not re-read its history every sync, a campaign that appears later
  is backfilled from its own start, and a campaign that is settled (ended, tail and revision window over)
  costs no request at all. DatetimeBasedCursor can do none of these.
* A body cut mid-stream is fetched again and resumed after the rows already emitted (rows come sorted
  by report_date; the keys emitted on the last day are kept), instead of failing the sync. A short or
  long body (X-Row-Count), a line that is not JSON, a row missing a primary-key field or with another
  schema_version fails the sync loudly instead of being skipped with a warning.
* A window the server rejects as too wide is split instead of failing.
* Each row is parsed once with orjson to validate it and then spliced into the RECORD envelope as bytes:
  ~40x less per-row work than the CDK's concurrent record path, with flat memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import requests
import urllib3

from source_soundlink import protocol
from source_soundlink.client import Logger, SoundlinkClient
from source_soundlink.config import MAX_WINDOW_DAYS, SoundlinkConfig
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, TRANSIENT_ERROR, SoundlinkError

STATE_VERSION = 1
NDJSON = "application/x-ndjson"
CHUNK_BYTES = 1 << 18  # 256 KiB reads: small enough that queued output stays a few MiB
MAX_BODY_ATTEMPTS = 5  # fetches of one window whose body keeps being cut
MAX_WINDOW_SPLITS = 4  # per campaign: 90 -> 45 -> 22 -> 11 -> 5 days, then the 400 is reported as it is
MAX_LINE_BYTES = 64 << 20  # a "line" this long means the body is not JSONL
# A campaign is settled once a sync has read past: the day it ended + the 30-day post-end tail
# + the 7-day revision window + 1 day for the last day to close.
SETTLE_AFTER_ENDED_DAYS = 30 + 7 + 1
TERMINAL_STATUSES = frozenset({"failed", "completed", "ended", "stopped"})
PRIMARY_KEY = (
    "provider",
    "account_id",
    "report_date",
    "campaign_id",
    "engagement_context",
    "country_code",
    "engaged_spotify_track_id",
)
_BODY_CUT_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)
_DONE = object()


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


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    start: date | None  # UTC date of createdAt; None when the key cannot read campaigns
    status: str | None = None
    planned_end: date | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, obj: dict[str, Any]) -> Campaign:
        start = _utc_date(obj.get("createdAt"))
        duration = obj.get("campaignDuration")
        planned_end = start + timedelta(days=duration) if start and isinstance(duration, int) else None
        return cls(str(obj["campaignId"]), start, obj.get("status"), planned_end, obj.get("updatedAt"))


@dataclass(frozen=True)
class Window:
    campaign_id: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}, window {self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class _WindowProgress:
    """What has been emitted for a window so far; survives re-fetches of a cut body.

    Rows come sorted by report_date first; within a day the documented order is not relied on (its
    collation is not specified), so the day's emitted keys are kept to catch repeats and to resume.
    """

    last_date: str | None = None  # report_date of the last row emitted
    day_keys: set[tuple[Any, ...]] = field(default_factory=set)  # keys emitted for last_date
    resume_date: str | None = None  # set after a cut: rows before it, or in resume_keys, were emitted
    resume_keys: frozenset[tuple[Any, ...]] = frozenset()
    rows_emitted: int = 0
    ended_since: str | None = None  # first report_date of the trailing run of `ended` rows
    saw_not_ended: bool = False
    request_id: str | None = None


@dataclass
class _Records:
    data: bytes  # newline-terminated RECORD messages
    count: int


@dataclass
class _Checkpoint:
    campaign_id: str
    campaign_state: dict[str, Any]
    rows: int


class _BodyCut(Exception):
    pass


def first_day_to_read(
    campaign: Campaign, config: SoundlinkConfig, campaign_state: dict[str, Any] | None
) -> date | None:
    """First report_date this sync reads for a campaign, or None when it has nothing to read.

    With state that covers the campaign from its first day, re-read `lookback_window_days` before
    `through` (Soundlink revises closed days); otherwise read from the first day (a new campaign,
    start_date moved earlier, or engagement_context widened beyond what was read).
    """
    candidates = [d for d in (config.start_date, campaign.start) if d is not None]
    if not candidates:
        raise SoundlinkError(
            f"campaign {campaign.campaign_id} has no createdAt to start from: set start_date.", CONFIG_ERROR
        )
    first = max(candidates)
    through = covered_through(first, config, campaign_state)
    if through is not None:
        if (
            campaign_state.get("settled")
            and campaign.status in TERMINAL_STATUSES
            and campaign_state.get("updated_at") == campaign.updated_at
        ):
            return None
        first = max(first, through - timedelta(days=config.lookback_window_days))
    return first if first <= config.last_date else None


def covered_through(
    first: date, config: SoundlinkConfig, campaign_state: dict[str, Any] | None
) -> date | None:
    """`through` if the state covers what this config asks for from `first` on, else None."""
    if not campaign_state:
        return None
    covered_from = _iso_date(campaign_state.get("from"))
    through = _iso_date(campaign_state.get("through"))
    read_context = campaign_state.get("engagement_context")  # absent: both contexts were read
    covers_context = read_context is None or read_context == config.engagement_context
    if not (covered_from and through and covers_context):
        return None
    # The span must reach `first`: a sync that started after through + 1 would leave a gap never read.
    return through if covered_from <= first <= through + timedelta(days=1) else None


def window_end(start: date, last: date, width: int) -> date:
    """Last day of the window that starts at `start`: `width` inclusive days, never past `last`."""
    return min(start + timedelta(days=width - 1), last)


def settled(campaign: Campaign, campaign_state: dict[str, Any]) -> bool:
    """True once nothing this campaign exports can change any more (the documented request rule)."""
    through = _iso_date(campaign_state.get("through"))
    if through is None:
        return False
    if campaign.status not in TERMINAL_STATUSES:
        return False  # still running, renewing, or unknown (a key without campaigns:read): keep reading
    ended_on = _iso_date(campaign_state.get("ended_on"))
    if ended_on is not None:
        return through >= ended_on + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    # A campaign that never had a row and reached a terminal status: settled once past its planned end.
    if not campaign_state.get("has_rows") and campaign.planned_end:
        return through >= campaign.planned_end + timedelta(days=SETTLE_AFTER_ENDED_DAYS)
    return False


class EngagementExport:
    """Reads campaign_engagement_daily; `messages()` yields Airbyte messages as newline-terminated bytes.

    One worker thread per campaign in flight (up to num_workers) reads its windows in order and queues
    records and checkpoints; the consumer (the thread iterating `messages()`) is the only writer of the
    stream state, so STATE always follows the records it covers and carries their exact count.
    """

    def __init__(
        self,
        config: SoundlinkConfig,
        stream_state: dict[str, Any] | None,
        debug: bool = False,
        backoff_base_s: float = 1.0,
    ) -> None:
        self.config = config
        self._debug = debug
        self._out: queue.Queue[Any] = queue.Queue(maxsize=16)  # ~16 chunks of output: memory stays flat
        self._early_logs: list[bytes] | None = []  # logs before the consumer drains the queue
        self._cancelled = threading.Event()  # stop new work: a refused key, or the consumer is gone
        self._consumer_gone = threading.Event()  # nobody reads the queue any more
        self.client = SoundlinkClient(config, self._log, backoff_base_s, sleep=self._wait)
        self._backoff_base_s = backoff_base_s
        previous = (stream_state or {}).get("campaigns")
        self._state: dict[str, dict[str, Any]] = (
            {cid: dict(cs) for cid, cs in previous.items() if isinstance(cs, dict)}
            if isinstance(previous, dict)
            else {}
        )
        self._lock = threading.Lock()
        self._errors: list[SoundlinkError] = []
        self._max_window_days = config.window_size_days  # shrinks once a narrower window proved needed
        self._prefix, self._middle = protocol.record_envelope(protocol.ENGAGEMENT_STREAM)
        self.stats = {"rows": 0, "windows": 0, "export_requests": 0, "campaigns": 0, "settled": 0, "idle": 0}

    # -- the generator the entrypoints consume ---------------------------------------------------------

    def messages(self) -> Iterator[bytes]:
        stream = protocol.ENGAGEMENT_STREAM
        started = time.monotonic()
        yield protocol.stream_status(stream, "STARTED")
        try:
            campaigns = self._campaigns()
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, SoundlinkError)
                else SoundlinkError(f"Unexpected error while listing campaigns: {exc!r}", SYSTEM_ERROR)
            )
            yield from self._take_early_logs()
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed([error]) from None
        yield from self._take_early_logs()
        self.stats["campaigns"] = len(campaigns)
        yield protocol.log(
            "INFO",
            f"Syncing engagement of {len(campaigns)} campaigns with up to "
            f"{self.config.num_workers} in parallel.",
        )
        pending = len(campaigns)
        running_sent = False
        records_since_state = 0
        with ThreadPoolExecutor(max_workers=self.config.num_workers, thread_name_prefix="soundlink") as pool:
            for campaign in campaigns:
                pool.submit(self._run_campaign, campaign)
            try:
                while pending:
                    item = self._out.get()
                    if item is _DONE:
                        pending -= 1
                    elif type(item) is _Records:
                        if not running_sent:
                            running_sent = True
                            yield protocol.stream_status(stream, "RUNNING")
                        records_since_state += item.count
                        yield item.data
                    elif type(item) is _Checkpoint:
                        with self._lock:
                            self._state[item.campaign_id] = item.campaign_state
                            self.stats["windows"] += 1
                            self.stats["rows"] += item.rows
                        yield self._state_message(records_since_state)
                        records_since_state = 0
                    else:
                        yield item
            finally:
                self._consumer_gone.set()  # a consumer that stops early must not leave workers blocked
                self._cancelled.set()
                while pending:
                    if self._out.get() is _DONE:
                        pending -= 1
        yield self._state_message(records_since_state)
        if self._errors:
            yield protocol.stream_status(stream, "INCOMPLETE")
            raise SyncFailed(self._errors)
        seconds = time.monotonic() - started
        s = self.stats
        yield protocol.log(
            "INFO",
            f"Sync summary: {s['rows']} rows from {s['windows']} windows of {s['campaigns']} campaigns "
            f"({s['settled']} settled, {s['idle']} with nothing new) in {seconds:.1f} s; "
            f"{s['export_requests']} export requests.",
        )
        yield protocol.stream_status(stream, "COMPLETE")

    def _campaigns(self) -> list[Campaign]:
        return resolve_campaigns(self.client, self.config, self._log)

    def _take_early_logs(self) -> list[bytes]:
        logs, self._early_logs = self._early_logs or [], None
        return logs

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
            self._errors.append(error)
        if error.status in (401, 403):
            self._cancelled.set()  # the key itself is refused: every other campaign would fail the same way

    def _sync_campaign(self, campaign: Campaign) -> None:
        with self._lock:
            campaign_state = dict(self._state.get(campaign.campaign_id) or {})
        first = first_day_to_read(campaign, self.config, campaign_state)
        if first is None:
            with self._lock:
                self.stats["settled" if campaign_state.get("settled") else "idle"] += 1
            return
        if covered_through(first, self.config, campaign_state) is None:
            campaign_state = {}  # read afresh from the first day: the old span no longer says what was read
        last = self.config.last_date
        start = first
        narrowed: int | None = None  # this campaign's width after the server rejected wider windows
        splits = 0
        while start <= last:
            if self._cancelled.is_set():
                raise _Cancelled
            width = min(self.config.window_size_days, self._max_window_days, narrowed or MAX_WINDOW_DAYS)
            window = Window(campaign.campaign_id, start, window_end(start, last, width))
            try:
                progress = self._read_window(window)
            except SoundlinkError as error:
                if splits < MAX_WINDOW_SPLITS and _rejected_as_too_wide(error, window):
                    splits += 1
                    narrowed = window.days // 2
                    self._log(
                        "WARN",
                        f"Soundlink rejected {window} as too wide (400 invalid_query_parameter, requestId "
                        f"{error.request_id}); retrying with windows of {narrowed} days.",
                    )
                    continue
                raise
            if narrowed is not None:
                with self._lock:  # the narrower width worked: every campaign uses it from now on
                    self._max_window_days = min(self._max_window_days, narrowed)
            self._checkpoint(campaign, campaign_state, window, progress)
            if campaign_state.get("settled"):
                return  # it ended long enough ago: later windows cannot hold a row
            start = window.end + timedelta(days=1)

    def _checkpoint(
        self, campaign: Campaign, campaign_state: dict[str, Any], window: Window, progress: _WindowProgress
    ) -> None:
        """Record a complete window in the campaign's state and queue it after the window's records."""
        covered_from = _iso_date(campaign_state.get("from"))
        if covered_from is None or window.start < covered_from:
            campaign_state["from"] = window.start.isoformat()
        campaign_state["through"] = window.end.isoformat()
        if self.config.engagement_context:
            campaign_state["engagement_context"] = self.config.engagement_context
        else:
            campaign_state.pop("engagement_context", None)
        if progress.last_date is not None:
            campaign_state["has_rows"] = True
            if progress.last_date >= (campaign_state.get("report_date") or ""):
                campaign_state["report_date"] = progress.last_date
            if progress.ended_since is None:
                campaign_state.pop("ended_on", None)  # its latest rows are not `ended`
            elif progress.saw_not_ended or not campaign_state.get("ended_on"):
                campaign_state["ended_on"] = progress.ended_since
        if settled(campaign, campaign_state):
            campaign_state["settled"] = True
            campaign_state["updated_at"] = campaign.updated_at
        else:
            campaign_state.pop("settled", None)
            campaign_state.pop("updated_at", None)
        self._put(_Checkpoint(campaign.campaign_id, dict(campaign_state), progress.rows_emitted))

    def _state_message(self, record_count: int) -> bytes:
        with self._lock:
            campaigns = {k: dict(v) for k, v in self._state.items()}
        stream_state = {"state_version": STATE_VERSION, "campaigns": campaigns}
        return protocol.state(protocol.ENGAGEMENT_STREAM, stream_state, record_count)

    # -- one window: fetch, stream, validate, resume after a cut ----------------------------------------

    def _read_window(self, window: Window) -> _WindowProgress:
        params = {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()}
        if self.config.engagement_context:
            params["engagementContext"] = self.config.engagement_context
        path = export_path(window.campaign_id)
        progress = _WindowProgress()
        started = time.monotonic()
        for attempt in range(1, MAX_BODY_ATTEMPTS + 1):
            with self._lock:
                self.stats["export_requests"] += 1
            try:
                response = self.client.get(path, params, str(window), "metrics:read", NDJSON, stream=True)
            except SoundlinkError as error:
                error.rows_emitted = progress.rows_emitted
                raise
            try:
                self._stream_body(response, window, progress)
                break
            except _BodyCut as cut:
                progress.resume_date, progress.resume_keys = progress.last_date, frozenset(progress.day_keys)
                if attempt == MAX_BODY_ATTEMPTS:
                    raise SoundlinkError(
                        f"The connection was cut mid-body {attempt} times on {window} ({cut}; requestId "
                        f"{progress.request_id or 'not given'}). Nothing after the last complete window was "
                        "checkpointed; the next sync resumes there.",
                        TRANSIENT_ERROR,
                        progress.request_id,
                    ) from None
                delay = self._backoff_base_s * attempt
                self._log(
                    "WARN",
                    f"Connection cut mid-body on {window} after {progress.rows_emitted} rows ({cut}); "
                    f"fetching the window again in {delay:.1f} s and resuming after the last row emitted.",
                )
                self._wait(delay)
            finally:
                response.close()
        self._log(
            "INFO",
            f"{window}: {progress.rows_emitted} rows in {time.monotonic() - started:.1f} s "
            f"(requestId {progress.request_id or 'not given'}).",
        )
        return progress

    def _stream_body(self, response: requests.Response, window: Window, progress: _WindowProgress) -> None:
        """Emit the body's rows not emitted yet; raise _BodyCut if the connection breaks mid-body."""
        progress.request_id = response.headers.get("X-Request-Id") or progress.request_id
        where = f"{window} (requestId {progress.request_id or 'not given'})"
        if response.status_code != 200:
            raise SoundlinkError(
                f"{where}: Soundlink answered HTTP {response.status_code} instead of 200 with the export.",
                SYSTEM_ERROR,
                progress.request_id,
                response.status_code,
            )
        announced = _row_count(response.headers.get("X-Row-Count"))
        if announced is None:
            self._log("WARN", f"{window}: no X-Row-Count header; the body's completeness cannot be checked.")
        else:
            self._put(protocol.estimate(protocol.ENGAGEMENT_STREAM, announced))
        chunks = response.raw.stream(CHUNK_BYTES, decode_content=True)
        pending = b""
        line_no = 0
        rows_in_body = 0
        while True:
            try:
                chunk = next(chunks, None)
            except _BODY_CUT_ERRORS as exc:
                raise _BodyCut(type(exc).__name__) from None
            if chunk is None:
                lines = [pending] if pending.strip() else []
            else:
                if b"\r" in chunk:  # CRLF line ends: a raw CR cannot occur inside a JSON value
                    chunk = chunk.replace(b"\r", b"")
                lines = chunk.split(b"\n")
                lines[0] = pending + lines[0]  # join the carried partial line, not the whole chunk
                pending = lines.pop()
                if len(pending) > MAX_LINE_BYTES:
                    raise self._bad_row(where, line_no + len(lines) + 1, "a line is longer than 64 MiB")
            emit, line_no, rows_in_body = self._validate_lines(
                lines, window, progress, line_no, rows_in_body, where
            )
            if emit:
                progress.rows_emitted += len(emit)
                self._put(_Records(protocol.record_chunk(self._prefix, self._middle, emit), len(emit)))
            if chunk is None:
                break
        if announced is not None and rows_in_body != announced:
            raise SoundlinkError(
                f"{where}: the body held {rows_in_body} rows but X-Row-Count announced {announced}; the "
                "export is incomplete or inconsistent. This window was not checkpointed: "
                "the next sync re-reads it.",
                TRANSIENT_ERROR,
                progress.request_id,
            )

    def _validate_lines(
        self,
        lines: list[bytes],
        window: Window,
        progress: _WindowProgress,
        line_no: int,
        rows_in_body: int,
        where: str,
    ) -> tuple[list[bytes], int, int]:
        """The hot loop: parse each line once, check it, keep its raw bytes for the RECORD envelope."""
        loads = orjson.loads
        first_day, last_day = window.start.isoformat(), window.end.isoformat()
        resume_date, resume_keys = progress.resume_date, progress.resume_keys
        last_date, day_keys = progress.last_date, progress.day_keys
        emit: list[bytes] = []
        append = emit.append
        for line in lines:
            line_no += 1
            try:
                row = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue  # a blank line is not a row
                raise self._bad_row(where, line_no, f"it is not valid JSON ({exc})") from None
            try:
                day = row["report_date"]
                context, country, track = (
                    row["engagement_context"],
                    row["country_code"],
                    row["engaged_spotify_track_id"],
                )
                if (
                    day is None
                    or context is None
                    or country is None
                    or track is None
                    or row["provider"] is None
                    or row["account_id"] is None
                    or row["campaign_id"] is None
                ):
                    raise KeyError(next(f for f in PRIMARY_KEY if row.get(f) is None))
            except KeyError as exc:
                raise self._bad_row(
                    where, line_no, f"primary-key field {exc.args[0]} is missing or null"
                ) from None
            except TypeError:
                raise self._bad_row(where, line_no, "it is not a JSON object") from None
            if row.get("schema_version") != "1.0":
                raise self._bad_row(
                    where,
                    line_no,
                    f"schema_version is {row.get('schema_version')!r}, this connector reads '1.0'",
                )
            rows_in_body += 1
            key = (context, country, track)
            if resume_date is not None:
                if not isinstance(day, str):
                    raise self._bad_row(where, line_no, f"report_date {day!r} is not a date")
                try:
                    emitted_before = day < resume_date or (day == resume_date and key in resume_keys)
                except TypeError:
                    raise self._bad_row(where, line_no, "a primary-key field is not a scalar") from None
                if emitted_before:
                    continue  # emitted before the connection was cut
            if day != last_date:
                if not (isinstance(day, str) and first_day <= day <= last_day):
                    raise self._bad_row(
                        where, line_no, f"report_date {day!r} is outside the requested window"
                    )
                if last_date is not None and day < last_date:
                    raise self._bad_row(
                        where, line_no, f"report_date {day} comes after {last_date}: out of order"
                    )
                last_date = day
                day_keys = set()
                if row.get("status") == "ended":
                    if progress.ended_since is None:
                        progress.ended_since = day
                else:
                    progress.ended_since = None
                    progress.saw_not_ended = True
            seen = len(day_keys)
            try:
                day_keys.add(key)  # one hash per row: a repeat leaves the set's size unchanged
            except TypeError:
                raise self._bad_row(where, line_no, "a primary-key field is not a scalar") from None
            if len(day_keys) == seen:
                raise self._bad_row(where, line_no, f"it repeats the primary key of an earlier row of {day}")
            append(line)
        progress.last_date, progress.day_keys = last_date, day_keys
        return emit, line_no, rows_in_body

    @staticmethod
    def _bad_row(where: str, line_no: int, what: str) -> SoundlinkError:
        return SoundlinkError(
            f"{where}, line {line_no}: {what}. The sync stopped so that no row is skipped in silence; "
            "this window was not checkpointed and the next sync re-reads it.",
            SYSTEM_ERROR,
        )

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
        that stopped must not keep workers waiting for up to an hour."""
        if self._cancelled.wait(seconds):
            raise _Cancelled

    def _log(self, level: str, message: str) -> None:
        if level == "DEBUG" and not self._debug:
            return
        line = protocol.log(level, message.replace(self.config.api_key, "****"))
        if self._early_logs is not None:
            self._early_logs.append(line)  # nobody drains the queue yet: do not block on it
            return
        with contextlib.suppress(_Cancelled):
            self._put(line)


def _rejected_as_too_wide(error: SoundlinkError, window: Window) -> bool:
    """Newer API versions answer 400 invalid_query_parameter to a window they find too wide. Halving is
    safe only while none of the window's rows was emitted (else they would be emitted again)."""
    return (
        error.status == 400
        and error.code == "invalid_query_parameter"
        and window.days > 1
        and not error.rows_emitted
    )


def resolve_campaigns(client: SoundlinkClient, config: SoundlinkConfig, log: Logger) -> list[Campaign]:
    """The campaigns to sync: all the key can list, or the configured campaign_ids (each one checked)."""
    wanted = config.campaign_ids
    try:
        listed = _list_campaigns(client)
    except SoundlinkError as error:
        if error.code == "insufficient_scope" and wanted and config.start_date:
            log(
                "WARN",
                "The key cannot list campaigns (no campaigns:read); syncing the configured campaign_ids "
                f"from start_date {config.start_date.isoformat()}.",
            )
            return [Campaign(cid, None) for cid in wanted]
        raise
    if not wanted:
        return list({c.campaign_id: c for c in listed}.values())  # a page drift could repeat one
    by_id = {c.campaign_id: c for c in listed}
    # An id the listing lacks gets its own lookup, whose 404 campaign_not_found names it.
    return [by_id.get(cid) or _campaign(client, cid) for cid in wanted]


def _list_campaigns(client: SoundlinkClient) -> list[Campaign]:
    campaigns: list[Campaign] = []
    page = 1
    while True:
        params = {"page": page, "pageSize": 100, "sortBy": "createdAt", "sortOrder": "asc"}
        body = get_json(client, "/v1/campaigns", params, f"the campaign list (page {page})", "campaigns:read")
        data = body.get("data") or {}
        campaigns.extend(Campaign.from_api(item) for item in data.get("items") or [])
        if page >= ((data.get("pagination") or {}).get("totalPages") or 0):
            return campaigns
        page += 1


def _campaign(client: SoundlinkClient, campaign_id: str) -> Campaign:
    path = f"/v1/campaigns/{quote(campaign_id, safe='')}"
    return Campaign.from_api(
        get_json(client, path, None, f"campaign {campaign_id}", "campaigns:read")["data"]
    )


def get_json(
    client: SoundlinkClient, path: str, params: dict[str, Any] | None, what: str, scope: str
) -> dict[str, Any]:
    response = client.get(path, params, what, scope)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SoundlinkError(
            f"Soundlink answered {what} with a body that is not the documented JSON.", SYSTEM_ERROR
        )
    return body


def export_path(campaign_id: str) -> str:
    return f"/v1/campaigns/{quote(campaign_id, safe='')}/metrics/engagement/export"


class _Cancelled(Exception):
    pass


def _row_count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _utc_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _iso_date(value[:10])
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def check_connection(config: SoundlinkConfig, log: Logger) -> None:
    """Cheap calls that prove the key, its scopes and the configured campaigns; raises SoundlinkError.

    /v1/ping proves the key; resolving campaigns proves campaigns:read (or that campaign_ids and
    start_date make it unnecessary) and that every configured campaign exists; a one-day export of the
    first campaign, closed before its body is read, proves metrics:read.
    """
    client = SoundlinkClient(config, log)
    get_json(client, "/v1/ping", None, "the connection check (/v1/ping)", "")
    campaigns = resolve_campaigns(client, config, log)
    if campaigns:
        today = config.today.isoformat()
        params = {"startDate": today, "endDate": today}
        what = f"campaign {campaigns[0].campaign_id}, window {today}..{today} (connection check)"
        client.get(
            export_path(campaigns[0].campaign_id), params, what, "metrics:read", NDJSON, stream=True
        ).close()


def stream_state_from(state: Any) -> dict[str, Any] | None:
    """This stream's state from what Airbyte passes: a list of STATE messages, or a legacy dict.

    When the list holds several messages for the stream (a saved stdout of a sync), the last one is
    the newest checkpoint and wins, as it does in the CDK's ConnectorStateManager.
    """
    if isinstance(state, dict):
        state = state.get(protocol.ENGAGEMENT_STREAM) if "campaigns" not in state else state
        return state if isinstance(state, dict) else None
    found = None
    for message in state or []:
        if not isinstance(message, dict):
            continue
        stream = message.get("stream") or {}
        if (stream.get("stream_descriptor") or {}).get("name") == protocol.ENGAGEMENT_STREAM:
            found = stream.get("stream_state")
    return found
