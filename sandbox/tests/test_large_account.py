"""Large accounts: 10,000 campaigns of a realistic mix, listed fast; the per-key limiter and spent quota."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import requests
from soundlink_sandbox import Sandbox
from soundlink_sandbox.ratelimit import RateLimiter

T = date(2026, 5, 1)
KEY = "sk_sandbox_0123456789abcdef"
N = 10_000


@pytest.fixture(scope="module")
def large() -> Iterator[tuple[Sandbox, float]]:
    t0 = time.perf_counter()
    with Sandbox(
        today=T, campaigns=N, account_mix="large", rate_limit_per_minute=0, rate_limit_per_hour=0
    ) as s:
        yield s, time.perf_counter() - t0


def test_large_account_starts_fast_with_a_realistic_mix(large: tuple[Sandbox, float]) -> None:
    sb, started = large
    assert started < 5, f"{N} campaigns took {started:.1f} s to start"  # about 0.5 s on 2 idle cores
    app = sb.app
    with Sandbox(today=T) as small:
        assert sb.campaigns()[:6] == small.campaigns()  # the documented fixtures come first, unchanged
    kinds: Counter[str] = Counter()
    for c in app.campaign_list()[6:]:
        spans = c.row_spans(T)
        if c.status == "failed":
            kinds["failed"] += not spans
        elif c.status == "completed":
            long_ago = spans[-1][1] < T - timedelta(days=45)
            kinds["completed long ago" if long_ago else "completed, tail or settling margin"] += 1
        elif c.status == "active":
            kinds["active"] += c.end > T and spans[-1][1] == T
    full_blocks = (N - 6) // 100 * 100
    assert kinds["completed long ago"] >= 0.88 * full_blocks and kinds["active"] >= 0.07 * full_blocks
    assert kinds["failed"] >= 0.02 * full_blocks
    assert kinds["completed, tail or settling margin"] >= 0.03 * full_blocks
    assert kinds.total() == N - 6
    assert {c.status for c in app.campaign_list()} == {"completed", "active", "ended", "creating", "failed"}
    # No row plan was built: rows are planned on first use.
    assert not app._plans


def test_large_account_listing(large: tuple[Sandbox, float]) -> None:
    sb, _ = large
    seen: list[str] = []
    t0 = time.perf_counter()
    with requests.Session() as http:
        for page in range(1, 101):
            r = http.get(sb.base_url + "/v1/campaigns", params={"page": page, "pageSize": 100},
                         headers={"x-api-key": KEY})  # fmt: skip
            data = r.json()["data"]
            assert data["pagination"] == {"page": page, "pageSize": 100, "totalCount": N, "totalPages": 100}
            seen += [c["createdAt"] + c["campaignId"] for c in data["items"]]
    took = time.perf_counter() - t0
    assert len(set(seen)) == N and seen == sorted(seen, reverse=True)
    assert took < 10, f"100 pages took {took:.1f} s"  # about 0.5 s on 2 idle cores
    one = sb.app.campaign_list()[500].campaign_id
    assert sb.truth(one) and sb.app._plans  # rows of one campaign, on demand


def test_default_mix_is_unchanged() -> None:
    with Sandbox(today=T, campaigns=40) as sb:
        assert Counter(c["status"] for c in sb.campaigns()[6:]) == {"active": 34}


def test_cli_account_mix() -> None:
    cmd = [sys.executable, "-m", "soundlink_sandbox.server", "--today", str(T), "--campaigns", "2000",
           "--account-mix", "large", "--rate-limit-per-minute", "0"]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None
        url = p.stdout.readline().decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        r = requests.get(url + "/_sandbox/campaigns", timeout=10).json()
        assert len(r) == 2000 and Counter(c["status"] for c in r)["completed"] > 1700
    finally:
        p.terminate()
        p.communicate(timeout=10)


# --- rate limits ---------------------------------------------------------------------------------------
def test_sliding_windows() -> None:
    rl = RateLimiter()
    assert [rl.hit("k", t, 2, 0) for t in (0.0, 10.0)] == [None, None]
    assert rl.hit("k", 20.0, 2, 0) == 40  # the hit at 0 leaves the minute at 60
    assert rl.hit("k", 59.5, 2, 0) == 1  # rounded up, never 0
    assert rl.hit("other", 20.0, 2, 0) is None  # per key
    assert rl.hit("k", 60.0, 2, 0) is None
    assert rl.hit("k", 61.0, 0, 3) == 3600 - 61  # the hour holds 0, 10, 60
    rl.spend("k", 5, 100.0)
    assert rl.usage("k", 120.0, 60, 600) == {"lastMinute": 5, "lastHour": 8, "retryAfter": None}
    assert rl.usage("k", 3650.0, 60, 600) == {"lastMinute": 0, "lastHour": 6, "retryAfter": None}


@pytest.fixture()
def limited() -> Iterator[Sandbox]:
    with Sandbox(today=T) as s:  # the documented 60/minute, 600/hour
        yield s


def ping(sb: Sandbox, http: requests.Session, **headers: str) -> requests.Response:
    return http.get(sb.base_url + "/v1/ping", headers=headers or {"x-api-key": KEY})


def test_quota_spent_elsewhere(limited: Sandbox) -> None:
    """590 of the key's 600 requests of the hour used by another client a minute ago."""
    sb = limited
    assert sb.spend_quota(590, seconds_ago=61) == {"lastMinute": 0, "lastHour": 590, "retryAfter": None}
    with requests.Session() as http:
        assert [ping(sb, http).status_code for _ in range(10)] == [200] * 10
        r = ping(sb, http, Authorization=f"Bearer {KEY}")  # the same key, however it is sent
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert 3530 <= int(r.headers["Retry-After"]) <= 3539
        assert ping(sb, http, **{"x-api-key": "sk_sandbox_noscope"}).status_code == 200  # another key
        assert sb.quota()["lastHour"] == 600
        assert abs(sb.quota()["retryAfter"] - int(r.headers["Retry-After"])) <= 1
        # Spent just now, with the minute window off: Retry-After is a whole hour.
        sb.reset()
        sb.configure(rate_limit_per_minute=0)
        body = http.post(sb.base_url + "/_sandbox/quota", json={"spend": 600}).json()
        assert body["lastHour"] == 600 and body["retryAfter"] == 3600
        r = ping(sb, http)
        assert r.status_code == 429 and 3599 <= int(r.headers["Retry-After"]) <= 3600
        # Spent just now with the minute window on: the minute is full first.
        sb.reset()  # back to 60/minute
        sb.spend_quota(590)
        r = ping(sb, http)
        assert r.status_code == 429 and 59 <= int(r.headers["Retry-After"]) <= 60
        assert http.get(sb.base_url + "/_sandbox/quota").json()["lastHour"] == 590
        bad = http.post(sb.base_url + "/_sandbox/quota", json={"spend": 1, "apiKey": "sk_sandbox_revoked"})
        assert bad.status_code == 400
        assert http.post(sb.base_url + "/_sandbox/quota", json={"spend": 1, "nope": 1}).status_code == 400
        assert sb.spend_quota(60, api_key="sk_sandbox_noscope")["lastMinute"] == 60
        assert ping(sb, http, **{"x-api-key": "sk_sandbox_noscope"}).status_code == 429
