"""The sandbox over real HTTP: auth, envelopes, pagination, exports, revisions, rate limits, faults, CLI."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from http.client import HTTPConnection, HTTPResponse, IncompleteRead
from typing import Any

import orjson
import pytest
import requests
from soundlink_sandbox import Sandbox

T = date(2026, 5, 1)
KEY = "sk_sandbox_0123456789abcdef"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ROW_FIELDS = [
    "provider", "account_id", "schema_version", "report_date", "report_date_timezone", "exported_at",
    "campaign_id", "campaign_name", "campaign_target_type", "campaign_target_isrc",
    "campaign_target_spotify_track_id", "campaign_target_playlist_id", "status", "engagement_context",
    "country_code", "engaged_track_isrc", "engaged_spotify_track_id", "engaged_track_name",
    "playlist_position",
    "new_listeners", "returning_listeners", "listeners", "new_listener_streams", "returning_listener_streams",
    "streams", "spl",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh(sb: Sandbox) -> None:
    sb.reset()


def get(
    s: requests.Session, sb: Sandbox, path: str, key: str | None = KEY, **params: Any
) -> requests.Response:
    return s.get(sb.base_url + path, params=params, headers={"x-api-key": key} if key else {})


def campaign(sb: Sandbox, status: str) -> dict[str, Any]:
    return next(c for c in sb.campaigns() if c["status"] == status)


def export_path(cid: str) -> str:
    return f"/v1/campaigns/{cid}/metrics/engagement/export"


def lines(r: requests.Response) -> list[dict[str, Any]]:
    assert r.content == b"" or r.content.endswith(b"\n")
    return [orjson.loads(x) for x in r.content.splitlines()]


def assert_error(r: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["meta"]["requestId"] == r.headers["X-Request-Id"]
    assert UUID_RE.fullmatch(body["meta"]["requestId"])
    return body


# --- auth and envelopes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid_api_key"),
        ({"x-api-key": "sk_live_unknown"}, "invalid_api_key"),
        ({"x-api-key": ""}, "invalid_api_key"),
        ({"x-api-key": "sk_sandbox_revoked"}, "api_key_revoked"),
        ({"x-api-key": "sk_sandbox_expired"}, "api_key_expired"),
        ({"x-api-key": KEY, "Authorization": f"Bearer {KEY}"}, "mixed_credentials"),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, "invalid_token"),
        ({"Authorization": "Bearer not-a-key"}, "invalid_token"),
        ({"Authorization": "Bearer sk_live_unknown"}, "invalid_api_key"),
    ],
)
def test_auth_errors(sb: Sandbox, http: requests.Session, headers: dict[str, str], code: str) -> None:
    assert_error(http.get(sb.base_url + "/v1/ping", headers=headers), 401, code)


def test_ping_and_bearer(sb: Sandbox, http: requests.Session) -> None:
    for headers in (
        {"x-api-key": KEY},
        {"Authorization": f"Bearer {KEY}"},
        {"x-api-key": "sk_sandbox_noscope"},
    ):
        r = http.get(sb.base_url + "/v1/ping", headers=headers)
        assert r.status_code == 200
        assert r.json() == {"data": {"status": "ok"}, "meta": {"requestId": r.headers["X-Request-Id"]}}
    assert [e["auth"] for e in sb.requests()] == ["x-api-key", "bearer", "x-api-key"]


def test_scopes(sb: Sandbox, http: requests.Session) -> None:
    cid = campaign(sb, "active")["campaignId"]
    body = assert_error(
        get(http, sb, export_path(cid), "sk_sandbox_campaignsonly"), 403, "insufficient_scope"
    )
    assert "metrics:read" in body["error"]["message"]
    body = assert_error(get(http, sb, "/v1/campaigns", "sk_sandbox_metricsonly"), 403, "insufficient_scope")
    assert "campaigns:read" in body["error"]["message"]
    assert_error(get(http, sb, f"/v1/campaigns/{cid}", "sk_sandbox_noscope"), 403, "insufficient_scope")
    assert get(http, sb, export_path(cid), "sk_sandbox_metricsonly").status_code == 200
    assert get(http, sb, "/v1/campaigns", "sk_sandbox_campaignsonly").status_code == 200


def test_unknown_route_and_custom_key(http: requests.Session) -> None:
    with Sandbox(today=T, api_key="sk_test_custom") as s:
        assert_error(
            http.get(s.base_url + "/v1/nope", headers={"x-api-key": "sk_test_custom"}), 404, "not_found"
        )
        assert_error(
            http.post(s.base_url + "/v1/ping", headers={"x-api-key": "sk_test_custom"}), 404, "not_found"
        )
        assert_error(http.get(s.base_url + "/v1/ping", headers={"x-api-key": KEY}), 401, "invalid_api_key")
        assert s.api_key == "sk_test_custom"


# --- campaigns -----------------------------------------------------------------------------------------
def test_pagination_and_sorting(sb: Sandbox, http: requests.Session) -> None:
    r = get(http, sb, "/v1/campaigns")
    assert r.json()["data"]["pagination"] == {"page": 1, "pageSize": 10, "totalCount": 6, "totalPages": 1}
    seen = []
    for page in (1, 2):
        d = get(http, sb, "/v1/campaigns", page=page, pageSize=4).json()["data"]
        assert d["pagination"] == {"page": page, "pageSize": 4, "totalCount": 6, "totalPages": 2}
        seen += d["items"]
    assert len(seen) == 6 and len({c["campaignId"] for c in seen}) == 6
    assert [c["createdAt"] for c in seen] == sorted((c["createdAt"] for c in seen), reverse=True)
    asc = get(http, sb, "/v1/campaigns", pageSize=100, sortBy="updatedAt", sortOrder="asc").json()["data"][
        "items"
    ]
    assert [c["updatedAt"] for c in asc] == sorted(c["updatedAt"] for c in asc)
    assert get(http, sb, "/v1/campaigns", page=3, pageSize=4).json()["data"]["items"] == []
    assert_error(get(http, sb, "/v1/campaigns", pageSize=101), 400, "page_size_exceeded")
    for bad in ({"pageSize": 0}, {"pageSize": "x"}, {"page": 0}, {"sortBy": "name"}, {"sortOrder": "up"}):
        assert_error(get(http, sb, "/v1/campaigns", **bad), 400, "invalid_query_parameter")


def test_campaign_detail_and_fixture_set(sb: Sandbox, http: requests.Session) -> None:
    by_status = {c["status"]: c for c in sb.campaigns()}
    assert set(by_status) == {"completed", "active", "ended", "creating", "failed"}
    for c in sb.campaigns():
        r = get(http, sb, f"/v1/campaigns/{c['campaignId']}")
        assert r.json()["data"] == c
        assert c["socialPlatform"] == "meta" and c["organizationId"]
        assert c["createdAt"].endswith("Z") and c["updatedAt"].endswith("Z")
        assert not {"startDate", "endDate", "name", "targetType"} & set(c)
        assert "generation" in c and ("trackName" in c or "playlistId" in c)
    assert any(c["campaignId"].startswith("camp_") for c in sb.campaigns())
    assert any(UUID_RE.fullmatch(c["campaignId"]) for c in sb.campaigns())
    created = {
        c["status"]: date.fromisoformat(c["createdAt"][:10])
        for c in sb.campaigns()
        if c["status"] != "active"
    }
    assert created == {"completed": T - timedelta(200), "ended": T - timedelta(70), "creating": T,
                       "failed": T - timedelta(30)}  # fmt: skip
    assert_error(get(http, sb, "/v1/campaigns/camp_missing"), 404, "campaign_not_found")
    assert_error(get(http, sb, export_path("camp_missing")), 404, "campaign_not_found")


# --- exports -------------------------------------------------------------------------------------------
def check_rows(rows: list[dict[str, Any]]) -> None:
    keys = [
        (r["report_date"], r["engagement_context"], r["country_code"], r["engaged_spotify_track_id"])
        for r in rows
    ]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for r in rows:
        assert list(r) == ROW_FIELDS
        assert (
            r["provider"] == "soundlink"
            and r["schema_version"] == "1.0"
            and r["report_date_timezone"] == "UTC"
        )
        assert r["listeners"] == r["new_listeners"] + r["returning_listeners"]
        assert r["streams"] == r["new_listener_streams"] + r["returning_listener_streams"]
        assert r["spl"] == (round(r["streams"] / r["listeners"], 2) if r["listeners"] else 0)
        assert len(r["engaged_spotify_track_id"]) == 22 and re.fullmatch(r"[A-Z]{2}", r["country_code"])
        assert date.fromisoformat(r["report_date"]) <= T


def test_export_defaults_playlist_campaign(sb: Sandbox, http: requests.Session) -> None:
    c = next(c for c in sb.campaigns() if c["status"] == "active" and "playlistId" in c)
    start = date.fromisoformat(c["createdAt"][:10])
    assert start == T - timedelta(45)
    r = get(http, sb, export_path(c["campaignId"]), key=KEY)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-ndjson"
    assert UUID_RE.fullmatch(r.headers["X-Request-Id"])
    assert int(r.headers["Content-Length"]) == len(r.content)
    rows = lines(r)
    assert int(r.headers["X-Row-Count"]) == len(rows) == 46 * 12
    check_rows(rows)
    assert rows[0]["report_date"] == start.isoformat() and rows[-1]["report_date"] == T.isoformat()
    assert {r["engagement_context"] for r in rows} == {"playlist"}
    assert all(
        r["campaign_target_playlist_id"] == c["playlistId"] and r["campaign_target_isrc"] is None
        for r in rows
    )
    today_pos = {r["playlist_position"] for r in rows if r["report_date"] == T.isoformat()}
    assert today_pos == {None}
    assert all(r["playlist_position"] >= 1 for r in rows if r["report_date"] != T.isoformat())
    assert any(r["engaged_track_isrc"] is None for r in rows) and any(r["engaged_track_isrc"] for r in rows)
    assert any(r["listeners"] > 0 for r in rows)
    assert get(http, sb, export_path(c["campaignId"]), engagementContext="catalog").content == b""
    only = get(http, sb, export_path(c["campaignId"]), engagementContext="playlist")
    assert only.content == r.content


def test_export_track_campaign_lifecycle(sb: Sandbox, http: requests.Session) -> None:
    done = campaign(sb, "completed")
    start, end = T - timedelta(200), T - timedelta(140)
    rows = lines(
        get(
            http,
            sb,
            export_path(done["campaignId"]),
            startDate=str(start),
            endDate=str(start + timedelta(89)),
        )
    )
    check_rows(rows)
    assert len(rows) == 90 * 12
    assert {r["status"] for r in rows if r["report_date"] <= str(end)} == {"active"}
    assert {r["status"] for r in rows if r["report_date"] > str(end)} == {"ended"}
    assert {r["engagement_context"] for r in rows} == {"catalog"}
    # The oldest track campaign's rows predate target attribution: type and target ids are null.
    assert all(r["campaign_target_type"] is None and r["campaign_target_isrc"] is None for r in rows)
    assert all(r["campaign_target_playlist_id"] is None for r in rows)
    recent = lines(get(http, sb, export_path(campaign(sb, "ended")["campaignId"]), startDate=str(T)))
    assert all(r["campaign_target_type"] == "track" and r["campaign_target_isrc"] for r in recent)
    # Tail stops 30 days after the end.
    tail = lines(
        get(http, sb, export_path(done["campaignId"]), startDate=str(end), endDate=str(end + timedelta(60)))
    )
    assert tail[-1]["report_date"] == str(end + timedelta(30))
    # Recently ended: tail runs through today; never a row after today.
    ended = lines(
        get(http, sb, export_path(campaign(sb, "ended")["campaignId"]), endDate=str(T + timedelta(20)))
    )
    assert ended[-1]["report_date"] == str(T) and ended[-1]["status"] == "ended"
    for status in ("creating", "failed"):
        r = get(http, sb, export_path(campaign(sb, status)["campaignId"]))
        assert r.status_code == 200 and r.content == b"" and r.headers["X-Row-Count"] == "0"


def test_export_truncation_strict_and_params(sb: Sandbox, http: requests.Session) -> None:
    long = next(c for c in sb.campaigns() if c["status"] == "active" and c["campaignDuration"] == 180)
    path = export_path(long["campaignId"])
    rows = lines(get(http, sb, path))
    assert rows[0]["report_date"] == str(T - timedelta(89)) and rows[-1]["report_date"] == str(T)
    wide = lines(get(http, sb, path, startDate=str(T - timedelta(119)), endDate=str(T - timedelta(10))))
    assert wide[0]["report_date"] == str(T - timedelta(99))  # the most recent 90 days of the request
    sb.configure(strict_range=True)
    assert_error(get(http, sb, path), 400, "invalid_query_parameter")
    ok = get(http, sb, path, startDate=str(T - timedelta(89)), endDate=str(T))
    assert ok.content == b"".join(x + b"\n" for x in ok.content.splitlines()) and len(lines(ok)) == 90 * 12
    sb.configure(max_export_days=10)
    assert_error(
        get(http, sb, path, startDate=str(T - timedelta(10)), endDate=str(T)), 400, "invalid_query_parameter"
    )
    for bad in (
        {"startDate": "2026-5-1"},
        {"endDate": "2026-02-30"},
        {"startDate": ""},
        {"engagementContext": "x"},
    ):
        assert_error(get(http, sb, path, **bad), 400, "invalid_query_parameter")
    assert_error(get(http, sb, path, startDate="2026-04-02", endDate="2026-04-01"), 400, "invalid_date_range")


def test_rows_per_day_scaling_and_determinism(http: requests.Session) -> None:
    with Sandbox(today=T, rows_per_day=250, seed=7) as a, Sandbox(today=T, rows_per_day=250, seed=7) as b:
        cid = next(c["campaignId"] for c in a.campaigns() if c["status"] == "ended")
        ra = get(http, a, export_path(cid), startDate=str(T - timedelta(2)))
        rb = get(http, b, export_path(cid), startDate=str(T - timedelta(2)))
        assert ra.content == rb.content  # byte-identical, exported_at included
        rows = lines(ra)
        check_rows(rows)
        assert len(rows) == 3 * 250
        assert (
            len({r["country_code"] for r in rows}) > 10
            and len({r["engaged_spotify_track_id"] for r in rows}) > 10
        )
    with Sandbox(today=T, rows_per_day=7, seed=8) as c:
        rows = c.truth()
        assert rows and all(n == 7 for n in _per_day(rows).values())
    with Sandbox(today=T, rows_per_day=7, seed=9) as d:
        assert rows != d.truth()


def _per_day(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r["campaign_id"], r["report_date"])
        out[k] = out.get(k, 0) + 1
    return out


def test_many_campaigns() -> None:
    with Sandbox(today=T, campaigns=20, prewarm=True) as s:
        cs = s.campaigns()
        last = s.app.campaign_list()[-1]
        assert s.app.cache.get((last.uid, T, 0, True)) is not None  # prewarm encoded it already
    assert len(cs) == 20 and sum(c["status"] == "active" for c in cs) == 16
    assert max(T - date.fromisoformat(c["createdAt"][:10]) for c in cs).days > 300
    assert {"trackName" in c for c in cs[6:]} == {True, False}


# --- truth, revisions, day rollover --------------------------------------------------------------------
def test_truth_equals_full_exports(sb: Sandbox, http: requests.Session) -> None:
    truth = http.get(sb.base_url + "/_sandbox/truth").content
    assert truth == sb.truth_bytes() and truth.endswith(b"\n")
    rebuilt = []
    for c in sorted(sb.campaigns(), key=lambda c: (c["createdAt"], c["campaignId"])):
        start = date.fromisoformat(c["createdAt"][:10])
        while start <= T:
            r = get(
                http,
                sb,
                export_path(c["campaignId"]),
                startDate=str(start),
                endDate=str(start + timedelta(89)),
            )
            rebuilt.append(r.content)
            start += timedelta(90)
    assert b"".join(rebuilt) == truth
    one = campaign(sb, "ended")["campaignId"]
    r = http.get(sb.base_url + "/_sandbox/truth", params={"campaignId": one})
    assert r.content == get(http, sb, export_path(one)).content and int(r.headers["X-Row-Count"]) == 71 * 12
    assert [x["campaign_id"] for x in sb.truth(one)] == [one] * 71 * 12


def test_revise_changes_only_trailing_seven_days(sb: Sandbox, http: requests.Session) -> None:
    before = {_pk(r): r for r in sb.truth()}
    assert http.post(sb.base_url + "/_sandbox/revise").json() == {"revision": 1}
    after = {_pk(r): r for r in sb.truth()}
    assert before.keys() == after.keys()
    cutoff = str(T - timedelta(7))
    old = [k for k in before if k[0] < cutoff]
    recent = [k for k in before if k[0] >= cutoff]
    assert old and recent
    assert all(before[k] == after[k] for k in old)
    assert all(after[k]["exported_at"] > before[k]["exported_at"] for k in recent)
    changed = sum(before[k]["streams"] != after[k]["streams"] for k in recent)
    assert changed > len(recent) // 2
    cid = campaign(sb, "ended")["campaignId"]
    assert lines(get(http, sb, export_path(cid))) == sb.truth(cid)


def test_day_rollover_keeps_revised_history(sb: Sandbox) -> None:
    sb.revise()
    revised = {_pk(r): r for r in sb.truth()}
    sb.configure(today=str(T + timedelta(10)))
    later = {_pk(r): r for r in sb.truth()}
    assert max(k[0] for k in later) == str(T + timedelta(10))
    # Dates revised while in the window keep the revised values after they age out.
    assert all(later[k] == revised[k] for k in revised if k[0] < str(T))
    yesterday_then = [k for k in revised if k[0] == str(T) and revised[k]["engagement_context"] == "playlist"]
    assert yesterday_then and all(later[k]["playlist_position"] is not None for k in yesterday_then)
    sb.reset()
    assert max(r["report_date"] for r in sb.truth()) == str(T)


def _pk(r: dict[str, Any]) -> tuple[str, ...]:
    return (
        r["report_date"],
        r["campaign_id"],
        r["engagement_context"],
        r["country_code"],
        r["engaged_spotify_track_id"],
    )


def test_add_campaign(sb: Sandbox, http: requests.Session) -> None:
    r = http.post(sb.base_url + "/_sandbox/campaigns",
                  json={"campaignId": "camp_new1", "createdDaysAgo": 3, "campaignDuration": 14,
                        "targetType": "playlist", "status": "active"})  # fmt: skip
    assert r.status_code == 200 and r.json()["campaignId"] == "camp_new1"
    assert get(http, sb, "/v1/campaigns").json()["data"]["pagination"]["totalCount"] == 7
    rows = lines(get(http, sb, export_path("camp_new1")))
    assert len(rows) == 4 * 12 and rows[0]["report_date"] == str(T - timedelta(3))
    assert http.post(sb.base_url + "/_sandbox/campaigns", json={"campaignId": "camp_new1"}).status_code == 400
    c = sb.add_campaign(created_days_ago=0, target_type="track")
    assert len(lines(get(http, sb, export_path(c["campaignId"])))) == 12
    sb.reset()
    assert_error(get(http, sb, export_path("camp_new1")), 404, "campaign_not_found")


# --- request log, rate limits, latency -----------------------------------------------------------------
def test_request_log(sb: Sandbox, http: requests.Session) -> None:
    cid = campaign(sb, "ended")["campaignId"]
    http.get(sb.base_url + export_path(cid), params={"startDate": str(T)},
             headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"})  # fmt: skip
    get(http, sb, "/v1/ping", key="sk_sandbox_revoked")
    http.get(sb.base_url + "/_sandbox/config")  # admin calls are not logged
    log = http.get(sb.base_url + "/_sandbox/requests").json()
    assert [(e["path"], e["status"], e["rows"], e["auth"]) for e in log] == [
        (export_path(cid), 200, 12, "bearer"),
        ("/v1/ping", 401, None, "x-api-key"),
    ]
    assert log[0]["query"] == {"startDate": str(T)} and log[0]["accept"] == "application/x-ndjson"
    assert log[0]["method"] == "GET" and abs(log[0]["time"] - time.time()) < 60
    assert UUID_RE.fullmatch(log[0]["requestId"])
    assert "sk_" not in orjson.dumps(log).decode()
    assert http.delete(sb.base_url + "/_sandbox/requests").status_code == 200
    assert sb.requests() == []


def test_rate_limit(sb: Sandbox, http: requests.Session) -> None:
    sb.configure(rate_limit_per_minute=3)
    assert [get(http, sb, "/v1/ping").status_code for _ in range(3)] == [200] * 3
    r = get(http, sb, "/v1/ping")
    assert_error(r, 429, "rate_limit_exceeded")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert get(http, sb, "/v1/ping", key="sk_sandbox_noscope").status_code == 200  # per key
    assert http.get(sb.base_url + "/_sandbox/requests").status_code == 200  # admin is not limited
    sb.configure(rate_limit_per_minute=0, rate_limit_per_hour=3)
    r = get(http, sb, "/v1/ping")
    assert r.status_code == 429 and 3000 < int(r.headers["Retry-After"]) <= 3600
    sb.reset()
    assert get(http, sb, "/v1/ping").status_code == 200


def test_latency(sb: Sandbox, http: requests.Session) -> None:
    sb.configure(latency=0.3)
    t0 = time.monotonic()
    assert get(http, sb, "/v1/ping").status_code == 200
    assert time.monotonic() - t0 >= 0.3


# --- faults --------------------------------------------------------------------------------------------
def ended_export(sb: Sandbox) -> str:
    return sb.base_url + export_path(campaign(sb, "ended")["campaignId"])


def test_fault_status_faults_in_order(sb: Sandbox, http: requests.Session) -> None:
    r = http.post(sb.base_url + "/_sandbox/faults", json=[
        {"kind": "rate_limit", "retry_after": 7},
        {"kind": "server_error"},
        {"kind": "error", "status": 503, "code": "service_unavailable"},
        {"kind": "server_error", "status": 502, "path_contains": "/ping"},
    ])  # fmt: skip
    assert r.json() == {"queued": 4}
    url = ended_export(sb)
    assert get(http, sb, "/v1/campaigns").status_code == 200  # default path_contains is /export
    r = http.get(url, headers={"x-api-key": KEY})
    assert_error(r, 429, "rate_limit_exceeded")
    assert r.headers["Retry-After"] == "7"
    assert_error(http.get(url, headers={"x-api-key": KEY}), 500, "internal_error")
    assert_error(http.get(url, headers={"x-api-key": KEY}), 503, "service_unavailable")
    assert http.get(url, headers={"x-api-key": KEY}).status_code == 200
    assert_error(get(http, sb, "/v1/ping"), 502, "internal_error")
    assert [e["fault"] for e in sb.requests()] == [
        None,
        "rate_limit",
        "server_error",
        "error",
        None,
        "server_error",
    ]


def test_fault_times_and_clear(sb: Sandbox, http: requests.Session) -> None:
    sb.add_faults([{"kind": "server_error", "times": 2, "path_contains": ""}])
    assert [get(http, sb, "/v1/ping").status_code for _ in range(3)] == [500, 500, 200]
    sb.add_faults([{"kind": "server_error"}])
    assert http.delete(sb.base_url + "/_sandbox/faults").status_code == 200
    assert http.get(ended_export(sb), headers={"x-api-key": KEY}).status_code == 200
    assert http.post(sb.base_url + "/_sandbox/faults", json=[{"kind": "nope"}]).status_code == 400


def test_fault_reset_before_body(sb: Sandbox, http: requests.Session) -> None:
    sb.add_faults([{"kind": "reset_before_body"}])
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(ended_export(sb), headers={"x-api-key": KEY})
    assert http.get(ended_export(sb), headers={"x-api-key": KEY}).status_code == 200
    assert [e["status"] for e in sb.requests()] == [0, 200]


def test_fault_slow_first_byte(sb: Sandbox, http: requests.Session) -> None:
    sb.add_faults([{"kind": "slow_first_byte", "delay": 0.4}])
    t0 = time.monotonic()
    r = http.get(ended_export(sb), headers={"x-api-key": KEY})
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.4
    sb.add_faults([{"kind": "slow_first_byte", "delay": 0.3}])
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(ended_export(sb), headers={"x-api-key": KEY}, timeout=0.1)
    time.sleep(0.3)  # let the delayed handler finish before the next test resets state


def _raw_get(sb: Sandbox, url: str, **params: str) -> tuple[HTTPResponse, HTTPConnection]:
    host, port = sb.base_url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=10)
    qs = "&".join(f"{k}={v}" for k, v in params.items())
    conn.request("GET", url.removeprefix(sb.base_url) + (f"?{qs}" if qs else ""), headers={"x-api-key": KEY})
    return conn.getresponse(), conn


def test_fault_cut_mid_body(sb: Sandbox, http: requests.Session) -> None:
    full = http.get(ended_export(sb), headers={"x-api-key": KEY})
    sb.add_faults([{"kind": "cut_mid_body", "after_rows": 3}, {"kind": "cut_mid_body", "after_rows": 2}])
    resp, conn = _raw_get(sb, ended_export(sb))
    assert resp.status == 200 and resp.headers["Content-Length"] == full.headers["Content-Length"]
    assert resp.headers["X-Row-Count"] == full.headers["X-Row-Count"]
    with pytest.raises(IncompleteRead) as exc:
        resp.read()
    assert exc.value.partial == b"".join(full.content.splitlines(keepends=True)[:3])
    conn.close()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(ended_export(sb), headers={"x-api-key": KEY})


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ({"kind": "malformed_line", "line": 2}, "malformed"),
        ({"kind": "short_body", "drop": 2}, "short"),
        ({"kind": "long_body"}, "long"),
        ({"kind": "missing_field", "line": 3}, "missing"),
        ({"kind": "missing_field", "line": 1, "field": "engaged_track_isrc"}, "missing_isrc"),
        ({"kind": "bad_schema_version", "line": 4}, "schema"),
        ({"kind": "bad_value", "line": 4}, "value"),
        ({"kind": "bad_value", "line": 4, "field": "campaign_id", "value": "camp_other"}, "value_campaign"),
    ],
)
def test_fault_line_level(sb: Sandbox, http: requests.Session, fault: dict[str, Any], check: str) -> None:
    params = {"startDate": str(T - timedelta(1))}
    full = http.get(ended_export(sb), params=params, headers={"x-api-key": KEY}).content.splitlines(
        keepends=True
    )
    sb.add_faults([fault])
    r = http.get(ended_export(sb), params=params, headers={"x-api-key": KEY})
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content)
    assert r.headers["X-Row-Count"] == str(len(full)) == "24"
    got = r.content.splitlines(keepends=True)
    if check == "malformed":
        assert len(got) == 24 and got[0] == full[0] and got[2:] == full[2:]
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(got[1])
    elif check == "short":
        assert got == full[:22]
    elif check == "long":
        assert got == [*full, full[-1]]
    elif check in ("missing", "missing_isrc"):
        i, name = (2, "country_code") if check == "missing" else (0, "engaged_track_isrc")
        row = orjson.loads(got[i])
        assert name not in row and row == {k: v for k, v in orjson.loads(full[i]).items() if k != name}
        assert got[:i] + got[i + 1 :] == full[:i] + full[i + 1 :]
    elif check == "schema":
        assert orjson.loads(got[3])["schema_version"] == "2.0" and got[4:] == full[4:]
    else:
        row, before = orjson.loads(got[3]), orjson.loads(full[3])
        field, value = (
            ("report_date", f"{before['report_date']}T00:00:00Z")
            if check == "value"
            else ("campaign_id", "camp_other")
        )
        assert row == {**before, field: value} and got[:3] + got[4:] == full[:3] + full[4:]
    assert sb.requests()[-1]["fault"] == fault["kind"]


def test_fault_gzip_and_global_gzip(sb: Sandbox, http: requests.Session) -> None:
    plain = http.get(ended_export(sb), headers={"x-api-key": KEY}).content
    sb.add_faults([{"kind": "gzip"}])
    resp, conn = _raw_get(sb, ended_export(sb))
    raw = resp.read()
    conn.close()
    assert resp.headers["Content-Encoding"] == "gzip" and int(resp.headers["Content-Length"]) == len(raw)
    assert gzip.decompress(raw) == plain
    assert http.get(ended_export(sb), headers={"x-api-key": KEY}).headers.get("Content-Encoding") is None
    sb.configure(gzip=True)
    r = http.get(ended_export(sb), headers={"x-api-key": KEY})
    assert r.headers["Content-Encoding"] == "gzip" and r.content == plain  # requests decodes it


def test_fault_wide_range_400(sb: Sandbox, http: requests.Session) -> None:
    sb.add_faults([{"kind": "wide_range_400", "max_days": 30, "times": 2}])
    url = ended_export(sb)

    def span(days: int) -> requests.Response:
        return http.get(url, params={"startDate": str(T - timedelta(days - 1)), "endDate": str(T)},
                        headers={"x-api-key": KEY})  # fmt: skip

    assert_error(span(31), 400, "invalid_query_parameter")
    assert span(30).status_code == 200  # narrow requests do not use up the fault
    assert_error(span(60), 400, "invalid_query_parameter")
    assert span(60).status_code == 200


# --- CLI -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_url_and_exits_cleanly(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "0"}
    p = subprocess.Popen(
        [sys.executable, "-m", "soundlink_sandbox.server", "--port", "0", "--today", str(T)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        url = p.stdout.readline().decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert requests.get(url + "/v1/ping", headers={"x-api-key": KEY}, timeout=5).status_code == 200
        cid = requests.get(url + "/v1/campaigns", headers={"x-api-key": KEY}, timeout=5).json()["data"][
            "items"
        ][0]
        assert cid["createdAt"].startswith(str(T))  # --today pins the clock
        p.send_signal(sig)
        _, err = p.communicate(timeout=10)
    finally:
        p.kill()
    assert p.returncode == 0 and b"Traceback" not in err


def test_admin_config_faults_reset_over_http(sb: Sandbox, http: requests.Session) -> None:
    base = sb.base_url + "/_sandbox"
    cfg = http.post(base + "/config", json={"strict_range": True, "today": "2026-05-03"}).json()
    assert cfg["strict_range"] is True and cfg["today"] == "2026-05-03" and cfg["rate_limit_per_minute"] == 60
    assert http.get(base + "/config").json() == cfg
    assert http.post(base + "/config", json={"nope": 1}).status_code == 400
    http.post(base + "/faults", json={"kind": "gzip", "times": 3})
    assert http.get(base + "/faults").json() == [{"kind": "gzip", "times": 3, "path_contains": "/export"}]
    assert http.get(base + "/nope").status_code == 404
    assert http.post(base + "/reset").json() == {"ok": True}
    assert http.get(base + "/faults").json() == []
    assert http.get(base + "/config").json()["today"] == str(T)
    assert http.get(base + "/truth", params={"campaignId": "camp_nope"}).status_code == 404
