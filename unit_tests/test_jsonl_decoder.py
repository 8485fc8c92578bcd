"""The JSONL decoder: bytes in any chunking, CRLF, within-day order, resume after a cut, bad lines."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest
from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink.engagement.jsonl_decoder import JsonlDecoder
from source_soundlink.engagement.window import Window, WindowProgress
from unit_tests import builders as b

WINDOW = Window("camp_a", date(2026, 3, 1), date(2026, 3, 5))


def decode(chunks: list[bytes], progress: WindowProgress | None = None) -> tuple[list[dict], int]:
    """The rows of the RECORD messages the decoder emits for `chunks`, and the rows the body held."""
    emitted: list[bytes] = []
    decoder = JsonlDecoder(lambda data, count, window, progress: emitted.append(data))
    held = decoder.decode(chunks, WINDOW, progress or WindowProgress(), str(WINDOW))
    records = [orjson.loads(line)["record"]["data"] for data in emitted for line in data.splitlines()]
    return records, held


def test_given_a_body_cut_into_chunks_anywhere_when_decoded_then_the_records_are_the_same() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    body = b.jsonl(rows).rstrip(b"\n")  # the last line without its newline is a row too

    for size in (1, 7, 100, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert decode(chunks) == (rows, len(rows)), size


def test_given_progress_resumed_after_a_cut_when_decoded_then_rows_emitted_before_are_skipped() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-03", countries=("DE", "FR", "US"))
    progress = WindowProgress(
        resume_date="2026-03-02",
        resume_keys=frozenset({("catalog", "DE", rows[0]["engaged_spotify_track_id"])}),
    )

    records, held = decode([b.jsonl(rows)], progress)

    assert held == len(rows)  # the body's rows are counted for X-Row-Count, emitted or not
    assert records == rows[4:]  # 03-01 and 03-02's DE were emitted before the cut
    assert progress.rows_emitted == len(rows) - 4 and progress.last_date == "2026-03-03"


def test_crlf_line_ends_are_read_as_plain_rows() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    output, _ = b.read_with([{"content": b.jsonl(rows, b"\r\n"), "headers": {"X-Row-Count": str(len(rows))}}])

    assert not output.errors
    assert [r.record.data for r in output.records] == rows


def test_within_a_day_any_collation_is_accepted_but_a_repeated_key_is_not() -> None:
    # Mixed-case track ids sorted case-insensitively (as a database collation might), not by code point.
    rows = [
        b.row("camp_a", "2026-03-01", track=t) for t in ("aTrack000000000000000a", "BTrack000000000000000b")
    ]
    output, _ = b.read_with([{"content": b.jsonl(rows), "headers": {"X-Row-Count": "2"}}])
    assert not output.errors and len(output.records) == 2

    repeated = [*rows, rows[0]]
    output, _ = b.read_with([{"content": b.jsonl(repeated), "headers": {"X-Row-Count": "3"}}])
    assert (
        "line 3: it repeats the primary key of an earlier row of 2026-03-01"
        in output.errors[-1].trace.error.message
    )


def test_dates_going_backwards_fail() -> None:
    rows = [b.row("camp_a", "2026-03-02"), b.row("camp_a", "2026-03-01")]
    output, _ = b.read_with([{"content": b.jsonl(rows), "headers": {"X-Row-Count": "2"}}])
    assert "line 2: report_date 2026-03-01 comes after 2026-03-02" in output.errors[-1].trace.error.message


@HttpMocker()
def test_malformed_line_fails_with_its_line_number(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    lines = [b.jsonl_response([r]).body.strip() for r in rows]
    lines[3] = '{"provider": "soundlink", "report_da'
    b.single_window_with(http_mocker, b.jsonl_response(rows, raw="\n".join(lines) + "\n"))

    output = b.read_source(b.config(end_date="2026-03-05"))

    assert "line 4: it is not valid JSON" in output.errors[-1].trace.error.message


@HttpMocker()
def test_wrong_schema_version_and_missing_key_field_fail(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rows[1]["schema_version"] = "2.0"
    b.single_window_with(http_mocker, b.jsonl_response(rows))

    output = b.read_source(b.config(end_date="2026-03-05"))

    message = output.errors[-1].trace.error.message
    assert "line 2: schema_version is '2.0'" in message


# -- row checks that guard the state ----------------------------------------------------------------------


def _export(rows: list[dict[str, Any]], request_id: str = "req-rows") -> dict[str, Any]:
    return {"content": b.jsonl(rows), "headers": {"X-Row-Count": str(len(rows)), "X-Request-Id": request_id}}


@pytest.mark.parametrize("bad_day", ["2026-03-02T00:00:00Z", "2026-03-02T12:30", "2026-03-02 "])
def test_given_a_report_date_not_a_plain_date_when_read_then_the_sync_fails_and_the_next_is_unaffected(
    bad_day: str,
) -> None:
    # The last row of its day: sorted after that day's rows and before the next day's, so only its form
    # tells it apart; emitted, it would become the state's report_date.
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    poisoned = [*rows[:3], {**rows[3], "report_date": bad_day}, *rows[4:]]

    output, _ = b.read_with([_export(poisoned, "req-poison")])

    message = output.errors[-1].trace.error.message
    assert f"line 4: report_date {bad_day!r} is not a YYYY-MM-DD date" in message
    assert "campaign camp_a, window 2026-03-01..2026-03-05 (requestId req-poison)" in message
    assert "Traceback" not in message
    assert all(r.record.data["report_date"] != bad_day for r in output.records)
    assert b.final_state(output)["campaigns"] == {}  # the window was not checkpointed
    again, _ = b.read_with([_export(rows)])  # the next sync: the same window, served right
    assert not again.errors and b.final_state(again)["campaigns"]["camp_a"]["report_date"] == "2026-03-05"


def test_given_a_row_of_another_campaign_when_read_then_the_sync_fails_naming_the_line() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rows[2]["campaign_id"] = "camp_other"

    output, _ = b.read_with([_export(rows)])

    message = output.errors[-1].trace.error.message
    assert "line 3: campaign_id 'camp_other' is not the campaign exported (camp_a)" in message
    assert "requestId req-rows" in message and b.final_state(output)["campaigns"] == {}


def test_given_schema_version_1_1_in_several_windows_when_read_then_one_warning_and_the_value_lands() -> None:
    windows = [("2026-03-01", "2026-03-02"), ("2026-03-03", "2026-03-04"), ("2026-03-05", "2026-03-05")]
    bodies = [b.daily_rows("camp_a", s, e, schema_version="1.1") for s, e in windows]

    output, _ = b.read_with([_export(rows) for rows in bodies], window_size_days=2)

    assert not output.errors
    assert [r.record.data["schema_version"] for r in output.records] == ["1.1"] * 10
    warnings = [m.log.message for m in output.logs if "schema_version '1.1'" in m.log.message]
    assert len(warnings) == 1 and "line 1" in warnings[0] and "2026-03-01..2026-03-02" in warnings[0]
    assert b.final_state(output)["campaigns"]["camp_a"]["through"] == "2026-03-05"


@pytest.mark.parametrize("version", ["2.0", "2.1", "1", "1.x", "0.9", 1.1, None, ["1.0"], {"v": 1}])
def test_given_a_schema_version_other_than_1_x_when_read_then_the_sync_fails_naming_it(version: Any) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rows[1]["schema_version"] = version

    output, _ = b.read_with([_export(rows)])

    message = output.errors[-1].trace.error.message
    assert f"line 2: schema_version is {version!r}, this connector reads '1.0' and its 1.x versions" in (
        message
    )
    assert b.final_state(output)["campaigns"] == {}
