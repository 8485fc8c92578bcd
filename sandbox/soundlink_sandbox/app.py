"""Sandbox state: keys, campaigns, revisions, rate limits, the fault queue and the request log.

The HTTP layer (server.py) and the Python `Sandbox` API both drive this one object, so an admin call
over HTTP and the same call from a test behave identically.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .data import (
    REVISION_WINDOW_DAYS,
    BlockCache,
    Campaign,
    RowPlan,
    default_campaigns,
    det_uuid,
    make_campaign,
)

DEFAULT_API_KEY = "sk_sandbox_0123456789abcdef"
BOTH_SCOPES = frozenset({"campaigns:read", "metrics:read"})
# Built-in keys: value is the key's scopes, or the 401 code the key answers with.
EXTRA_KEYS: dict[str, frozenset[str] | str] = {
    "sk_sandbox_campaignsonly": frozenset({"campaigns:read"}),
    "sk_sandbox_metricsonly": frozenset({"metrics:read"}),
    "sk_sandbox_noscope": frozenset(),
    "sk_sandbox_revoked": "api_key_revoked",
    "sk_sandbox_expired": "api_key_expired",
}

EARLY_FAULTS = frozenset({"rate_limit", "server_error", "error", "reset_before_body", "slow_first_byte"})
RANGE_FAULTS = frozenset({"wide_range_400"})
BODY_FAULTS = frozenset(
    {
        "cut_mid_body",
        "malformed_line",
        "short_body",
        "long_body",
        "missing_field",
        "bad_schema_version",
        "gzip",
    }
)
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    "rate_limit": {"retry_after": 1},
    "server_error": {"status": 500, "code": "internal_error"},
    "error": {"status": 400, "code": "invalid_query_parameter"},
    "reset_before_body": {},
    "slow_first_byte": {"delay": 2.0},
    "cut_mid_body": {"after_rows": 1},
    "malformed_line": {"line": 1},
    "short_body": {"drop": 1},
    "long_body": {"extra": 1},
    "missing_field": {"line": 1, "field": "country_code"},
    "bad_schema_version": {"line": 1, "value": "2.0"},
    "gzip": {},
    "wide_range_400": {"max_days": 30},
}


@dataclass
class Config:
    """Options that can change at runtime through /_sandbox/config."""

    rate_limit_per_minute: int = 60
    rate_limit_per_hour: int = 600
    strict_range: bool = False
    max_export_days: int = 90
    latency: float = 0.0
    gzip: bool = False
    today: date | None = None  # None: the real UTC date, read per request

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["today"] = self.today.isoformat() if self.today else None
        return d


_CONFIG_TYPES: dict[str, Callable[[Any], Any]] = {
    "rate_limit_per_minute": int,
    "rate_limit_per_hour": int,
    "strict_range": bool,
    "max_export_days": int,
    "latency": float,
    "gzip": bool,
    "today": lambda v: None if v is None else (v if isinstance(v, date) else date.fromisoformat(v)),
}


class RateLimiter:
    """Sliding one-minute and one-hour windows per key; only admitted requests count."""

    def __init__(self) -> None:
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float, per_minute: int, per_hour: int) -> int | None:
        """Record a request and return None, or return Retry-After seconds (>= 1) without recording."""
        with self._lock:
            hits = self._hits.setdefault(key, [])
            del hits[: bisect.bisect_right(hits, now - 3600)]
            wait = 0.0
            for limit, window in ((per_minute, 60), (per_hour, 3600)):
                if limit <= 0:  # 0 disables that window (handy for benchmarks)
                    continue
                recent = len(hits) - bisect.bisect_right(hits, now - window)
                if recent >= limit:
                    # The slot frees when the oldest hit that keeps us at the limit leaves the window.
                    oldest = hits[len(hits) - limit]
                    wait = max(wait, oldest + window - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            hits.append(now)
            return None

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


class App:
    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        today: date | str | None = None,
        campaigns: int = 6,
        rows_per_day: int = 12,
        seed: int = 42,
        rate_limit_per_minute: int = 60,
        rate_limit_per_hour: int = 600,
        max_export_days: int = 90,
        strict_range: bool = False,
        latency: float = 0.0,
        gzip: bool = False,
        cache_mb: int = 2048,
    ) -> None:
        if isinstance(today, str):
            today = date.fromisoformat(today)
        self.api_key = api_key
        self.seed = seed
        self.rows_per_day = rows_per_day
        self.org_id = det_uuid(seed, "organization")
        self.keys: dict[str, frozenset[str] | str] = {**EXTRA_KEYS, api_key: BOTH_SCOPES}
        self._initial_config = Config(
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_per_hour=rate_limit_per_hour,
            strict_range=strict_range,
            max_export_days=max_export_days,
            latency=latency,
            gzip=gzip,
            today=today,
        )
        self.config = replace(self._initial_config)
        # Campaign dates are anchored once, so a long-running server's campaigns do not drift with the clock.
        self.anchor = today or datetime.now(UTC).date()
        self._uids = itertools.count(1)
        self._base = default_campaigns(seed, self.org_id, self.anchor, campaigns, rows_per_day)
        for c in self._base:
            c.uid = next(self._uids)
        self._lock = threading.RLock()
        self.cache = BlockCache(cache_mb * 1024 * 1024)
        self._plans: dict[int, RowPlan] = {}
        self.limiter = RateLimiter()
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self.config = replace(self._initial_config)
            self.campaigns: dict[str, Campaign] = {c.campaign_id: c for c in self._base}
            self.revise_days: list[date] = []  # the `today` of each revision, in order
            self.faults: list[dict[str, Any]] = []
            self.log: list[dict[str, Any]] = []
            self.limiter.clear()

    def reset(self) -> None:
        self._reset_state()

    # --- time and revisions -------------------------------------------------------------------------
    def today(self) -> date:
        return self.config.today or datetime.now(UTC).date()

    def revise(self) -> int:
        with self._lock:
            self.revise_days.append(self.today())
            return len(self.revise_days)

    def revision_of(self, d: date) -> int:
        """How many revisions touched report_date d: those made while d was within the trailing 7 days.

        Counting per date (not one global counter) keeps rows older than the window frozen forever,
        even after the clock moves on.
        """
        return sum(1 for t in self.revise_days if d >= t - timedelta(days=REVISION_WINDOW_DAYS))

    # --- campaigns and rows ------------------------------------------------------------------------
    def campaign_list(self) -> list[Campaign]:
        with self._lock:
            return list(self.campaigns.values())

    def add_campaign(
        self,
        *,
        campaign_id: str | None = None,
        created_days_ago: int = 0,
        campaign_duration: int = 30,
        target_type: str = "track",
        status: str = "active",
        rows_per_day: int | None = None,
        name: str | None = None,
    ) -> Campaign:
        if target_type not in ("track", "playlist"):
            raise ValueError("targetType must be track or playlist")
        if created_days_ago < 0 or campaign_duration < 0:
            raise ValueError("createdDaysAgo and campaignDuration must be >= 0")
        with self._lock:
            if campaign_id in self.campaigns:
                raise ValueError(f"campaign {campaign_id} already exists")
            uid = next(self._uids)
            c = make_campaign(
                seed=self.seed,
                org_id=self.org_id,
                index=1000 + uid,
                today=self.today(),
                created_days_ago=created_days_ago,
                duration=campaign_duration,
                target_type=target_type,
                status=status,
                rows_per_day=self.rows_per_day if rows_per_day is None else rows_per_day,
                campaign_id=campaign_id,
                name=name,
            )
            c.uid = uid
            self.campaigns[c.campaign_id] = c
            return c

    def plan(self, c: Campaign) -> RowPlan:
        p = self._plans.get(c.uid)
        if p is None:
            p = self._plans[c.uid] = RowPlan(c)
        return p

    def block(self, c: Campaign, d: date, today: date) -> bytes:
        """One report_date's rows for c as JSONL bytes (cached; empty outside the campaign's row days)."""
        span = c.row_days(today)
        if span is None or not span[0] <= d <= span[1]:
            return b""
        rev = self.revision_of(d)
        key = (c.uid, d, rev, d == today)
        b = self.cache.get(key)
        if b is None:
            b = self.plan(c).block(d, rev, d == today)
            self.cache.put(key, b)
        return b

    def rows_between(self, c: Campaign, start: date, end: date, today: date) -> tuple[list[bytes], int]:
        span = c.row_days(today)
        if span is None:
            return [], 0
        lo, hi = max(start, span[0]), min(end, span[1])
        days = [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
        return [self.block(c, d, today) for d in days], len(days) * c.rows_per_day

    def truth(self, campaign_id: str | None = None) -> Iterator[bytes]:
        today = self.today()
        for c in sorted(self.campaign_list(), key=lambda c: (c.created_at, c.campaign_id)):
            if campaign_id is not None and c.campaign_id != campaign_id:
                continue
            span = c.row_days(today)
            if span is not None:
                yield from self.rows_between(c, span[0], span[1], today)[0]

    def truth_count(self, campaign_id: str | None = None) -> int:
        today = self.today()
        n = 0
        for c in self.campaign_list():
            span = c.row_days(today)
            if span is not None and campaign_id in (None, c.campaign_id):
                n += ((span[1] - span[0]).days + 1) * c.rows_per_day
        return n

    def prewarm(self) -> None:
        for _ in self.truth():
            pass

    # --- runtime config ----------------------------------------------------------------------------
    def configure(self, **changes: Any) -> Config:
        unknown = set(changes) - set(_CONFIG_TYPES)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}; allowed: {sorted(_CONFIG_TYPES)}")
        with self._lock:
            self.config = replace(self.config, **{k: _CONFIG_TYPES[k](v) for k, v in changes.items()})
            return self.config

    # --- faults ------------------------------------------------------------------------------------
    def add_faults(self, faults: list[dict[str, Any]]) -> int:
        parsed = []
        for f in faults:
            if not isinstance(f, dict) or f.get("kind") not in FAULT_DEFAULTS:
                raise ValueError(f"bad fault {f!r}; kinds: {sorted(FAULT_DEFAULTS)}")
            full = {"times": 1, "path_contains": "/export", **FAULT_DEFAULTS[f["kind"]], **f}
            if int(full["times"]) < 1:
                raise ValueError("times must be >= 1")
            parsed.append(full)
        with self._lock:
            self.faults.extend(parsed)
            return len(self.faults)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def take_fault(
        self, path: str, kinds: frozenset[str], applies: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any] | None:
        """Consume one use of the earliest queued fault of `kinds` that matches this request."""
        with self._lock:
            for i, f in enumerate(self.faults):
                if f["kind"] in kinds and f["path_contains"] in path and (applies is None or applies(f)):
                    f["times"] = int(f["times"]) - 1
                    if f["times"] <= 0:
                        del self.faults[i]
                    return dict(f)
            return None

    # --- request log -------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.log)

    def clear_requests(self) -> None:
        with self._lock:
            self.log.clear()
