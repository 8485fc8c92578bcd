"""`source-soundlink read`: the sync's hot path, without the CDK's per-record machinery.

Both streams are read by engagement.EngagementExport (the `campaigns` records come from the listing it
makes anyway), whose messages go to stdout as bytes; airbyte-cdk (about 1 s and 78 MiB to import) is never
loaded. SIGTERM and SIGINT cancel the sync gracefully (cancel.py): a last STATE, then exit 143 or 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, BinaryIO

import orjson

from source_soundlink import cancel, protocol
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.engagement import EngagementExport, SyncFailed, read_state
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR

STREAMS = protocol.STREAMS
RECORD_PREFIX = b'{"type":"RECORD"'


class _Stdout:
    """stdout through os.write, looping until every byte is out. CPython's BufferedWriter can drop the rest
    of a write to a full pipe that a signal interrupts part-way (write(2) returns a partial count), which a
    SIGTERM handler makes likely: half a RECORD line, then the next message (reproduced on 3.11)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)

    def flush(self) -> None:
        pass  # nothing is buffered


def main(argv: list[str], out: BinaryIO | None = None, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run `read` with `argv`, writing messages to `out`; `clock` times every wait (tests fake it)."""
    if out is None:
        sys.stdout.flush()
        out = _Stdout(sys.stdout.fileno())  # type: ignore[assignment]
    parser = argparse.ArgumentParser(prog="source-soundlink read")
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--state")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    secret = ""
    try:
        raw_config = _load_json(args.config, "config")
        key = raw_config.get("api_key") if isinstance(raw_config, dict) else None
        secret = key if isinstance(key, str) else ""
        config = SoundlinkConfig.from_mapping(raw_config)
        selected = _selected_streams(args.catalog)
        engagement = selected.get(protocol.ENGAGEMENT_STREAM)
        full_refresh = bool(engagement) and engagement.get("sync_mode") != "incremental"
        # A full refresh reads the state too: a retried attempt resumes from its failed attempt's state.
        stream_state = read_state(_load_state(args.state)) if args.state and engagement else None
    except ConfigError as error:
        out.write(_mask_line(protocol.error_trace(str(error), CONFIG_ERROR), secret))
        return 1
    if not selected:
        return 0

    token = cancel.CancelToken()
    restore = cancel.install(token)  # from here on, SIGTERM/SIGINT end the sync with a last STATE
    streams = tuple(selected)
    export = EngagementExport(
        config,
        stream_state,
        args.debug,
        clock=clock,
        streams=streams,
        full_refresh_mode=full_refresh,
        cancel=token,
    )
    try:
        for chunk in export.messages():
            out.write(chunk)
            if not chunk.startswith(RECORD_PREFIX):
                out.flush()  # STATE, logs (a budget wait's too) and traces reach the platform at once
    except SyncFailed as failure:
        trace = protocol.error_trace(str(failure), failure.failure_type, stream=failure.stream)
        out.write(_mask_line(trace, secret))
        return 1
    except Exception as exc:  # never a silent crash: a TRACE error Airbyte can show, the key masked
        out.write(_mask_line(protocol.error_trace(f"Unexpected error: {exc!r}", SYSTEM_ERROR, exc), secret))
        return 1
    finally:
        out.flush()
        restore()
    if export.cancelled:
        code = cancel.exit_code(export.cancelled)
        if export.abandoned:
            os._exit(code)  # a worker still blocked on a socket must not hold the exit past the grace period
        return code
    return 0


def _selected_streams(path: str) -> dict[str, Any]:
    """The catalog's entries by stream name; ConfigError if it is not a catalog of this source's streams."""
    catalog = _load_json(path, "catalog")
    if not isinstance(catalog, dict) or not all(isinstance(e, dict) for e in catalog.get("streams") or []):
        raise ConfigError(f"The catalog file {path} is not a ConfiguredAirbyteCatalog object.")
    selected = {_stream_name(entry): entry for entry in (catalog.get("streams") or [])}
    unknown = sorted(set(selected) - set(STREAMS))
    if unknown:
        raise ConfigError(f"The catalog selects unknown streams {unknown}; this source has {list(STREAMS)}.")
    return selected


def _stream_name(entry: Any) -> str:
    return ((entry or {}).get("stream") or {}).get("name", "")


def _load_state(path: str) -> Any:
    """The --state file: JSON, or JSON lines (the STATE lines of an earlier sync's output, as printed)."""
    try:
        return _load_json(path, "state")
    except ConfigError:
        try:
            with open(path, "rb") as handle:
                return [orjson.loads(line) for line in handle if line.strip()]
        except (OSError, orjson.JSONDecodeError):
            pass
        raise


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return orjson.loads(handle.read())
    except OSError as error:
        raise ConfigError(f"Cannot read the {what} file {path}: {error.strerror}.") from None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"The {what} file {path} is not valid JSON: {error}.") from None


def _mask_line(line: bytes, secret: str) -> bytes:
    """Mask the key in a serialized message, stack trace included: as JSON escapes it, and as an
    exception's repr would show it (then JSON-escaped)."""
    if not secret:
        return line
    for form in (secret, repr(secret)[1:-1]):
        line = line.replace(orjson.dumps(form)[1:-1], b"****")
    return line
