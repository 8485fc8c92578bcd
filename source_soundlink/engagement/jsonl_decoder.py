"""The JSONL decoder: an export body's bytes in, validated RECORD bytes out, each row parsed once.

Why not the CDK's JsonlDecoder (CompositeRawDecoder + JsonLineParser): it skips a line that is not JSON
with a warning and re-serializes every row. Here every line is parsed once with orjson to validate it
(primary key, the campaign exported, schema_version 1.x, plain dates inside the window and in order, no
repeated key) and its bytes are spliced into the RECORD envelope as they arrived; anything that would lose
or repeat a row fails loudly.
Rows already emitted before a cut body was fetched again (window_reader.py) are skipped, using the
WindowProgress the reader carries from one fetch to the next.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from datetime import date
from itertools import chain
from typing import Any

import orjson

from source_soundlink import protocol
from source_soundlink.engagement.window import Window, WindowProgress
from source_soundlink.errors import SYSTEM_ERROR, SoundlinkError
from source_soundlink.protocol import Logger

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
# Soundlink's row schema; its minor versions 1.x are additive (fields not known here are kept).
SCHEMA_VERSION = "1.0"
_READABLE_SCHEMA = re.compile(r"1\.\d+")


class JsonlDecoder:
    """Shared by every worker: a body's state lives in its WindowProgress, none in the decoder (only the
    minor schema versions the sync has warned about). `emit_records` takes RECORD bytes, their row count,
    the window and its progress including them (a full refresh records how far a window's emitted rows
    reach); `log` gets the warning for a schema_version 1.x other than 1.0, once per sync and version."""

    def __init__(
        self,
        emit_records: Callable[[bytes, int, Window, WindowProgress], None],
        log: Logger | None = None,
    ) -> None:
        self._emit_records = emit_records
        self._log = log
        self._prefix, self._middle = protocol.record_envelope(protocol.ENGAGEMENT_STREAM)
        self._minor_versions: set[str] = set()
        self._versions_lock = threading.Lock()

    def decode(self, chunks: Iterable[bytes], window: Window, progress: WindowProgress, where: str) -> int:
        """Emit the body's rows not emitted yet, chunk by chunk; return how many rows the body held.

        Exceptions of `chunks` (a cut connection) pass through; rows emitted before them are counted in
        `progress`, so the reader can fetch the window again and resume."""
        pending = b""
        line_no = 0
        rows_in_body = 0
        for chunk in chain(chunks, (None,)):  # None: the body ended
            if chunk is None:
                lines = [pending] if pending.strip() else []  # a last line without its newline
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
                records = protocol.record_chunk(self._prefix, self._middle, emit)
                self._emit_records(records, len(emit), window, progress)
        return rows_in_body

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
            if version != schema and (type(version) is not str or version not in minor_versions):
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
                f"schema_version is {repr(version)[:80]}, this connector reads '1.0' and its 1.x versions",
            )
        with self._versions_lock:
            if version in self._minor_versions:
                return
            self._minor_versions.add(version)
        if self._log is not None:
            self._log(
                "WARN",
                f"Soundlink sends rows of schema_version {version!r} (first at {where}, line {line_no}); "
                f"this connector was built for '{SCHEMA_VERSION}' and reads them as 1.x: fields it does not "
                "know are kept, and each row keeps its schema_version.",
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
