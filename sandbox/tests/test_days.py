"""Days passing: today moves, campaigns complete, renew and start late, revisions stay in their window."""

from __future__ import annotations

import email.utils
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import requests
from soundlink_sandbox import Sandbox

T = date(2026, 5, 1)
KEY = "sk_sandbox_0123456789abcdef"
Row = dict[str, Any]


@pytest.fixture(autouse=True)
def _fresh(sb: Sandbox) -> None:
    sb.reset()


def api(http: requests.Session, sb: Sandbox, path: str, **params: Any) -> requests.Response:
    return http.get(sb.base_url + path, params=params, headers={"x-api-key": KEY})


def campaign(sb: Sandbox, cid: str) -> dict[str, Any]:
    return next(c for c in sb.campaigns() if c["campaignId"] == cid)


def export(http: requests.Session, sb: Sandbox, cid: str) -> list[bytes]:
    """Every row the export serves for a campaign through today, in 90-day slices from createdAt."""
    start, out = date.fromisoformat(campaign(sb, cid)["createdAt"][:10]), []
    while start <= sb.today():
        end = start + timedelta(days=89)
        r = api(http, sb, f"/v1/campaigns/{cid}/metrics/engagement/export", startDate=start, endDate=end)
        assert r.status_code == 200 and int(r.headers["X-Row-Count"]) == len(r.content.splitlines())
        out += r.content.splitlines(keepends=True)
        start = end + timedelta(days=1)
    return out


def by_pk(rows: list[Row]) -> dict[tuple[str, ...], Row]:
    keys = ("campaign_id", "report_date", "engagement_context", "country_code", "engaged_spotify_track_id")
    return {tuple(r[k] for k in keys): r for r in rows}


def report_days(rows: list[Row]) -> list[date]:
    return sorted({date.fromisoformat(r["report_date"]) for r in rows})


