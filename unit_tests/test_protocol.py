"""The fast path writes Airbyte messages as bytes: each one must be what the protocol models accept."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
from airbyte_cdk.models import (
    AirbyteMessageSerializer,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalogSerializer,
    SyncMode,
    Type,
)
from airbyte_cdk.test.entrypoint_wrapper import discover, read
from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink import protocol, read_command
from source_soundlink.engagement import PRIMARY_KEY, stream_state_from
from source_soundlink.source import SourceSoundlink
from unit_tests import builders as b


def _parse_all(output: bytes) -> list[Any]:
    """Load every line through the protocol models (raises on anything they reject)."""
    return [AirbyteMessageSerializer.load(orjson.loads(line)) for line in output.splitlines()]


def _run_read_command(
    tmp_path: Path,
    config: dict[str, Any],
    catalog: Any = None,
    state: Any = None,
    state_as_lines: bool = False,
) -> tuple[int, bytes]:
    """`source-soundlink read` in-process with these files (catalog: the engagement stream, incremental);
    with `state_as_lines`, the state file holds one JSON value of `state` per line."""
    files = {"config": config, "catalog": catalog or ConfiguredAirbyteCatalogSerializer.dump(b.catalog())}
    if state is not None:
        files["state"] = state
    for name, content in files.items():
        text = "".join(json.dumps(v) + "\n" for v in content) if name == "state" and state_as_lines else None
        (tmp_path / f"{name}.json").write_text(text or json.dumps(content))
    out = io.BytesIO()
    exit_code = read_command.main([f"--{name}={tmp_path / name}.json" for name in files], out)
    return exit_code, out.getvalue()


def test_every_message_builder_is_accepted_by_the_protocol_models() -> None:
    prefix, middle = protocol.record_envelope(protocol.ENGAGEMENT_STREAM)
    lines = [orjson.dumps(b.row("camp_a", "2026-03-01")), orjson.dumps(b.row("camp_a", "2026-03-02"))]
    output = b"".join(
        [
            protocol.record_chunk(prefix, middle, lines),
            protocol.state(protocol.ENGAGEMENT_STREAM, {"state_version": 1, "campaigns": {}}, 2),
            protocol.log("INFO", "hello"),
            protocol.stream_status(protocol.ENGAGEMENT_STREAM, "STARTED"),
            protocol.estimate(protocol.ENGAGEMENT_STREAM, 10),
            protocol.error_trace("boom", "config_error", stream=protocol.ENGAGEMENT_STREAM),
        ]
    )
    messages = _parse_all(output)
    assert [m.type for m in messages] == [
        Type.RECORD,
        Type.RECORD,
        Type.STATE,
        Type.LOG,
        Type.TRACE,
        Type.TRACE,
        Type.TRACE,
    ]
    assert messages[0].record.data == b.row("camp_a", "2026-03-01")  # spliced bytes round-trip exactly
    assert messages[0].record.data["playlist_position"] is None  # top-level nulls are kept


def test_given_one_sync_when_read_by_the_command_and_by_the_cdk_source_then_both_give_the_same_messages(
    tmp_path: Path,
) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-04")
    with HttpMocker() as http_mocker:
        http_mocker.get(
            b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")])
        )
        http_mocker.get(b.export_request("camp_a", "2026-03-01", "2026-03-04"), b.jsonl_response(rows))
        exit_code, output = _run_read_command(tmp_path, b.config(end_date="2026-03-04"))
        in_process = read(SourceSoundlink(), b.config(end_date="2026-03-04"), b.catalog())

    assert exit_code == 0
    messages = _parse_all(output)
    records = [m.record.data for m in messages if m.type == Type.RECORD]
    assert records == rows  # spliced as they arrived: top-level nulls kept
    # The CDK's serializer drops top-level nulls; otherwise the two paths emit the same rows.
    assert [r.record.data for r in in_process.records] == [
        {k: v for k, v in row.items() if v is not None} for row in records
    ]
    states = [m.state.stream.stream_state for m in messages if m.type == Type.STATE]
    assert [s.state.stream.stream_state for s in in_process.state_messages] == states
    assert states[-1].campaigns == {
        "camp_a": {
            "from": "2026-03-01",
            "through": "2026-03-04",
            "has_rows": True,
            "report_date": "2026-03-04",
        }
    }
    statuses = [
        m.trace.stream_status.status.name for m in messages if m.type == Type.TRACE and m.trace.stream_status
    ]
    assert statuses == ["STARTED", "RUNNING", "COMPLETE"]
    assert [
        m.trace.stream_status.status.name for m in in_process.trace_messages if m.trace.stream_status
    ] == (statuses)


def _state_message(campaigns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One STATE message of the engagement stream, as a saved state file holds it."""
    return AirbyteStateMessageSerializer.dump(b.state(campaigns)[0])


