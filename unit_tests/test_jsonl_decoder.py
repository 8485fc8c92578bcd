"""One window's JSONL body: resume after a cut, CRLF, within-day order, X-Row-Count, bad lines."""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests import builders as b


def test_a_body_cut_mid_stream_is_fetched_again_and_resumed_without_repeats() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", countries=("DE", "FR", "US"))
    body = b.jsonl(rows)
    cut_after = len(b.jsonl(rows[:7])) + 5  # the 8th line is cut in the middle
    headers = {"X-Row-Count": str(len(rows)), "X-Request-Id": "req-cut"}
    output, exports = b.read_with(
        [{"body": b.CutBody(body, cut_after), "headers": headers}, {"content": body, "headers": headers}]
    )

    assert not output.errors
    assert [r.record.data for r in output.records] == b.as_emitted(rows)  # every row once, in order
    assert len(exports) == 2
    assert output.is_in_logs("Connection cut mid-body")


def test_crlf_line_ends_are_read_as_plain_rows() -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    output, _ = b.read_with([{"content": b.jsonl(rows, b"\r\n"), "headers": {"X-Row-Count": str(len(rows))}}])

    assert not output.errors
    assert [r.record.data for r in output.records] == b.as_emitted(rows)


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
def test_short_body_fails_naming_window_and_keeps_state_before_it(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    b.single_window_with(
        http_mocker, b.jsonl_response(rows[:-1], row_count=len(rows), request_id="req-short")
    )

    output = b.read_source(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert f"held {len(rows) - 1} rows but X-Row-Count announced {len(rows)}" in error.message
    assert "req-short" in error.message
    assert b.final_state(output)["campaigns"] == {}  # the window was not checkpointed


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


@pytest.mark.parametrize("version", ["2.0", "2.1", "1", "1.x", "0.9", 1.1, None])
def test_given_a_schema_version_other_than_1_x_when_read_then_the_sync_fails_naming_it(version: Any) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rows[1]["schema_version"] = version

    output, _ = b.read_with([_export(rows)])

    message = output.errors[-1].trace.error.message
    assert (
        f"line 2: schema_version is {version!r}, this connector reads '1.0' and its minor versions 1.x"
        in (message)
    )
    assert b.final_state(output)["campaigns"] == {}
