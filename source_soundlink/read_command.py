"""`source-soundlink read`: the sync's hot path, without the CDK's per-record machinery.

Engagement rows go from the socket to stdout as bytes (engagement.EngagementExport). airbyte-cdk (about
1 s and 78 MiB to import) is loaded only when the catalog also selects `campaigns`, the one stream the
CDK reads from the manifest.
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

import orjson

from source_soundlink import network_guard, protocol
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


@dataclass(frozen=True)
class Inputs:
    """What the command was given, checked before any request."""

    raw_config: dict[str, Any]
    config: SoundlinkConfig
    catalog: dict[str, Any]
    selected: dict[str, dict[str, Any]]  # stream name -> configured stream
    stream_state: dict[str, Any] | None
    debug: bool


def main(
    argv: list[str], out: Output | None = None, clock: Clock = SYSTEM_CLOCK, exception_hooks: bool = False
) -> int:
    """Run `read` with `argv`, writing messages to `out`; `clock` times every wait (tests fake it).
    `exception_hooks` (the console script's process, not an in-process caller) turns any error that
    escapes into a TRACE, as the CDK's entrypoint does."""
    parser = argparse.ArgumentParser(prog="source-soundlink read")
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--state")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    secrets: list[str] = []  # filled once the config is read; the output and the hooks mask them
    if exception_hooks:
        _install_exception_hooks(out or sys.stdout.buffer, secrets)
    out = _MaskedOutput(out or sys.stdout.buffer, secrets)
    try:
        inputs = load_inputs(args, out, secrets)
    except ConfigError as error:
        out.write(protocol.error_trace(str(error), CONFIG_ERROR))
        out.flush()
        return 1
    raw_config, catalog, selected = inputs.raw_config, inputs.catalog, inputs.selected
    config, stream_state, debug = inputs.config, inputs.stream_state, inputs.debug
    engagement = selected.get(protocol.ENGAGEMENT_STREAM)

    campaigns_ok = True
    try:
        if protocol.CAMPAIGNS_STREAM in selected:
            # A failed campaigns stream does not stop the engagement stream (a key without campaigns:read
            # can still export configured campaign_ids); the sync still fails at the end.
            campaigns_ok = _read_campaigns_with_cdk(raw_config, catalog, out)
        if engagement:
            export = EngagementExport(config, stream_state, debug=debug, clock=clock)
            for chunk in export.messages():
                out.write(chunk)
                if not chunk.startswith(RECORD_PREFIX):
                    out.flush()  # STATE, logs (a budget wait's too) and traces reach the platform at once
    except SyncFailed as failure:
        trace = protocol.error_trace(str(failure), failure.failure_type, stream=protocol.ENGAGEMENT_STREAM)
        out.write(mask(trace, *secrets))
        return 1
    except Exception as exc:  # never a silent crash: a TRACE error Airbyte can show, the key masked
        out.write(mask(protocol.error_trace(f"Unexpected error: {exc!r}", SYSTEM_ERROR, exc), *secrets))
        return 1
    finally:
        out.flush()
    return 0 if campaigns_ok else 1


def load_inputs(args: argparse.Namespace, out: Output, secrets: list[str]) -> Inputs:
    """Config, catalog and state, each checked before any request; a ConfigError names what is wrong.
    Warnings (unknown config fields, state of streams this source does not have) go to `out`."""
    raw_config = load_json(args.config, "config")
    secrets.extend(secrets_of(raw_config))
    for warning in unknown_field_warnings(raw_config):
        out.write(protocol.log("WARN", warning))
    config = SoundlinkConfig.from_mapping(raw_config)
    network_guard.refuse_in_cloud(config.base_url)  # before any request, as the CDK would in Cloud
    catalog = load_json(args.catalog, "catalog")
    if not isinstance(catalog, dict) or not all(isinstance(e, dict) for e in catalog.get("streams") or []):
        raise ConfigError(f"The catalog file {args.catalog} is not a ConfiguredAirbyteCatalog object.")
    selected = {_stream_name(entry): entry for entry in (catalog.get("streams") or [])}
    unknown = sorted(set(selected) - set(STREAMS))
    if unknown:
        raise ConfigError(f"The catalog selects unknown streams {unknown}; this source has {list(STREAMS)}.")
    engagement = selected.get(protocol.ENGAGEMENT_STREAM)
    incremental = bool(engagement) and engagement.get("sync_mode") == "incremental"
    raw_state = load_state(args.state) if args.state else None
    for warning in foreign_state_warnings(raw_state):
        out.write(protocol.log("WARN", warning))
    stream_state = read_state(raw_state) if raw_state is not None and incremental else None
    debug = args.debug or is_platform_debug_enabled()
    return Inputs(raw_config, config, catalog, selected, stream_state, debug)


def _read_campaigns_with_cdk(raw_config: dict[str, Any], raw_catalog: dict[str, Any], out: Output) -> bool:
    """Read `campaigns` through the CDK; False if it failed (the CDK already emitted its error trace)."""
    from airbyte_cdk.logger import init_logger
    from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer
    from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from source_soundlink.source import SourceSoundlink

    secret = raw_config["api_key"]
    update_secrets([secret])  # the CDK's log formatter masks it too
    if network_guard.is_cloud():
        # The CDK's requests (which follow redirects) get the CDK's own Cloud filter, as under its entrypoint.
        from airbyte_cdk.entrypoint import _init_internal_request_filter

        _init_internal_request_filter()
    streams = [s for s in raw_catalog["streams"] if _stream_name(s) == protocol.CAMPAIGNS_STREAM]
    catalog = ConfiguredAirbyteCatalogSerializer.load({**raw_catalog, "streams": streams})
    source = SourceSoundlink(catalog, raw_config, None)
    try:
        for message in source.read(init_logger("airbyte"), raw_config, catalog, []):
            out.write(mask(orjson.dumps(AirbyteMessageSerializer.dump(message)), secret) + b"\n")
    except AirbyteTracedException:
        return False
    finally:
        out.flush()
    return True


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
