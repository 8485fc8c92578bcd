"""The command's input files (config, catalog, state), read with errors a person can act on, and the
secrets they hold, kept out of everything the connector prints.

Shared by `read` (read_command.py) and the CDK's verbs (run.py), so a missing or broken file reads the
same on every command, and never as a traceback. Plain Python, no CDK import: the fast path uses it.
"""

from __future__ import annotations

from typing import Any

import orjson

from source_soundlink import protocol
from source_soundlink.config import ConfigError

FOREIGN_STATE = (
    "The state holds stream {stream}, which this source does not have (it has {streams}); "
    "that part of the state is ignored."
)


def load_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return orjson.loads(handle.read())
    except OSError as error:
        raise ConfigError(f"Cannot read the {what} file {path}: {error.strerror}.") from None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"The {what} file {path} is not valid JSON: {error}.") from None


def load_state(path: str) -> Any:
    """The --state file: JSON, or JSON lines (the STATE lines of an earlier sync's output, as printed)."""
    try:
        return load_json(path, "state")
    except ConfigError:
        try:
            with open(path, "rb") as handle:
                return [orjson.loads(line) for line in handle if line.strip()]
        except (OSError, orjson.JSONDecodeError):
            pass
        raise


def foreign_state_warnings(raw_state: Any) -> list[str]:
    """One warning per stream a per-stream state names that this source does not have (another
    connector's state, or a renamed stream): ignoring it silently would look like a lost state."""
    names: list[str] = []
    for entry in raw_state if isinstance(raw_state, list) else [raw_state]:
        message = entry.get("state") if isinstance(entry, dict) and entry.get("type") == "STATE" else entry
        stream = message.get("stream") if isinstance(message, dict) else None
        descriptor = stream.get("stream_descriptor") if isinstance(stream, dict) else None
        name = descriptor.get("name") if isinstance(descriptor, dict) else None
        if isinstance(name, str) and name not in protocol.STREAMS and name not in names:
            names.append(name)
    streams = ", ".join(protocol.STREAMS)
    return [FOREIGN_STATE.format(stream=name, streams=streams) for name in names]


def secrets(raw_config: Any) -> list[str]:
    """The config's secret values: the spec's airbyte_secret fields (a unit test holds the list equal)."""
    value = raw_config.get("api_key") if isinstance(raw_config, dict) else None
    return [value, value.strip()] if isinstance(value, str) and value.strip() else []


def mask(line: bytes, *values: str) -> bytes:
    """Mask secret values in a serialized message, stack trace included: as JSON escapes them, and as an
    exception's repr would show them (then JSON-escaped)."""
    for value in values:
        if value:
            for form in (value, repr(value)[1:-1]):
                line = line.replace(orjson.dumps(form)[1:-1], b"****")
    return line
