"""`source-soundlink read`: the sync's hot path, without the CDK's per-record machinery.

Both streams are read by engagement.EngagementExport (the `campaigns` records come from the listing it
makes anyway), whose messages go to stdout as bytes; airbyte-cdk (about 1 s and 78 MiB to import) is never
loaded. SIGTERM and SIGINT cancel the sync gracefully (cancel.py): a last STATE, then exit 143 or 130.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from source_soundlink import cancel, network_guard, protocol
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import ConfigError, SoundlinkConfig, unknown_field_warnings
from source_soundlink.engagement import EngagementExport, SyncFailed, read_state
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR, TRANSIENT_ERROR
from source_soundlink.inputs import foreign_state_warnings, load_json, load_state, mask
from source_soundlink.inputs import secrets as secrets_of

STREAMS = protocol.STREAMS
RECORD_PREFIX = b'{"type":"RECORD"'


class Output(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


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


@dataclass(frozen=True)
class Inputs:
    """What the command was given, checked before any request."""

    config: SoundlinkConfig
    selected: dict[str, dict[str, Any]]  # stream name -> configured stream
    stream_state: dict[str, Any] | None
    full_refresh: bool
    debug: bool


def main(
    argv: list[str], out: Output | None = None, clock: Clock = SYSTEM_CLOCK, exception_hooks: bool = False
) -> int:
    """Run `read` with `argv`, writing messages to `out`; `clock` times every wait (tests fake it).
    `exception_hooks` (the console script's process, not an in-process caller) turns any error that
    escapes into a TRACE, as the CDK's entrypoint does."""
    if out is None:
        sys.stdout.flush()
        out = _Stdout(sys.stdout.fileno())
    parser = argparse.ArgumentParser(prog="source-soundlink read")
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--state")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    secrets: list[str] = []  # filled once the config is read; the output and the hooks mask them
    if exception_hooks:
        _install_exception_hooks(out, secrets)
    out = _MaskedOutput(out, secrets)
    try:
        inputs = load_inputs(args, out, secrets)
    except ConfigError as error:
        out.write(protocol.error_trace(str(error), CONFIG_ERROR))
        return 1
    if not inputs.selected:
        return 0

    token = cancel.CancelToken()
    restore = cancel.install(token)  # from here on, SIGTERM/SIGINT end the sync with a last STATE
    export = EngagementExport(
        inputs.config,
        inputs.stream_state,
        inputs.debug,
        clock=clock,
        streams=tuple(inputs.selected),
        full_refresh_mode=inputs.full_refresh,
        cancel=token,
    )
    try:
        for chunk in export.messages():
            out.write(chunk)
            if not chunk.startswith(RECORD_PREFIX):
                out.flush()  # STATE, logs (a budget wait's too) and traces reach the platform at once
    except SyncFailed as failure:
        out.write(protocol.error_trace(str(failure), failure.failure_type, stream=failure.stream))
        return 1
    except Exception as exc:  # never a silent crash: a TRACE error Airbyte can show, the key masked
        out.write(protocol.error_trace(f"Unexpected error: {exc!r}", SYSTEM_ERROR, exc))
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


def load_inputs(args: argparse.Namespace, out: Output, secrets: list[str]) -> Inputs:
    """Config, catalog and state, each checked before any request; a ConfigError names what is wrong.
    Warnings (unknown config fields, state of streams this source does not have) go to `out`."""
    raw_config = load_json(args.config, "config")
    secrets.extend(secrets_of(raw_config))
    for warning in unknown_field_warnings(raw_config):
        out.write(protocol.log("WARN", warning))
    config = SoundlinkConfig.from_mapping(raw_config)
    network_guard.refuse_in_cloud(config.base_url)  # before any request, as the CDK would in Cloud
    selected = _selected_streams(args.catalog)
    engagement = selected.get(protocol.ENGAGEMENT_STREAM)
    full_refresh = bool(engagement) and engagement.get("sync_mode") != "incremental"
    raw_state = load_state(args.state) if args.state else None
    for warning in foreign_state_warnings(raw_state):
        out.write(protocol.log("WARN", warning))
    # A full refresh reads the state too: a retried attempt resumes from its failed attempt's state.
    stream_state = read_state(raw_state) if raw_state is not None and engagement else None
    debug = args.debug or is_platform_debug_enabled()
    return Inputs(config, selected, stream_state, full_refresh, debug)


def _selected_streams(path: str) -> dict[str, Any]:
    """The catalog's entries by stream name; ConfigError if it is not a catalog of this source's streams."""
    catalog = load_json(path, "catalog")
    if not isinstance(catalog, dict) or not all(isinstance(e, dict) for e in catalog.get("streams") or []):
        raise ConfigError(f"The catalog file {path} is not a ConfiguredAirbyteCatalog object.")
    selected = {_stream_name(entry): entry for entry in (catalog.get("streams") or [])}
    unknown = sorted(set(selected) - set(STREAMS))
    if unknown:
        raise ConfigError(f"The catalog selects unknown streams {unknown}; this source has {list(STREAMS)}.")
    return selected


def _stream_name(entry: Any) -> str:
    return ((entry or {}).get("stream") or {}).get("name", "")


def is_platform_debug_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """The platform's debug switch (LOG_LEVEL=debug), as the CDK's entrypoint honours it."""
    return environ.get("LOG_LEVEL", "info").lower() == "debug"


class _MaskedOutput:
    """stdout with the secrets masked in every message but RECORDs (as the CDK's log filter does):
    RECORD chunks, the hot path, pass as they are; the data never holds the key."""

    def __init__(self, out: Output, secrets: list[str]) -> None:
        self._out = out
        self._secrets = secrets

    def write(self, chunk: bytes) -> int:
        if not chunk.startswith(RECORD_PREFIX):
            chunk = mask(chunk, *self._secrets)
        return self._out.write(chunk)

    def flush(self) -> None:
        self._out.flush()


def _install_exception_hooks(out: Output, secrets: list[str]) -> None:
    """What the CDK's init_uncaught_exception_handler does, for the fast path: an error that escapes
    (the main thread's or a worker's) becomes one TRACE error with the key masked, not a traceback."""

    def emit(exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):
            trace = protocol.error_trace("The sync was interrupted.", TRANSIENT_ERROR)
        else:
            trace = protocol.error_trace(f"Unexpected error: {exc!r}", SYSTEM_ERROR, exc)
        with contextlib.suppress(Exception):
            out.write(mask(trace, *secrets))
            out.flush()

    sys.excepthook = lambda _type, exc, _tb: emit(exc)
    threading.excepthook = lambda hook_args: emit(hook_args.exc_value or RuntimeError("thread failed"))
