"""The window reader: one export window, from request to every row emitted once, or a loud failure.

Why not the CDK's retriever (SimpleRetriever + HttpRequester + a JSONL decoder): it fails the stream when
the connection is cut mid-body (the CDK retries `send` only, not the reading of a streamed body), and it
cannot tell a short body from a complete one. Here a cut body is fetched again (retry_policy.py's
attempts and backoff) and resumed after the rows already emitted, and the rows a body held are checked
against the X-Row-Count Soundlink announced. jsonl_decoder.py turns the bytes into RECORD messages.
Each window announces its X-Row-Count (and Content-Length) as its share of the sync's expected rows,
corrected to the rows it emitted when it ends; the consumer sums the shares into the ESTIMATE (estimate.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests

from source_soundlink.client import SoundlinkClient
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.engagement.campaigns import NDJSON, export_path
from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.window import Window, WindowProgress
from source_soundlink.errors import ROW_COUNT_MISMATCH, SYSTEM_ERROR, TRANSIENT_ERROR, SoundlinkError
from source_soundlink.protocol import Logger
from source_soundlink.retry_policy import BODY_CUT_ERRORS

CHUNK_BYTES = 1 << 18  # 256 KiB reads: small enough that queued output stays a few MiB


class BodyCut(Exception):
    """The connection broke mid-body; the message names the error type."""


class WindowReader:
    """Reads export windows for every worker: `announce` takes a change of the sync's expected rows and
    body bytes (estimate.py), `wait` sleeps between fetches (a cancelled sync interrupts it)."""

    def __init__(
        self,
        client: SoundlinkClient,
        decoder: JsonlDecoder,
        engagement_context: str | None,
        announce: Callable[[int, int], None],
        log: Logger,
        wait: Callable[[float], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._policy = client.policy
        self._decoder = decoder
        self._context = engagement_context
        self._announce = announce
        self._log = log
        self._wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self.requests_sent = 0  # export requests, for the sync's summary

    def read_window(self, window: Window, resume: tuple[str, frozenset[Any]] | None = None) -> WindowProgress:
        """Emit every row of `window` once, re-fetching a cut body; raise SoundlinkError if it cannot.

        `resume` (report_date, keys of that date): rows before that date, or of it with those keys, were
        emitted by an earlier attempt (full_refresh.py) and are skipped, as after a cut body."""
        progress = WindowProgress()
        if resume is not None:
            progress.resume_date, progress.resume_keys = resume
            progress.last_date, progress.day_keys = resume[0], set(resume[1])
        try:
            self._read(window, progress)
        except SoundlinkError as error:
            error.where = error.where or str(window)  # for a summary of many failures (failures.py)
            raise
        finally:  # the window counts for the rows it emitted, whatever it announced
            if progress.rows_emitted != progress.announced:
                self._announce(progress.rows_emitted - progress.announced, 0)
        return progress

    def _read(self, window: Window, progress: WindowProgress) -> None:
        started = self._clock.now()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._fetch(window)
            except SoundlinkError as error:
                error.rows_emitted = progress.rows_emitted
                raise
            try:
                self._read_body(response, window, progress)
                break
            except BodyCut as cut:
                self._after_cut(window, progress, attempt, cut)
            finally:
                response.close()
        self._log(
            "INFO",
            f"{window}: {progress.rows_emitted} rows in {self._clock.now() - started:.1f} s "
            f"(requestId {progress.request_id or 'not given'}).",
        )

    def _fetch(self, window: Window) -> requests.Response:
        params = {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()}
        if self._context:
            params["engagementContext"] = self._context
        with self._lock:
            self.requests_sent += 1
        return self._client.get(
            export_path(window.campaign_id), params, str(window), "metrics:read", NDJSON, stream=True
        )

    def _after_cut(self, window: Window, progress: WindowProgress, attempt: int, cut: BodyCut) -> None:
        """Resume after the rows emitted: wait before the next fetch, or fail after the last attempt."""
        progress.resume_date, progress.resume_keys = progress.last_date, frozenset(progress.day_keys)
        if self._policy.gives_up(attempt):
            raise SoundlinkError(
                f"The connection was cut mid-body {attempt} times on {window} ({cut}; requestId "
                f"{progress.request_id or 'not given'}). Nothing after the last complete window was "
                "checkpointed; the next sync resumes there.",
                TRANSIENT_ERROR,
                progress.request_id,
            ) from None
        delay = self._policy.backoff_s(attempt)
        self._log(
            "WARN",
            f"Connection cut mid-body on {window} after {progress.rows_emitted} rows ({cut}); "
            f"fetching the window again in {delay:.1f} s and resuming after the last row emitted.",
        )
        self._wait(delay)

    def _read_body(self, response: requests.Response, window: Window, progress: WindowProgress) -> None:
        """Emit the body's rows not emitted yet; raise BodyCut if the connection breaks mid-body."""
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
        self._announce_rows(window, response, progress, announced)
        rows_in_body = self._decoder.decode(_chunks(response), window, progress, where)
        if announced is not None and rows_in_body != announced:
            raise SoundlinkError(
                f"{where}: the body held {rows_in_body} rows but X-Row-Count announced {announced}; the "
                "export is incomplete or inconsistent. This window was not checkpointed: "
                "the next sync re-reads it.",
                TRANSIENT_ERROR,
                progress.request_id,
                code=ROW_COUNT_MISMATCH,
            )

    def _announce_rows(
        self, window: Window, response: requests.Response, progress: WindowProgress, announced: int | None
    ) -> None:
        """What the body's X-Row-Count says before its rows arrive: this window's share of the estimate
        (a re-fetch after a cut announces the same rows again: no change)."""
        if announced is None:
            self._log("WARN", f"{window}: no X-Row-Count header; the body's completeness cannot be checked.")
        elif announced != progress.announced:
            identity = response.headers.get("Content-Encoding", "identity") == "identity"
            body_bytes = _row_count(response.headers.get("Content-Length")) if identity else None
            self._announce(announced - progress.announced, body_bytes or 0)
            progress.announced = announced


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body's decoded chunks; a broken connection becomes BodyCut."""
    chunks = response.raw.stream(CHUNK_BYTES, decode_content=True)
    while True:
        try:
            chunk = next(chunks, None)
        except BODY_CUT_ERRORS as exc:
            raise BodyCut(type(exc).__name__) from None
        if chunk is None:
            return
        yield chunk


def _row_count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
