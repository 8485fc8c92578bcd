"""`source-soundlink read`: the sync's hot path, without the CDK's per-record machinery.

Engagement rows go from the socket to stdout as bytes (engagement.EngagementExport). airbyte-cdk (about
1 s and 78 MiB to import) is loaded only when the catalog also selects `campaigns`, the one stream the
CDK reads from the manifest.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, BinaryIO

import orjson

from source_soundlink import protocol
from source_soundlink.clock import SYSTEM_CLOCK, Clock
from source_soundlink.config import ConfigError, SoundlinkConfig
from source_soundlink.engagement import EngagementExport, SyncFailed, read_state
from source_soundlink.errors import CONFIG_ERROR, SYSTEM_ERROR

STREAMS = protocol.STREAMS
RECORD_PREFIX = b'{"type":"RECORD"'


def main(argv: list[str], out: BinaryIO | None = None, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run `read` with `argv`, writing messages to `out`; `clock` times every wait (tests fake it)."""
    out = out or sys.stdout.buffer
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
        catalog = _load_json(args.catalog, "catalog")
        if not isinstance(catalog, dict) or not all(
            isinstance(e, dict) for e in catalog.get("streams") or []
        ):
            raise ConfigError(f"The catalog file {args.catalog} is not a ConfiguredAirbyteCatalog object.")
        selected = {_stream_name(entry): entry for entry in (catalog.get("streams") or [])}
        unknown = sorted(set(selected) - set(STREAMS))
        if unknown:
            raise ConfigError(
                f"The catalog selects unknown streams {unknown}; this source has {list(STREAMS)}."
            )
        engagement = selected.get(protocol.ENGAGEMENT_STREAM)
        incremental = bool(engagement) and engagement.get("sync_mode") == "incremental"
        stream_state = read_state(_load_state(args.state)) if args.state and incremental else None
    except ConfigError as error:
        out.write(_mask_line(protocol.error_trace(str(error), CONFIG_ERROR), secret))
        return 1

    campaigns_ok = True
    try:
        if protocol.CAMPAIGNS_STREAM in selected:
            # A failed campaigns stream does not stop the engagement stream (a key without campaigns:read
            # can still export configured campaign_ids); the sync still fails at the end.
            campaigns_ok = _read_campaigns_with_cdk(raw_config, catalog, out)
        if engagement:
            export = EngagementExport(config, stream_state, debug=args.debug, clock=clock)
            for chunk in export.messages():
                out.write(chunk)
                if not chunk.startswith(RECORD_PREFIX):
                    out.flush()  # STATE, logs (a budget wait's too) and traces reach the platform at once
    except SyncFailed as failure:
        trace = protocol.error_trace(str(failure), failure.failure_type, stream=protocol.ENGAGEMENT_STREAM)
        out.write(_mask_line(trace, secret))
        return 1
    except Exception as exc:  # never a silent crash: a TRACE error Airbyte can show, the key masked
        out.write(_mask_line(protocol.error_trace(f"Unexpected error: {exc!r}", SYSTEM_ERROR, exc), secret))
        return 1
    finally:
        out.flush()
    return 0 if campaigns_ok else 1


def _read_campaigns_with_cdk(raw_config: dict[str, Any], raw_catalog: dict[str, Any], out: BinaryIO) -> bool:
    """Read `campaigns` through the CDK; False if it failed (the CDK already emitted its error trace)."""
    from airbyte_cdk.logger import init_logger
    from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer
    from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from source_soundlink.source import SourceSoundlink

    secret = raw_config["api_key"]
    update_secrets([secret])  # the CDK's log formatter masks it too
    streams = [s for s in raw_catalog["streams"] if _stream_name(s) == protocol.CAMPAIGNS_STREAM]
    catalog = ConfiguredAirbyteCatalogSerializer.load({**raw_catalog, "streams": streams})
    source = SourceSoundlink(catalog, raw_config, None)
    try:
        for message in source.read(init_logger("airbyte"), raw_config, catalog, []):
            out.write(_mask_line(orjson.dumps(AirbyteMessageSerializer.dump(message)), secret) + b"\n")
    except AirbyteTracedException:
        return False
    finally:
        out.flush()
    return True


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
