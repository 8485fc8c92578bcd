"""The streaming JSONL decoder: one export window's body, from socket to validated RECORD bytes.

Why not the CDK's JsonlDecoder (CompositeRawDecoder + JsonLineParser): it skips a line that is not JSON
with a warning, cannot tell a short body (X-Row-Count) from a complete one, fails the stream when the
connection is cut mid-body, and re-serializes every row. Here every line is parsed once with orjson to
validate it and its bytes are spliced into the RECORD envelope; a body cut mid-stream is fetched again
and resumed after the rows already emitted; anything that would lose or repeat a row fails loudly.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import requests
import urllib3

from source_soundlink import protocol
from source_soundlink.client import Logger
from source_soundlink.engagement.partitioner import Window
from source_soundlink.errors import SYSTEM_ERROR, TRANSIENT_ERROR, SoundlinkError

CHUNK_BYTES = 1 << 18  # 256 KiB reads: small enough that queued output stays a few MiB
MAX_BODY_ATTEMPTS = 5  # fetches of one window whose body keeps being cut
MAX_LINE_BYTES = 64 << 20  # a "line" this long means the body is not JSONL
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
# Soundlink's row schema; its minor versions 1.x are additive (fields not known here are kept).
SCHEMA_VERSION = "1.0"
_READABLE_SCHEMA = re.compile(r"1\.\d+")


@dataclass
class WindowProgress:
    """What has been emitted for a window so far; survives re-fetches of a cut body.

    Rows come sorted by report_date first; within a day the documented order is not relied on (its
    collation is not specified), so the day's emitted keys are kept to catch repeats and to resume.
    """

    last_date: str | None = None  # report_date of the last row emitted
    day_keys: set[tuple[Any, ...]] = field(default_factory=set)  # keys emitted for last_date
    resume_date: str | None = None  # set after a cut: rows before it, or in resume_keys, were emitted
    resume_keys: frozenset[tuple[Any, ...]] = frozenset()
    rows_emitted: int = 0
    first_date: str | None = None  # report_date of the first row emitted
    ended_since: str | None = None  # first report_date of the trailing run of `ended` rows
    saw_not_ended: bool = False
    request_id: str | None = None


class _BodyCut(Exception):
    pass


class JsonlDecoder:
    """Reads export windows: `fetch` sends the request, `emit_records` takes RECORD bytes and their row
    count, `emit` takes other messages (estimates), `wait` sleeps between attempts (a cancelled sync
    interrupts it)."""

    def __init__(
        self,
        fetch: Callable[[Window], requests.Response],
        emit_records: Callable[[bytes, int], None],
        emit: Callable[[bytes], None],
        log: Logger,
        wait: Callable[[float], None],
        backoff_base_s: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self._emit_records = emit_records
        self._emit = emit
        self._log = log
        self._wait = wait
        self._backoff_base_s = backoff_base_s
        self._prefix, self._middle = protocol.record_envelope(protocol.ENGAGEMENT_STREAM)
        # The 1.x versions other than 1.0 seen this sync, each warned about once.
        self._minor_versions: set[str] = set()
        self._versions_lock = threading.Lock()

    def read_window(self, window: Window) -> WindowProgress:
        """Emit every row of `window` once, re-fetching a cut body; raise SoundlinkError if it cannot."""
        progress = WindowProgress()
        started = time.monotonic()
        for attempt in range(1, MAX_BODY_ATTEMPTS + 1):
            try:
                response = self._fetch(window)
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

    def _stream_body(self, response: requests.Response, window: Window, progress: WindowProgress) -> None:
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
            self._emit(protocol.estimate(protocol.ENGAGEMENT_STREAM, announced))
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
                self._emit_records(protocol.record_chunk(self._prefix, self._middle, emit), len(emit))
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
        progress: WindowProgress,
        line_no: int,
        rows_in_body: int,
        where: str,
    ) -> tuple[list[bytes], int, int]:
        """The hot loop: parse each line once, check it, keep its raw bytes for the RECORD envelope."""
        loads = orjson.loads
        campaign_id, schema, minor_versions = window.campaign_id, SCHEMA_VERSION, self._minor_versions
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
                    or row["campaign_id"] != campaign_id
                ):
                    raise self._bad_row(where, line_no, _key_problem(row, campaign_id))
            except KeyError as exc:
                raise self._bad_row(
                    where, line_no, f"primary-key field {exc.args[0]} is missing or null"
                ) from None
            except TypeError:
                raise self._bad_row(where, line_no, "it is not a JSON object") from None
            version = row.get("schema_version")
            if version != schema and version not in minor_versions:
                self._minor_version(version, where, line_no)
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
            if day != last_date:  # the date is checked once per day: it becomes the state's report_date
                if not _plain_date(day):
                    raise self._bad_row(where, line_no, f"report_date {day!r} is not a YYYY-MM-DD date")
                if not first_day <= day <= last_day:
                    raise self._bad_row(
                        where, line_no, f"report_date {day!r} is outside the requested window"
                    )
                if last_date is not None and day < last_date:
                    raise self._bad_row(
                        where, line_no, f"report_date {day} comes after {last_date}: out of order"
                    )
                if last_date is None:
                    progress.first_date = day
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

    def _minor_version(self, version: Any, where: str, line_no: int) -> None:
        """A row's schema_version other than 1.0: a 1.x is read, with one warning per sync for each such
        version; anything else (2.x, not a string) is refused."""
        if not (isinstance(version, str) and _READABLE_SCHEMA.fullmatch(version)):
            raise self._bad_row(
                where,
                line_no,
                f"schema_version is {version!r}, this connector reads '1.0' and its minor versions 1.x",
            )
        with self._versions_lock:
            if version in self._minor_versions:
                return
            self._minor_versions.add(version)
        self._log(
            "WARN",
            f"Soundlink sends rows of schema_version {version!r} (first at {where}, line {line_no}); this "
            f"connector was built for '{SCHEMA_VERSION}' and reads them as 1.x: fields it does not know are "
            "kept, and each row keeps its schema_version.",
        )

    @staticmethod
    def _bad_row(where: str, line_no: int, what: str) -> SoundlinkError:
        return SoundlinkError(
            f"{where}, line {line_no}: {what}. The sync stopped so that no row is skipped in silence; "
            "this window was not checkpointed and the next sync re-reads it.",
            SYSTEM_ERROR,
        )


def _key_problem(row: dict[str, Any], campaign_id: str) -> str:
    missing = next((f for f in PRIMARY_KEY if row.get(f) is None), None)
    if missing is not None:
        return f"primary-key field {missing} is missing or null"
    return f"campaign_id {row['campaign_id']!r} is not the campaign exported ({campaign_id})"


def _plain_date(day: Any) -> bool:
    """A real YYYY-MM-DD date, as the schema's `format: date` and the state's report_date need."""
    try:
        return isinstance(day, str) and len(day) == 10 and date.fromisoformat(day).isoformat() == day
    except ValueError:
        return False


def _row_count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