def moment(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# --- the clock -----------------------------------------------------------------------------------------
def test_set_today_advance_and_date_header(sb: Sandbox, http: requests.Session) -> None:
    assert sb.today() == T and sb.set_today("2026-06-10") == date(2026, 6, 10)
    assert sb.advance() == date(2026, 6, 11) and sb.advance(days=3) == date(2026, 6, 14)
    for r in (
        api(http, sb, "/v1/ping"),
        api(http, sb, "/v1/nope"),
        http.get(sb.base_url + "/_sandbox/config"),
    ):
        sent = email.utils.parsedate_to_datetime(r.headers["Date"])
        assert sent.date() == date(2026, 6, 14), r.headers["Date"]
        real = datetime.now(UTC)
        real_tod = timedelta(hours=real.hour, minutes=real.minute, seconds=real.second)
        tod = timedelta(hours=sent.hour, minutes=sent.minute, seconds=sent.second)
        assert abs(tod - real_tod) < timedelta(seconds=5) or abs(tod - real_tod) > timedelta(hours=23)
    assert http.post(sb.base_url + "/_sandbox/advance", json={"days": 2}).json()["today"] == "2026-06-16"
    assert http.post(sb.base_url + "/_sandbox/advance").json()["today"] == "2026-06-17"
    sb.set_today(None)  # follow the real date again
    real_today = datetime.now(UTC).date()
    assert sb.today() == real_today
    header = email.utils.parsedate_to_datetime(api(http, sb, "/v1/ping").headers["Date"])
    assert abs(header - datetime.now(UTC)) < timedelta(seconds=5)
    sb.reset()
    assert sb.today() == T


def test_a_date_skew_moves_only_the_date_header(sb: Sandbox, http: requests.Session) -> None:
    cid = sb.campaigns()[1]["campaignId"]
    rows = export(http, sb, cid)
    assert sb.configure(date_skew_days=-400)["date_skew_days"] == -400
    r = api(http, sb, "/v1/ping")
    assert email.utils.parsedate_to_datetime(r.headers["Date"]).date() == T - timedelta(days=400)
    assert sb.today() == T and export(http, sb, cid) == rows  # the data and its today do not move
    sb.reset()
    assert email.utils.parsedate_to_datetime(api(http, sb, "/v1/ping").headers["Date"]).date() == T


def test_export_end_after_today_and_start_in_the_future(sb: Sandbox, http: requests.Session) -> None:
    cid = next(c["campaignId"] for c in sb.campaigns() if c["campaignDuration"] == 180)
    path = f"/v1/campaigns/{cid}/metrics/engagement/export"
    r = api(http, sb, path, startDate=T - timedelta(2), endDate=T + timedelta(30))
    assert r.status_code == 200 and orjson.loads(r.content.splitlines()[-1])["report_date"] == str(T)
    assert int(r.headers["X-Row-Count"]) == 3 * 12  # no row after today
    # A range over the cap keeps its most recent 90 days, even the ones after today.
    r = api(http, sb, path, startDate=T - timedelta(100), endDate=T + timedelta(80))
    assert int(r.headers["X-Row-Count"]) == 10 * 12
    r = api(http, sb, path, startDate=T + timedelta(1), endDate=T + timedelta(5))
    assert r.status_code == 200 and r.content == b"" and r.headers["X-Row-Count"] == "0"


# --- status follows the day ----------------------------------------------------------------------------
def test_active_campaign_completes_at_its_planned_end(sb: Sandbox, http: requests.Session) -> None:
    c = next(c for c in sb.campaigns() if c["campaignDuration"] == 180)  # created T-120, planned end T+60
    created = moment(c["createdAt"])
    done = created + timedelta(days=180, hours=2)
    for day, status, updated in [
        (T + timedelta(30), "active", c["updatedAt"]),
        (done.date() - timedelta(1), "active", c["updatedAt"]),
        (done.date(), "completed", done.strftime("%Y-%m-%dT%H:%M:%SZ")),
        (done.date() + timedelta(100), "completed", done.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]:
        sb.set_today(day)
        now = api(http, sb, f"/v1/campaigns/{c['campaignId']}").json()["data"]
        assert (now["status"], now["updatedAt"]) == (status, updated), day
        assert {k: v for k, v in now.items() if k not in ("status", "updatedAt")} == {
            k: v for k, v in c.items() if k not in ("status", "updatedAt")
        }
    rows = sb.truth(c["campaignId"])
    end = created.date() + timedelta(days=180)
    assert report_days(rows)[-1] == end + timedelta(30)  # the tail, then nothing
    assert {r["status"] for r in rows if r["report_date"] > str(end)} == {"ended"}
    # The listing sorted by updatedAt follows the day too.
    listed = api(http, sb, "/v1/campaigns", pageSize=100, sortBy="updatedAt", sortOrder="desc").json()
    assert listed["data"]["items"][0]["campaignId"] == c["campaignId"]


def test_fixture_statuses_as_days_pass(sb: Sandbox) -> None:
    before = {c["campaignId"]: c for c in sb.campaigns()}
    sb.advance(400)
    after = {c["campaignId"]: c for c in sb.campaigns()}
    assert {before[k]["status"]: after[k]["status"] for k in before} == {
        "completed": "completed", "active": "completed", "ended": "ended", "creating": "creating",
        "failed": "failed",
    }  # fmt: skip
    for k, c in before.items():
        if c["status"] in ("completed", "ended", "creating", "failed"):
            assert after[k] == c  # nothing scheduled: unchanged


def served_rows(sb: Sandbox) -> dict[tuple[str, ...], bytes]:
    """Every row the sandbox serves through today, as raw lines by primary key."""
    out = {}
    for line in sb.truth_bytes().splitlines():
        r = orjson.loads(line)
        out[r["campaign_id"], r["report_date"], r["country_code"], r["engaged_spotify_track_id"]] = line
    return out


def test_days_passing_with_daily_revisions(http: requests.Session) -> None:
    """60 days, a revision each day: the export equals truth, served rows change only inside the window."""
    with Sandbox(today=T, rows_per_day=2) as sb:
        _days_passing(sb, http)


def _days_passing(sb: Sandbox, http: requests.Session) -> None:
    late = sb.add_campaign(created_days_ago=5, campaign_duration=40, delivering_after_days=12)["campaignId"]
    renewed = sb.add_campaign(created_days_ago=80, campaign_duration=20, renewals=[(-10, 15)])["campaignId"]
    seen: dict[tuple[str, ...], bytes] = {}
    for day in range(60):
        if day:
            sb.advance()
        today = sb.today()
        served = served_rows(sb)
        assert max(k[1] for k in served) == str(today)
        frozen = str(today - timedelta(days=8))
        for k, row in seen.items():  # what was served yesterday still is, unchanged unless in the window
            assert k in served and (k[1] >= frozen or served[k] == row), k
        before, _ = served, sb.revise()
        served = served_rows(sb)
        assert served.keys() == before.keys()
        changed = {k[1] for k in served if served[k] != before[k]}
        assert changed == {str(today - timedelta(days=i)) for i in range(8)}
        seen = served
        if day % 20 == 0:
            for cid in (late, renewed):
                assert b"".join(export(http, sb, cid)) == sb.truth_bytes(cid)
    assert len(sb.truth(late)) == (5 + 59 + 1) * 2  # created T-5; today T+59 is within its tail
    assert len(served_rows(sb)) == sb.app.truth_count()
    ordered = sorted(sb.campaigns(), key=lambda c: (c["createdAt"], c["campaignId"]))
    assert sb.truth_bytes() == b"".join(b"".join(export(http, sb, c["campaignId"])) for c in ordered)


# --- renewals ------------------------------------------------------------------------------------------
def test_renewal_in_the_past(sb: Sandbox) -> None:
    """Created T-200 for 20 days, renewed T-100 for 20: two runs with tails, 50 idle days between."""
    c = sb.add_campaign(campaign_id="camp_renewed", created_days_ago=200, campaign_duration=20,
                        renewals=[(100, 20)])  # fmt: skip
    created = moment(c["createdAt"])
    second = created + timedelta(days=100)  # the renewal moment: T-100 at createdAt's time of day
    done2 = second + timedelta(days=20, hours=2)
    assert (c["status"], c["updatedAt"]) == ("completed", done2.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert c["campaignDuration"] == 120 and c["totalBudget"] == round(c["dailyBudget"] * 40, 2)
    rows = sb.truth("camp_renewed")
    s1, s2 = T - timedelta(200), T - timedelta(100)
    want = [s1 + timedelta(i) for i in range(51)] + [s2 + timedelta(i) for i in range(51)]
    assert report_days(rows) == want and len(rows) == 1224
    status = {r["report_date"]: r["status"] for r in rows}
    assert {status[str(d)] for d in want[:21] + want[51:72]} == {"active"}
    assert {status[str(d)] for d in want[21:51] + want[72:]} == {"ended"}
    # Going back in time shows the history: completed and idle, renewing, active, completed again.
    first_done = (created + timedelta(days=20, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for day, status_then, updated, duration in [
        (s1 + timedelta(5), "active", c["createdAt"], 20),
        (s2 - timedelta(1), "completed", first_done, 20),
        (s2, "renewing", second.strftime("%Y-%m-%dT%H:%M:%SZ"), 120),
        (s2 + timedelta(1), "active", (second + timedelta(1)).strftime("%Y-%m-%dT%H:%M:%SZ"), 120),
    ]:
        sb.set_today(day)
        then = campaign(sb, "camp_renewed")
        assert (then["status"], then["updatedAt"], then["campaignDuration"]) == (
            status_then,
            updated,
            duration,
        )
        closed = [r for r in sb.truth("camp_renewed") if r["report_date"] < str(day)]  # today's is partial
        assert closed == [r for r in rows if r["report_date"] < str(day)]


def test_renew_today(sb: Sandbox, http: requests.Session) -> None:
    done = next(c for c in sb.campaigns() if c["status"] == "completed")  # created T-200, 60 days
    cid, before = done["campaignId"], sb.truth_bytes(done["campaignId"])
    r = http.post(sb.base_url + f"/_sandbox/campaigns/{cid}/renew", json={"durationDays": 20})
    assert r.status_code == 200, r.text
    now = r.json()
    created = moment(done["createdAt"])
    renewed_at = datetime.combine(T, created.timetz())
    assert (now["status"], now["updatedAt"]) == ("renewing", renewed_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert now["campaignDuration"] == 220 and now["createdAt"] == done["createdAt"]
    rows = sb.truth_bytes(cid)
    assert rows.startswith(before) and rows.count(b"\n") == before.count(b"\n") + 12  # old rows unchanged
    assert {x["status"] for x in sb.truth(cid) if x["report_date"] == str(T)} == {"active"}
    sb.advance()
    assert campaign(sb, cid)["status"] == "active"
    sb.advance(21)
    assert campaign(sb, cid)["status"] == "completed"
    assert campaign(sb, cid)["updatedAt"] == (renewed_at + timedelta(days=20, hours=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    sb.advance(60)
    assert report_days(sb.truth(cid))[-1] == T + timedelta(50)  # 20 days of the run, 30 of the tail
    sb.reset()
    assert sb.truth_bytes(cid) == before and campaign(sb, cid) == done


def test_renew_during_the_tail_and_errors(sb: Sandbox, http: requests.Session) -> None:
    ended = next(c for c in sb.campaigns() if c["status"] == "ended")  # ended T-20, tail until T+10
    cid = ended["campaignId"]
    old = [r for r in sb.truth(cid) if r["report_date"] < str(T)]
    sb.renew(cid, duration_days=10)
    assert campaign(sb, cid)["status"] == "renewing"
    sb.advance(5)
    rows = sb.truth(cid)
    assert [r for r in rows if r["report_date"] < str(T)] == old
    assert {r["status"] for r in rows if r["report_date"] >= str(T)} == {"active"}
    sb.set_today(T)
    with pytest.raises(ValueError, match="after the start"):
        sb.renew(cid)  # the latest run started today
    for status in ("failed", "creating"):
        other = next(c for c in sb.campaigns() if c["status"] == status)["campaignId"]
        r = http.post(sb.base_url + f"/_sandbox/campaigns/{other}/renew", json={})
        assert r.status_code == 400 and status in r.json()["error"]["message"]
    assert http.post(sb.base_url + "/_sandbox/campaigns/camp_nope/renew").status_code == 404
    r = http.post(sb.base_url + "/_sandbox/campaigns", json={"status": "active", "renewals": [[10, 5]]})
    assert r.status_code == 400
    with pytest.raises(ValueError, match="in order"):
        sb.add_campaign(created_days_ago=50, renewals=[(10, 5), (20, 5)])


# --- late start ----------------------------------------------------------------------------------------
def test_late_start_serves_rows_back_to_creation(sb: Sandbox, http: requests.Session) -> None:
    r = http.post(sb.base_url + "/_sandbox/campaigns", json={
        "campaignId": "camp_late", "createdDaysAgo": 10, "campaignDuration": 40, "deliveringAfterDays": 20,
    })  # fmt: skip
    c = r.json()
    assert r.status_code == 200 and c["status"] == "creating"
    created = moment(c["createdAt"])
    assert c["updatedAt"] == (created + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = created.date()
    for _ in range(9):
        sb.advance()
        assert campaign(sb, "camp_late")["status"] == "creating" and sb.truth("camp_late") == []
        assert api(http, sb, "/v1/campaigns/camp_late/metrics/engagement/export").content == b""
    sb.advance()  # day 20 after creation
    assert sb.today() == start + timedelta(20)
    now = campaign(sb, "camp_late")
    assert now["status"] == "active"
    assert now["updatedAt"] == (created + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = sb.truth("camp_late")
    assert report_days(rows) == [start + timedelta(i) for i in range(21)]
    assert {r["status"] for r in rows} == {"active"}
    # Rows generated when delivery began: back-filled days carry that day's export time or later.
    assert min(r["exported_at"] for r in rows) == f"{sb.today()}T06:00:00Z"
    assert b"".join(export(http, sb, "camp_late")) == sb.truth_bytes("camp_late")
    with pytest.raises(ValueError, match="deliveringAfterDays"):
        sb.add_campaign(created_days_ago=1, campaign_duration=5, delivering_after_days=6)


def test_added_campaign_status_is_the_status_today(sb: Sandbox) -> None:
    """An explicit status holds on the day the campaign is added; only `active` moves on (to completed)."""
    soon = sb.add_campaign(created_days_ago=10, campaign_duration=12)
    overrun = sb.add_campaign(created_days_ago=100, campaign_duration=80)  # planned end already past
    paused = sb.add_campaign(created_days_ago=10, campaign_duration=12, status="paused")
    assert [c["status"] for c in (soon, overrun, paused)] == ["active"] * 2 + ["paused"]
    sb.advance(3)
    now = {c["campaignId"]: c["status"] for c in sb.campaigns()}
    assert [now[c["campaignId"]] for c in (soon, overrun, paused)] == ["completed", "active", "paused"]
