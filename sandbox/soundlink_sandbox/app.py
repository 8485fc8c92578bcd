"""Sandbox state: keys, campaigns, revisions, rate limits, the fault queue and the request log.

The HTTP layer (server.py) and the Python `Sandbox` API both drive this one object, so an admin call
over HTTP and the same call from a test behave identically.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .campaigns import NO_ROW_STATUSES, Campaign, default_campaigns, make_campaign, with_run
from .data import REVISION_WINDOW_DAYS, BlockCache, RowPlan, det_uuid
from .ratelimit import RateLimiter

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
        "bad_value",
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
    "bad_value": {"line": 1, "field": "report_date", "value": "{report_date}T00:00:00Z"},
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
    date_skew_days: int = 0  # the Date header is this many days off today (a wrong clock); data does not move

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
    "date_skew_days": int,
}


class App:
    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        today: date | str | None = None,
        campaigns: int = 6,
        account_mix: str = "default",
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
        self._uids = itertools.count(1)  # cache identities
        self._base = default_campaigns(seed, self.org_id, self.anchor, campaigns, rows_per_day, account_mix)
        for c in self._base:
            c.uid = next(self._uids)
            c.clock = self.today
        # Added campaigns' ids derive from this index; like the cache uids it is never reset, so an id is
        # never reused after reset() (it stays the same for the same sequence of calls).
        self._indexes = itertools.count(1001 + len(self._base))
        self._lock = threading.RLock()
        self.cache = BlockCache(cache_mb * 1024 * 1024)
        self._plans: dict[int, RowPlan] = {}
        self.limiter = RateLimiter()
        self._reset_state()

    def _reset_state(self) -> None:
        with self._lock:
            self.config = replace(self._initial_config)
            self.campaigns: dict[str, Campaign] = {c.campaign_id: c for c in self._base}
            self._version = 0  # bumped when the campaign set changes (listing cache)
            self._listing: dict[tuple[str, bool], tuple[tuple[date, int], list[Campaign]]] = {}
            self.revise_days: list[date] = []  # the `today` of each revision, in order
            self._revised_sorted: list[date] = []  # the same, sorted (today may move backwards)
            self.faults: list[dict[str, Any]] = []
            self.log: list[dict[str, Any]] = []
            self.limiter.clear()

    def reset(self) -> None:
        self._reset_state()

    # --- time and revisions -------------------------------------------------------------------------
    def today(self) -> date:
        return self.config.today or datetime.now(UTC).date()

    def now(self, epoch: float) -> datetime:
        """The sandbox's moment for a real epoch time: today's date (pinned or real), the real time of day."""
        real = datetime.fromtimestamp(epoch, UTC)
        return datetime.combine(self.config.today, real.timetz()) if self.config.today else real

    def set_today(self, day: date | str | None) -> date:
        """Pin today (None: follow the real UTC date again). Campaign dates do not move with it."""
        return self.configure(today=day).today or self.today()

    def advance(self, days: int = 1) -> date:
        return self.set_today(self.today() + timedelta(days=days))

    def revise(self) -> int:
        with self._lock:
            self.revise_days.append(self.today())
            bisect.insort(self._revised_sorted, self.today())
            return len(self.revise_days)

    def revision_of(self, d: date) -> int:
        """How many revisions touched report_date d: those made on a day t with d >= t - 7.

        Counting per date (not one global counter) keeps rows older than the window frozen forever,
        even after the clock moves on. A revision on day t changes only served rows dated t-7 .. t: a
        row dated after t does not exist yet on day t, and is first served with the count it has.
        """
        return bisect.bisect_right(self._revised_sorted, d + timedelta(days=REVISION_WINDOW_DAYS))

    # --- campaigns and rows ------------------------------------------------------------------------
    def campaign_list(self) -> list[Campaign]:
        with self._lock:
            return list(self.campaigns.values())

    def sorted_campaigns(self, by: str, desc: bool) -> list[Campaign]:
        """The campaigns ordered by `created_at` or `updated_at` (then id), cached per day and campaign set,
        so paging through 10,000 campaigns does not sort them again for every page."""
        today = self.today()
        with self._lock:
            stamp = (today, self._version)
            hit = self._listing.get((by, desc))
            if hit is not None and hit[0] == stamp:
                return hit[1]
            items = sorted(
                self.campaigns.values(),
                key=lambda c: (c.created_at if by == "created_at" else c.state(today).at, c.campaign_id),
                reverse=desc,
            )
            self._listing[(by, desc)] = (stamp, items)
            return items

    def _store(self, c: Campaign) -> Campaign:
        c.uid = next(self._uids)
        c.clock = self.today
        self.campaigns[c.campaign_id] = c
        self._version += 1
        return c

    def add_campaign(
        self,
        *,
        campaign_id: str | None = None,
        created_days_ago: int = 0,
        campaign_duration: int = 30,
        target_type: str = "track",
        status: str | None = None,
        rows_per_day: int | None = None,
        name: str | None = None,
        renewals: Sequence[Sequence[int]] = (),
        delivering_after_days: int | None = None,
    ) -> Campaign:
        """A campaign created `created_days_ago` days before the current today (see README, "Days passing").

        `status` (default `active`) is its status today; `renewals` [(days ago, duration), ...] and
        `delivering_after_days` instead derive the status of every day from the campaign's lifecycle.
        """
        if target_type not in ("track", "playlist"):
            raise ValueError("targetType must be track or playlist")
        if created_days_ago < 0 or campaign_duration < 0:
            raise ValueError("createdDaysAgo and campaignDuration must be >= 0")
        with self._lock:
            if campaign_id in self.campaigns:
                raise ValueError(f"campaign {campaign_id} already exists")
            c = make_campaign(
                seed=self.seed,
                org_id=self.org_id,
                index=next(self._indexes),
                today=self.today(),
                created_days_ago=created_days_ago,
                duration=campaign_duration,
                target_type=target_type,
                status=status,
                rows_per_day=self.rows_per_day if rows_per_day is None else rows_per_day,
                campaign_id=campaign_id,
                name=name,
                renewals=[(int(a), int(b)) for a, b in renewals],
                delivering_after_days=delivering_after_days,
            )
            return self._store(c)

    def renew(self, campaign_id: str, duration_days: int = 30) -> Campaign:
        """Renew a campaign today for `duration_days` more days (see with_run). Its history is kept: the
        renewed campaign is a new object with a new cache identity, so only days from today on change."""
        with self._lock:
            old = self.campaigns.get(campaign_id)
            if old is None:
                raise KeyError(f"campaign {campaign_id} not found")
            today = self.today()
            if old.state(today).status in NO_ROW_STATUSES:
                raise ValueError(f"campaign {campaign_id} is {old.state(today).status}: it cannot be renewed")
            if today <= max(first for first, _ in old.runs):
                raise ValueError("a renewal must come after the start of the campaign's latest run")
            moment = datetime.combine(today, old.created_at.timetz())
            c = replace(
                old,
                events=with_run(old.events, moment, duration_days),
                runs=[*old.runs, (today, duration_days)],
            )
            self._plans.pop(old.uid, None)
            return self._store(c)

    def plan(self, c: Campaign) -> RowPlan:
        p = self._plans.get(c.uid)
        if p is None:
            p = self._plans[c.uid] = RowPlan(c)
        return p

    def block(self, c: Campaign, d: date, today: date) -> bytes:
        """One report_date's rows for c as JSONL bytes (cached; the caller keeps d within c.row_spans)."""
        rev = self.revision_of(d)
        key = (c.uid, d, rev, d == today)
        b = self.cache.get(key)
        if b is None:
            b = self.plan(c).block(d, rev, d == today)
            self.cache.put(key, b)
        return b

    def rows_between(self, c: Campaign, start: date, end: date, today: date) -> tuple[list[bytes], int]:
        blocks = []
        for first, last in c.row_spans(today):
            d, hi = max(start, first), min(end, last)
            while d <= hi:
                blocks.append(self.block(c, d, today))
                d += timedelta(days=1)
        return blocks, len(blocks) * c.rows_per_day

    def truth(self, campaign_id: str | None = None) -> Iterator[bytes]:
        today = self.today()
        for c in sorted(self.campaign_list(), key=lambda c: (c.created_at, c.campaign_id)):
            if campaign_id is None or c.campaign_id == campaign_id:
                yield from self.rows_between(c, c.start, today, today)[0]

    def truth_count(self, campaign_id: str | None = None) -> int:
        today = self.today()
        return sum(
            ((last - first).days + 1) * c.rows_per_day
            for c in self.campaign_list()
            if campaign_id in (None, c.campaign_id)
            for first, last in c.row_spans(today)
        )

    def prewarm(self) -> None:
        for _ in self.truth():
            pass

    # --- rate limits -------------------------------------------------------------------------------
    def spend_quota(self, n: int, now: float, api_key: str | None = None, seconds_ago: float = 0.0) -> None:
        """Count n requests made `seconds_ago` seconds before `now` by another client of the key."""
        if seconds_ago < 0:
            raise ValueError("secondsAgo must be >= 0")
        self.limiter.spend(self._limited_key(api_key), int(n), now - seconds_ago)

    def quota(self, now: float, api_key: str | None = None) -> dict[str, int | None]:
        cfg = self.config
        key = self._limited_key(api_key)
        return self.limiter.usage(key, now, cfg.rate_limit_per_minute, cfg.rate_limit_per_hour)

    def _limited_key(self, api_key: str | None) -> str:
        key = self.api_key if api_key is None else api_key
        if not isinstance(self.keys.get(key), frozenset):
            raise ValueError("apiKey must be one of the sandbox's valid keys")
        return key

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
