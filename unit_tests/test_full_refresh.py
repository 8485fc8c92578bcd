"""Resumable full refresh, pinned with the CDK's HttpMocker: which windows a retried attempt requests."""

from __future__ import annotations

from typing import Any

from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.test.state_builder import StateBuilder

from source_soundlink.engagement import full_refresh
from unit_tests import builders as b


def _state(stream_state: dict[str, Any]) -> Any:
    return StateBuilder().with_stream_state(b.ENGAGEMENT, stream_state).build()


def _full_refresh_state(camp_a: dict[str, Any]) -> dict[str, Any]:
    """The state a full-refresh attempt wrote, with one campaign, camp_a."""
    return {"state_version": 2, "full_refresh": True, "campaigns": {"camp_a": camp_a}}


# What a retry of _half_sent_state emits: US of 03-15, then every row of 03-16..03-20.
AFTER_HALF = [("2026-03-15", "US")] + [(f"2026-03-{d}", c) for d in range(16, 21) for c in ("DE", "US")]


def _half_sent_state(track: str) -> dict[str, Any]:
    """camp_a read through 03-10, and the window from 03-11 in flight: the earlier attempt emitted
    03-11..03-14 and DE of 03-15 before its last STATE."""
    return _full_refresh_state(
        {
            "from": "2026-03-01",
            "through": "2026-03-10",
            "has_rows": True,
            "partial": ["2026-03-11", "2026-03-15", [["catalog", "DE", track]]],
        }
    )


def _retry(stream_state: dict[str, Any], **config: Any) -> EntrypointOutput:
    """A full-refresh read of camp_a through 2026-03-20, handed `stream_state`."""
    return b.read_source(
        b.config(end_date="2026-03-20", **config), _state(stream_state), sync_mode="full_refresh"
    )


@HttpMocker()
def test_given_an_interrupted_full_refresh_state_when_retried_then_it_continues_after_it_without_lookback(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(
        b.export_request("camp_a", "2026-03-11", "2026-03-20"),
        b.jsonl_response(b.daily_rows("camp_a", "2026-03-11", "2026-03-20")),
    )
    interrupted = _full_refresh_state({"from": "2026-03-01", "through": "2026-03-10", "has_rows": True})

    output = _retry(interrupted, window_size_days=10)

    assert not output.errors
    assert sorted({r.record.data["report_date"] for r in output.records})[0] == "2026-03-11"
    assert len(output.records) == 2 * 10
    final = b.final_state(output)
    assert final["full_refresh"] is True
    assert final["campaigns"]["camp_a"]["from"] == "2026-03-01"
    assert final["campaigns"]["camp_a"]["through"] == "2026-03-20"
    assert any("Resuming the interrupted full refresh" in m.log.message for m in output.logs)


@HttpMocker()
def test_given_a_window_in_flight_in_the_state_when_retried_then_its_rows_already_emitted_are_skipped(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    rows = b.daily_rows("camp_a", "2026-03-11", "2026-03-20")  # DE and US each day
    http_mocker.get(b.export_request("camp_a", "2026-03-11", "2026-03-20"), b.jsonl_response(rows))
    track = rows[0]["engaged_spotify_track_id"]
    interrupted = _half_sent_state(track)

    output = _retry(interrupted, window_size_days=10)

    assert not output.errors
    assert [
        (r.record.data["report_date"], r.record.data["country_code"]) for r in output.records
    ] == AFTER_HALF
    final = b.final_state(output)["campaigns"]["camp_a"]
    assert final["through"] == "2026-03-20" and "partial" not in final


@HttpMocker()
def test_given_a_window_in_flight_when_the_retry_cuts_narrower_windows_then_each_row_still_comes_once(
    http_mocker: HttpMocker = None,
) -> None:
    """The earlier attempt read 10-day windows; the retry reads 3-day ones (a narrower setting, or a width
    the server forced): every window the earlier rows reach into skips them, not only the first."""
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    rows = b.daily_rows("camp_a", "2026-03-11", "2026-03-20")
    for start, end in (("11", "13"), ("14", "16"), ("17", "19"), ("20", "20")):
        window_rows = [r for r in rows if f"2026-03-{start}" <= r["report_date"] <= f"2026-03-{end}"]
        http_mocker.get(
            b.export_request("camp_a", f"2026-03-{start}", f"2026-03-{end}"), b.jsonl_response(window_rows)
        )
    track = rows[0]["engaged_spotify_track_id"]
    interrupted = _half_sent_state(track)

    output = _retry(interrupted, window_size_days=3)

    assert not output.errors
    assert [
        (r.record.data["report_date"], r.record.data["country_code"]) for r in output.records
    ] == AFTER_HALF


@HttpMocker()
def test_given_an_incremental_state_when_a_full_refresh_reads_then_it_starts_over_and_says_so(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    for start, end in (("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20")):
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )
    incremental = {
        "state_version": 2,
        "campaigns": {"camp_a": {"from": "2026-03-01", "through": "2026-03-10"}},
    }

    output = _retry(incremental, window_size_days=10)

    assert not output.errors
    assert len(output.records) == 2 * 20
    assert any("written by an incremental sync" in m.log.message for m in output.logs)


@HttpMocker()
def test_given_a_completed_full_refresh_state_when_retried_the_same_day_then_no_export_is_requested(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    completed = _full_refresh_state({"from": "2026-03-01", "through": "2026-03-20", "has_rows": True})

    output = _retry(completed)

    assert not output.errors and not output.records  # HttpMocker fails on any unmocked export request
    assert b.final_state(output) == completed


def test_given_no_campaigns_in_a_state_when_checked_for_resuming_then_the_full_refresh_starts_fresh() -> None:
    assert full_refresh.resumable({"state_version": 2, "campaigns": {}}) == (None, {}, None)
    assert full_refresh.resumable(None) == (None, {}, None)
