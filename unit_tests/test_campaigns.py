"""Campaign listing and lookups of configured ids, and the connection check built on them."""

from __future__ import annotations

import logging
import time

import requests_mock
from airbyte_cdk.models import FailureType, Status
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement import check_connection
from source_soundlink.source import SourceSoundlink
from unit_tests import builders as b
from unit_tests.builders import BASE_URL


@HttpMocker()
def test_campaign_ids_restrict_the_sync_and_a_missing_one_is_named(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a")]))
    http_mocker.get(
        HttpRequest(f"{BASE_URL}/v1/campaigns/camp_gone"),
        b.error_response(404, "campaign_not_found", "req-404"),
    )

    output = b.read_source(b.config(campaign_ids=["camp_a", "camp_gone"], end_date="2026-01-05"))

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

    output = b.read_source(b.config(campaign_ids=["camp_a"], start_date="2026-03-01", end_date="2026-03-02"))

    assert not output.errors
    assert len(output.records) == 4


@HttpMocker()
def test_key_without_campaigns_read_and_no_campaign_ids_is_a_config_error(
    http_mocker: HttpMocker = None,
) -> None:
    http_mocker.get(b.campaigns_request(), b.error_response(403, "insufficient_scope", "req-403"))

    output = b.read_source(b.config(end_date="2026-03-02"))

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error
    assert "campaigns:read" in error.message and "campaign_ids and start_date" in error.message
    assert "req-403" in error.message


def test_check_uses_ping_campaigns_and_a_one_day_export() -> None:

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


def test_given_a_spent_hourly_quota_when_checking_then_check_fails_at_once_saying_so() -> None:
    started = time.monotonic()
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{BASE_URL}/v1/ping",
            status_code=429,
            headers={"Retry-After": "3500"},
            json={"error": {"code": "rate_limit_exceeded", "message": "x"}, "meta": {"requestId": "req-q"}},
        )
        status = SourceSoundlink().check(logging.getLogger("airbyte"), b.config())
        sent = len(mocker.request_history)

    assert status.status == Status.FAILED
    assert sent == 1 and time.monotonic() - started < 30  # no hour-long wait in `check`
    assert "used up by another client of the same key" in status.message and "req-q" in status.message


@HttpMocker()
def test_given_a_listing_item_without_a_campaign_id_when_synced_then_it_fails_naming_the_page_and_request(
    http_mocker: HttpMocker = None,
) -> None:
    broken = {k: v for k, v in b.campaign("camp_a").items() if k != "campaignId"}
    http_mocker.get(
        b.campaigns_request(),
        b.json_response({"items": [broken], "pagination": {"totalPages": 1}}, request_id="req-list"),
    )

    output = b.read_source(b.config())

    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.system_error
    assert "the campaign list (page 1)" in error.message and "without a campaignId" in error.message
    assert "requestId req-list" in error.message and "Unexpected" not in error.message
