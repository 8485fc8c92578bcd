"""Request shapes, windows, per-campaign state and error mapping, pinned with the CDK's HttpMocker.

HttpMocker, used as a decorator, injects `http_mocker` and fails the test if a mocked request was not
made; the parameter has a default so pytest does not look for a fixture of that name.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import requests_mock
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType, Status
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_soundlink.export import check_connection
from source_soundlink.source import SourceSoundlink
from unit_tests import builders as b
from unit_tests.builders import API_KEY, BASE_URL


def _read(config: dict[str, Any], state: Any = None, sync_mode: str = "incremental") -> EntrypointOutput:
    return read(SourceSoundlink(), config, b.catalog(sync_mode=sync_mode), state, expected_outcome=None)


def _final_state(output: EntrypointOutput) -> dict[str, Any]:
    return output.most_recent_state.stream_state.__dict__


def _pks(output: EntrypointOutput) -> list[tuple]:
    return [
        tuple(r.record.data[f] for f in ("campaign_id", "report_date", "country_code"))
        for r in output.records
    ]


@HttpMocker()
def test_backfill_requests_windows_of_at_most_90_inclusive_days(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-01-01")]))
    windows = [("2026-01-01", "2026-03-31"), ("2026-04-01", "2026-06-29"), ("2026-06-30", "2026-07-10")]
    for start, end in windows:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = _read(b.config(end_date="2026-07-10"))

    assert not output.errors
    assert len(output.records) == 2 * 191  # 2 rows a day, 2026-01-01..2026-07-10
    assert len(set(_pks(output))) == len(output.records)
    assert _final_state(output)["campaigns"] == {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-07-10",
            "has_rows": True,
            "report_date": "2026-07-10",
        }
    }
    # One checkpoint per complete window, plus the final one.
    assert len(output.state_messages) == len(windows) + 1


@HttpMocker()
def test_each_campaign_starts_at_its_own_creation_date_and_start_date_clamps_it(
    http_mocker: HttpMocker = None,
) -> None:
    campaigns = [b.campaign("camp_old", created="2025-12-01"), b.campaign("camp_new", created="2026-03-05")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_old", "2026-03-01", "2026-03-10"), b.jsonl_response([]))
    http_mocker.get(b.export_request("camp_new", "2026-03-05", "2026-03-10"), b.jsonl_response([]))

    output = _read(b.config(start_date="2026-03-01", end_date="2026-03-10"))

    assert not output.errors
    assert _final_state(output)["campaigns"]["camp_new"] == {"from": "2026-03-05", "through": "2026-03-10"}


@HttpMocker()
def test_window_size_and_engagement_context_are_sent(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-05-01")]))
    for start, end in [("2026-05-01", "2026-05-10"), ("2026-05-11", "2026-05-15")]:
        http_mocker.get(
            b.export_request("camp_a", start, end, engagementContext="playlist"),
            b.jsonl_response(b.daily_rows("camp_a", start, end, engagement_context="playlist")),
        )

    output = _read(b.config(end_date="2026-05-15", window_size_days=10, engagement_context="playlist"))

    assert not output.errors
    assert len(output.records) == 30


@HttpMocker()
def test_second_sync_rereads_the_lookback_window_per_campaign(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_b", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    # camp_a was read through 06-30: re-read from 06-30 - 7 days; camp_b through 06-20 with a 10-day lookback.
    http_mocker.get(
        b.export_request("camp_a", "2026-06-20", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_a", "2026-06-20", "2026-07-05")),
    )
    http_mocker.get(
        b.export_request("camp_b", "2026-06-10", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_b", "2026-06-10", "2026-07-05")),
    )
    previous = {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-06-30",
            "has_rows": True,
            "report_date": "2026-06-30",
        },
        "camp_b": {
            "from": "2026-02-01",
            "through": "2026-06-20",
            "has_rows": True,
            "report_date": "2026-06-20",
        },
    }

    output = _read(b.config(end_date="2026-07-05", lookback_window_days=10), b.state(previous))

    assert not output.errors
    campaigns_state = _final_state(output)["campaigns"]
    assert campaigns_state["camp_a"]["through"] == "2026-07-05"
    assert campaigns_state["camp_b"]["through"] == "2026-07-05"
    assert campaigns_state["camp_a"]["from"] == "2026-01-01"  # coverage is kept, not reset to the lookback


@HttpMocker()
def test_a_campaign_added_later_is_backfilled_from_its_own_start(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_late", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_a", "2026-04-03", "2026-04-10"), b.jsonl_response([]))
    http_mocker.get(
        b.export_request("camp_late", "2026-02-01", "2026-04-10"),
        b.jsonl_response(b.daily_rows("camp_late", "2026-02-01", "2026-04-10")),
    )
    previous = {"camp_a": {"from": "2026-01-01", "through": "2026-04-10", "has_rows": True}}

    output = _read(b.config(end_date="2026-04-10"), b.state(previous))

    assert not output.errors
    assert {
        r.record.data["report_date"] for r in output.records if r.record.data["campaign_id"] == "camp_late"
    } >= {
        "2026-02-01",
        "2026-04-10",
    }
    assert _final_state(output)["campaigns"]["camp_late"]["from"] == "2026-02-01"


@HttpMocker()
def test_an_empty_campaign_does_not_reread_its_history(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(
        b.campaigns_request(), b.campaigns_response([b.campaign("camp_empty", created="2026-01-01")])
    )
    http_mocker.get(b.export_request("camp_empty", "2026-03-24", "2026-04-01"), b.jsonl_response([]))
    previous = {"camp_empty": {"from": "2026-01-01", "through": "2026-03-31"}}

    output = _read(b.config(end_date="2026-04-01"), b.state(previous))

    assert not output.errors
    assert _final_state(output)["campaigns"]["camp_empty"] == {"from": "2026-01-01", "through": "2026-04-01"}


@HttpMocker()
def test_a_settled_campaign_makes_no_request(http_mocker: HttpMocker = None) -> None:
    ended = b.campaign("camp_done", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    previous = {
        "camp_done": {
            "from": "2026-01-01",
            "through": "2026-04-30",
            "has_rows": True,
            "ended_on": "2026-02-01",
            "settled": True,
            "updated_at": ended["updatedAt"],
        }
    }

    output = _read(b.config(end_date="2026-07-01"), b.state(previous))

    assert not output.errors
    assert output.records == []
    assert _final_state(output)["campaigns"]["camp_done"]["settled"] is True


@HttpMocker()
def test_ended_rows_settle_a_campaign_and_stop_its_windows(
    http_mocker: HttpMocker = None,
) -> None:
    ended = b.campaign("camp_e", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    rows = b.daily_rows("camp_e", "2026-01-01", "2026-01-31") + b.daily_rows(
        "camp_e", "2026-02-01", "2026-03-02", status="ended"
    )
    http_mocker.get(b.export_request("camp_e", "2026-01-01", "2026-03-31"), b.jsonl_response(rows))

    output = _read(b.config(end_date="2026-04-10"))

    state = _final_state(output)["campaigns"]["camp_e"]
    assert state["ended_on"] == "2026-02-01"
    assert state["settled"] is True  # 2026-02-01 + 38 days <= 2026-03-31
    assert state["through"] == "2026-03-31"  # no request for 04-01..04-10: no row can follow


@HttpMocker()
def test_campaign_ids_restrict_the_sync_and_a_missing_one_is_named(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a")]))
    http_mocker.get(
        HttpRequest(f"{BASE_URL}/v1/campaigns/camp_gone"),
        b.error_response(404, "campaign_not_found", "req-404"),
    )

    output = _read(b.config(campaign_ids=["camp_a", "camp_gone"], end_date="2026-01-05"))

    assert output.records == []
    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "campaign camp_gone" in error.message and "req-404" in error.message
    assert "remove it from campaign_ids" in error.message


@HttpMocker()
def test_key_without_campaigns_read_uses_campaign_ids_and_start_date(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.error_response(403, "insufficient_scope", "req-403"))
    http_mocker.get(
        b.export_request("camp_a", "2026-03-01", "2026-03-02"),
        b.jsonl_response(b.daily_rows("camp_a", "2026-03-01", "2026-03-02")),
    )

    output = _read(b.config(campaign_ids=["camp_a"], start_date="2026-03-01", end_date="2026-03-02"))

    assert not output.errors
    assert len(output.records) == 4


@HttpMocker()
def test_key_without_campaigns_read_and_no_campaign_ids_is_a_config_error(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.error_response(403, "insufficient_scope", "req-403"))

    output = _read(b.config(end_date="2026-03-02"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "campaigns:read" in error.message and "campaign_ids and start_date" in error.message
    assert "req-403" in error.message


def _single_window_with(http_mocker: HttpMocker, response: Any) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(b.export_request("camp_a", "2026-03-01", "2026-03-05"), response)


@HttpMocker()
def test_metrics_scope_error_says_which_scope(http_mocker: HttpMocker = None) -> None:
    _single_window_with(http_mocker, b.error_response(403, "insufficient_scope", "req-scope"))

    output = _read(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "metrics:read" in error.message
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message and "req-scope" in error.message


@HttpMocker()
def test_revoked_key_is_a_config_error_and_the_key_is_never_printed(
    capsys: Any, http_mocker: HttpMocker = None
) -> None:
    _single_window_with(http_mocker, b.error_response(401, "api_key_revoked", "req-401"))

    output = read(SourceSoundlink(), b.config(end_date="2026-03-05"), b.catalog(), debug=True)

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "revoked" in error.message and "req-401" in error.message
    everything = b"".join(
        orjson.dumps(AirbyteMessageSerializer.dump(m)) for m in output.get_message_iterator()
    )
    printed = capsys.readouterr()
    assert API_KEY.encode() not in everything
    assert API_KEY not in printed.out + printed.err


@HttpMocker()
def test_invalid_bearer_token_says_to_check_auth_header(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(
        HttpRequest(
            f"{BASE_URL}/v1/campaigns",
            query_params={"page": "1", "pageSize": "100", "sortBy": "createdAt", "sortOrder": "asc"},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ),
        b.error_response(401, "invalid_token", "req-tok"),
    )

    output = _read(b.config(auth_header="bearer"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "set auth_header to x-api-key" in error.message and "req-tok" in error.message


@HttpMocker()
def test_retry_after_is_honoured_then_the_window_is_read(sleeps: Any, http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rate_limited = b.error_response(429, "rate_limit_exceeded", "req-429", {"Retry-After": "17"})
    _single_window_with(http_mocker, [rate_limited, b.jsonl_response(rows)])

    output = _read(b.config(end_date="2026-03-05"))

    assert not output.errors
    assert len(output.records) == len(rows)
    assert 17 in sleeps.waits


@HttpMocker()
def test_server_errors_are_retried_a_bounded_number_of_times(
    sleeps: Any, http_mocker: HttpMocker = None
) -> None:
    _single_window_with(
        http_mocker, [b.error_response(500, "internal_error", f"req-500-{i}") for i in range(5)]
    )

    output = _read(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.transient_error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert "req-500-4" in error.message and "after 5 attempts" in error.message
    # Exponential backoff with jitter: the n-th wait lies in [2^(n-1) / 2, 2^(n-1)] seconds.
    assert len(sleeps.waits) == 4
    for n, wait in enumerate(sleeps.waits, start=1):
        assert 2 ** (n - 1) / 2 <= wait <= 2 ** (n - 1)


@HttpMocker()
def test_short_body_fails_naming_window_and_keeps_state_before_it(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    _single_window_with(http_mocker, b.jsonl_response(rows[:-1], row_count=len(rows), request_id="req-short"))

    output = _read(b.config(end_date="2026-03-05"))

    error = output.errors[-1].trace.error
    assert "campaign camp_a, window 2026-03-01..2026-03-05" in error.message
    assert f"held {len(rows) - 1} rows but X-Row-Count announced {len(rows)}" in error.message
    assert "req-short" in error.message
    assert _final_state(output)["campaigns"] == {}  # the window was not checkpointed


@HttpMocker()
def test_malformed_line_fails_with_its_line_number(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    lines = [b.jsonl_response([r]).body.strip() for r in rows]
    lines[3] = '{"provider": "soundlink", "report_da'
    _single_window_with(http_mocker, b.jsonl_response(rows, raw="\n".join(lines) + "\n"))

    output = _read(b.config(end_date="2026-03-05"))

    assert "line 4: it is not valid JSON" in output.errors[-1].trace.error.message


@HttpMocker()
def test_wrong_schema_version_and_missing_key_field_fail(http_mocker: HttpMocker = None) -> None:
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05")
    rows[1]["schema_version"] = "2.0"
    _single_window_with(http_mocker, b.jsonl_response(rows))

    output = _read(b.config(end_date="2026-03-05"))

    message = output.errors[-1].trace.error.message
    assert "line 2: schema_version is '2.0'" in message


@HttpMocker()
def test_wide_window_rejected_with_400_is_split(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(
        b.export_request("camp_a", "2026-03-01", "2026-03-20"),
        b.error_response(400, "invalid_query_parameter", "r1"),
    )
    for start, end in [("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20")]:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = _read(b.config(end_date="2026-03-20"))

    assert not output.errors
    assert len(output.records) == 40


def test_exactly_one_auth_header_is_sent_x_api_key_by_default_or_bearer() -> None:
    for auth_header, present, absent in (
        ("x-api-key", "x-api-key", "Authorization"),
        ("bearer", "Authorization", "x-api-key"),
    ):
        with requests_mock.Mocker() as mocker:
            mocker.get(
                f"{BASE_URL}/v1/campaigns", json={"data": {"items": [], "pagination": {"totalPages": 1}}}
            )
            output = _read(b.config(auth_header=auth_header, end_date="2026-03-05"))
            assert not output.errors
            sent = mocker.request_history[0].headers
            assert absent not in sent
            expected = API_KEY if present == "x-api-key" else f"Bearer {API_KEY}"
            assert sent[present] == expected


def test_check_uses_ping_campaigns_and_a_one_day_export() -> None:
    from source_soundlink.config import SoundlinkConfig

    config = SoundlinkConfig.from_mapping(b.config(campaign_ids=["camp_a"]))
    today = config.today.isoformat()
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/ping", json={"data": {"status": "ok"}, "meta": {"requestId": "p"}})
        mocker.get(
            f"{BASE_URL}/v1/campaigns",
            json={"data": {"items": [b.campaign("camp_a")], "pagination": {"totalPages": 1}}},
        )
        mocker.get(
            f"{BASE_URL}/v1/campaigns/camp_a/metrics/engagement/export", text="", headers={"X-Row-Count": "0"}
        )
        check_connection(config, lambda level, message: None)
        paths = [(r.path, r.qs) for r in mocker.request_history]
    assert paths[0][0] == "/v1/ping"
    assert paths[1][0] == "/v1/campaigns"
    assert paths[2] == (
        "/v1/campaigns/camp_a/metrics/engagement/export",
        {"startdate": [today], "enddate": [today]},
    )


def test_check_reports_a_missing_scope() -> None:
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/ping", json={"data": {"status": "ok"}, "meta": {"requestId": "p"}})
        mocker.get(
            f"{BASE_URL}/v1/campaigns",
            status_code=403,
            json={"error": {"code": "insufficient_scope", "message": "x"}, "meta": {"requestId": "req-c"}},
        )
        status = SourceSoundlink().check(logging.getLogger("airbyte"), b.config())
    assert status.status == Status.FAILED
    assert "campaigns:read" in status.message and "req-c" in status.message
