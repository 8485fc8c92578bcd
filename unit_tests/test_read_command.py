"""What `source-soundlink read` keeps of the CDK entrypoint's duties: warnings about its inputs, secret
masking, an uncaught-exception hook and the platform's debug switch."""

from __future__ import annotations

import io
import json
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink import read_command
from unit_tests import builders as b

CATALOG = {
    "streams": [
        {
            "stream": {"name": b.ENGAGEMENT, "json_schema": {}, "supported_sync_modes": ["incremental"]},
            "sync_mode": "incremental",
            "destination_sync_mode": "append_dedup",
        }
    ]
}


def _read(tmp_path: Path, config: dict[str, Any], state: Any = None) -> tuple[int, list[dict[str, Any]]]:
    files = {"config": config, "catalog": CATALOG, **({"state": state} if state is not None else {})}
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    out = io.BytesIO()
    exit_code = read_command.main([f"--{name}={tmp_path / name}.json" for name in files], out)
    return exit_code, [orjson.loads(line) for line in out.getvalue().splitlines()]


def _one_window(http_mocker: HttpMocker) -> list[dict[str, Any]]:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-02")
    http_mocker.get(b.export_request("camp_a", "2026-03-01", "2026-03-02"), b.jsonl_response(rows))
    return rows


def _logs(messages: list[dict[str, Any]], level: str) -> list[str]:
    return [m["log"]["message"] for m in messages if m["type"] == "LOG" and m["log"]["level"] == level]


@HttpMocker()
def test_given_a_typo_and_state_of_another_stream_when_read_then_both_are_warned_and_the_sync_runs(
    tmp_path: Path, http_mocker: HttpMocker = None
) -> None:
    rows = _one_window(http_mocker)
    users = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {}}}]

    exit_code, messages = _read(tmp_path, b.config(end_date="2026-03-02", start_dat="2026-03-02"), users)

    assert exit_code == 0
    assert _logs(messages, "WARN")[:2] == [
        "start_dat is not a setting of this connector; did you mean start_date?",
        "The state holds stream users, which this source does not have (it has campaign_engagement_daily, "
        "campaigns); that part of the state is ignored.",
    ]
    assert [m["record"]["data"] for m in messages if m["type"] == "RECORD"] == rows  # start_dat ignored


@HttpMocker()
def test_given_the_platform_debug_switch_when_read_then_debug_logs_are_emitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_mocker: HttpMocker = None
) -> None:
    _one_window(http_mocker)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    exit_code, messages = _read(tmp_path, b.config(end_date="2026-03-02"))

    assert exit_code == 0
    assert any(message.startswith("GET /v1/campaigns") for message in _logs(messages, "DEBUG"))


@HttpMocker()
def test_given_no_debug_switch_when_read_then_no_debug_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_mocker: HttpMocker = None
) -> None:
    _one_window(http_mocker)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    exit_code, messages = _read(tmp_path, b.config(end_date="2026-03-02"))
    assert exit_code == 0 and _logs(messages, "DEBUG") == []


def test_given_the_key_in_a_log_when_written_then_it_is_masked_but_records_pass_untouched() -> None:
    out = io.BytesIO()
    masked = read_command._MaskedOutput(out, [b.API_KEY])
    record = b'{"type":"RECORD","record":{"stream":"s","data":{"note":"' + b.API_KEY.encode() + b'"}}}\n'

    masked.write(b'{"type":"LOG","log":{"level":"INFO","message":"key ' + b.API_KEY.encode() + b'"}}\n')
    masked.write(record)

    log, written_record = out.getvalue().splitlines(keepends=True)
    assert b.API_KEY.encode() not in log and b"****" in log
    assert written_record == record  # the hot path is not scanned: data never holds the key


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_given_an_error_escaping_when_hooks_are_installed_then_it_is_one_trace_with_the_key_masked(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    out = io.BytesIO()
    read_command._install_exception_hooks(out, [b.API_KEY])
    error = RuntimeError(f"boom with {b.API_KEY}")

    if where == "main thread":
        sys.excepthook(RuntimeError, error, None)
    else:

        def fail() -> None:
            raise error

        worker = threading.Thread(target=fail)
        worker.start()
        worker.join()

    (line,) = out.getvalue().splitlines()
    trace = orjson.loads(line)["trace"]
    assert trace["type"] == "ERROR"
    assert trace["error"]["failure_type"] == "system_error"
    assert trace["error"]["message"] == "Unexpected error: RuntimeError('boom with ****')"
    assert b.API_KEY.encode() not in line


def test_given_ctrl_c_escaping_when_hooks_are_installed_then_it_is_a_short_transient_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    out = io.BytesIO()
    read_command._install_exception_hooks(out, [])
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    error = orjson.loads(out.getvalue())["trace"]["error"]
    assert (error["failure_type"], "stack_trace" in error) == ("transient_error", False)