@HttpMocker()
def test_read_command_resumes_from_the_last_of_several_state_messages(
    tmp_path: Path, http_mocker: HttpMocker = None
) -> None:
    """A state file saved from a sync's stdout holds every checkpoint; the newest one is the state."""
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    rows = b.daily_rows("camp_a", "2026-03-03", "2026-03-12")
    # The newest checkpoint covers through 03-10: the 7-day lookback starts at 03-03 (the older one
    # would start the read at the campaign's first day, a request this mock does not answer).
    http_mocker.get(b.export_request("camp_a", "2026-03-03", "2026-03-12"), b.jsonl_response(rows))
    older = _state_message({"camp_a": {"from": "2026-03-01", "through": "2026-03-02"}})
    newer = _state_message({"camp_a": {"from": "2026-03-01", "through": "2026-03-10", "has_rows": True}})

    exit_code, output = _run_read_command(tmp_path, b.config(end_date="2026-03-12"), state=[older, newer])

    assert exit_code == 0, output
    messages = _parse_all(output)
    assert [m.record.data for m in messages if m.type == Type.RECORD] == rows
    final_state = [m for m in messages if m.type == Type.STATE][-1].state.stream.stream_state
    assert final_state.campaigns["camp_a"]["from"] == "2026-03-01"
    assert final_state.campaigns["camp_a"]["through"] == "2026-03-12"


def test_state_of_the_stream_is_the_last_message_for_it_and_ignores_other_streams() -> None:
    older = _state_message({"camp_a": {"from": "2026-03-01", "through": "2026-03-02"}})
    newer = _state_message({"camp_a": {"from": "2026-03-01", "through": "2026-03-10"}})
    other = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "campaigns"}, "stream_state": {}}}
    assert stream_state_from([older, newer, other]) == newer["stream"]["stream_state"]
    assert stream_state_from([other]) is None
    assert stream_state_from({"campaign_engagement_daily": {"campaigns": {}}}) == {"campaigns": {}}
    assert stream_state_from(None) is None


def test_read_command_rejects_bad_config_before_any_request(tmp_path: Path) -> None:
    # No HTTP mock is active: any request would fail differently.
    exit_code, output = _run_read_command(tmp_path, b.config(window_size_days=120))

    assert exit_code == 1
    (error,) = _parse_all(output)
    assert error.trace.error.failure_type.value == "config_error"
    assert "window_size_days must be between 1 and 90, not 120" in error.trace.error.message


def test_discover_declares_both_streams_with_keys_and_cursor() -> None:
    output = discover(SourceSoundlink(), b.config())
    streams = {s.name: s for s in output.catalog.catalog.streams}
    engagement = streams["campaign_engagement_daily"]
    assert engagement.source_defined_primary_key == [[f] for f in PRIMARY_KEY]
    assert engagement.default_cursor_field == ["report_date"]
    assert set(engagement.supported_sync_modes) == {SyncMode.full_refresh, SyncMode.incremental}
    assert set(engagement.json_schema["properties"]) >= set(PRIMARY_KEY) | {"spl", "playlist_position"}
    campaigns = streams["campaigns"]
    assert campaigns.source_defined_primary_key == [["campaignId"]]
    assert campaigns.supported_sync_modes == [SyncMode.full_refresh]


def test_spec_marks_the_key_secret_and_orders_fields() -> None:
    spec = SourceSoundlink().spec(None).connectionSpecification  # type: ignore[arg-type]
    properties = spec["properties"]
    assert properties["api_key"]["airbyte_secret"] is True
    assert spec["required"] == ["api_key"]
    assert sorted(p["order"] for p in properties.values()) == list(range(len(properties)))
    assert properties["lookback_window_days"]["minimum"] == 7
    assert properties["window_size_days"]["maximum"] == 90


@HttpMocker()
def test_given_state_lines_saved_from_an_earlier_sync_when_read_then_the_last_one_is_resumed(
    tmp_path: Path, http_mocker: HttpMocker = None
) -> None:
    """`grep STATE output.jsonl > state.json`: whole messages as printed, one per line."""
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    rows = b.daily_rows("camp_a", "2026-03-03", "2026-03-12")
    http_mocker.get(b.export_request("camp_a", "2026-03-03", "2026-03-12"), b.jsonl_response(rows))
    older = {
        "type": "STATE",
        "state": _state_message({"camp_a": {"from": "2026-03-01", "through": "2026-03-02"}}),
    }
    newer = {
        "type": "STATE",
        "state": _state_message(
            {"camp_a": {"from": "2026-03-01", "through": "2026-03-10", "has_rows": True}}
        ),
    }
    exit_code, output = _run_read_command(
        tmp_path, b.config(end_date="2026-03-12"), state=[older, newer], state_as_lines=True
    )

    assert exit_code == 0, output
    assert [m.record.data for m in _parse_all(output) if m.type == Type.RECORD] == rows


def test_given_a_state_it_cannot_read_when_read_then_it_fails_as_config_error_before_any_request(
    tmp_path: Path,
) -> None:
    # No HTTP mock is active: any request would fail differently.
    unreadable = [_state_message({"camp_a": {"from": "2026-03-01", "through": 20260310}})]

    exit_code, output = _run_read_command(tmp_path, b.config(), state=unreadable)

    assert exit_code == 1
    (error,) = _parse_all(output)
    assert error.trace.error.failure_type.value == "config_error"
    assert "campaign camp_a: through 20260310 is not a YYYY-MM-DD date" in error.trace.error.message
    assert "refresh the stream in Airbyte" in error.trace.error.message
