"""Airbyte protocol messages as bytes, built without the CDK's dataclasses and serializer.

The record path splices each validated JSONL line into the RECORD envelope as it arrived, so a row is
parsed once (to validate it) and never re-serialized. Top-level nulls are therefore KEPT (the CDK's
serializer would drop them); the protocol accepts both and destinations treat an explicit null and an
absent nullable field the same. unit_tests/test_protocol.py checks every shape against the protocol models.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import orjson

ENGAGEMENT_STREAM = "campaign_engagement_daily"
CAMPAIGNS_STREAM = "campaigns"
STREAMS = (ENGAGEMENT_STREAM, CAMPAIGNS_STREAM)
Logger = Callable[[str, str], None]  # (level, message): how every piece hands a LOG line to its caller


def now_ms() -> int:
    return int(time.time() * 1000)


def record_envelope(stream: str) -> tuple[bytes, bytes]:
    """The bytes before and after a record's data; emitted_at is fixed per chunk by the caller."""
    prefix = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(stream) + b',"data":'
    return prefix, b',"emitted_at":'


def record_chunk(prefix: bytes, middle: bytes, lines: list[bytes]) -> bytes:
    """One RECORD message per line, newline-terminated, in a single join."""
    suffix = middle + str(now_ms()).encode() + b"}}\n"
    return prefix + (suffix + prefix).join(lines) + suffix


def state(stream: str, stream_state: dict[str, Any], record_count: int) -> bytes:
    return _line(
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": stream}, "stream_state": stream_state},
                "sourceStats": {"recordCount": float(record_count)},
            },
        }
    )


def log(level: str, message: str) -> bytes:
    return _line({"type": "LOG", "log": {"level": level, "message": message}})


def stream_status(stream: str, status: str) -> bytes:
    return _line(
        {
            "type": "TRACE",
            "trace": {
                "type": "STREAM_STATUS",
                "emitted_at": float(now_ms()),
                "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
            },
        }
    )


def estimate(stream: str, row_estimate: int) -> bytes:
    return _line(
        {
            "type": "TRACE",
            "trace": {
                "type": "ESTIMATE",
                "emitted_at": float(now_ms()),
                "estimate": {"name": stream, "type": "STREAM", "row_estimate": row_estimate},
            },
        }
    )


def error_trace(
    message: str, failure_type: str, exc: BaseException | None = None, stream: str | None = None
) -> bytes:
    error: dict[str, Any] = {"message": message, "internal_message": message, "failure_type": failure_type}
    if exc is not None and not hasattr(exc, "failure_type"):
        error["stack_trace"] = "".join(traceback.format_exception(exc))
    if stream:
        error["stream_descriptor"] = {"name": stream}
    return _line({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": float(now_ms()), "error": error}})


def _line(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"
