"""Campaigns as timelines: status and updatedAt per day, delivery runs (renewals), the account mixes.

The sandbox's clock is day-granular: a change scheduled at moment M is visible for the whole UTC day
M falls on and after (the time of day in `updatedAt` is informative). Rows depend only on the runs,
the report_date and the status on today (no rows while `creating` or `failed`), never on when the
campaign object was looked at, so truth and exports agree on every day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .data import b62, det_uuid, digest, iso_z, track_name

NO_ROW_STATUSES = frozenset({"creating", "failed"})
TAIL_DAYS = 30
ACCOUNT_MIXES = ("default", "large")
COMPLETED = "completed"

_CAMPAIGN_WORDS = (
    "Spring Push",
    "Single Launch",
    "Catalog Boost",
    "Playlist Growth",
    "Tour Warmup",
    "Evergreen",
)
_FINISH_DELAY = timedelta(hours=2)  # a run is marked done a little after its planned end
_SETUP_DELAY = timedelta(minutes=7)  # creating/failed campaigns were last touched right after creation


@dataclass(frozen=True)
class Event:
    day: date  # first UTC day the change is visible
    status: str
    at: datetime  # updatedAt from then on


@dataclass
class Campaign:
    campaign_id: str
    organization_id: str
    name: str
    target_type: str  # "track" | "playlist"
    created_at: datetime
    duration: int  # the first run's campaignDuration
    rows_per_day: int
    daily_budget: float
    seed: int
    events: list[Event]  # sorted by day; the last one on or before a day is the campaign on that day
    runs: list[tuple[date, int]] = field(default_factory=list)  # (first day, days) per delivery run
    extra: dict[str, Any] = field(default_factory=dict)
    uid: int = 0  # cache identity: a re-added or renewed campaign must not reuse old blocks
    target_known: bool = True  # False: legacy rows carry campaign_target_type null ("undetermined")
    delivery_day: date | None = None  # late start: first day rows are served (they reach back to start)
    clock: Callable[[], date] | None = None  # the sandbox's today (App sets it); None: the real UTC date

    def __post_init__(self) -> None:
        if not self.runs:
            self.runs = [(self.start, self.duration)]
        # Active periods: runs that overlap or touch merge, so a renewal before the end continues the run.
        periods: list[tuple[date, date]] = []
        for first, days in sorted(self.runs):
            last = first + timedelta(days=days)
            if periods and first <= periods[-1][1] + timedelta(days=1):
                periods[-1] = (periods[-1][0], max(periods[-1][1], last))
            else:
                periods.append((first, last))
        self._periods = periods

    # --- time -----------------------------------------------------------------------------------------
    @property
    def start(self) -> date:
        return self.created_at.date()

    @property
    def end(self) -> date:
        """The first run's planned end (createdAt's date + campaignDuration)."""
        return self.start + timedelta(days=self.duration)

    def today(self) -> date:
        return self.clock() if self.clock else datetime.now(UTC).date()

    def state(self, day: date) -> Event:
        for e in reversed(self.events):
            if e.day <= day:
                return e
        return self.events[0]  # before creation: the campaign as first created

    @property
    def status(self) -> str:
        return self.state(self.today()).status

    @property
    def updated_at(self) -> datetime:
        return self.state(self.today()).at

    # --- rows -----------------------------------------------------------------------------------------
    def delivers(self, today: date) -> bool:
        return self.rows_per_day > 0 and self.state(today).status not in NO_ROW_STATUSES

    def phase(self, d: date) -> tuple[bool, date, date] | None:
        """(running, period start, period end) of the active period d belongs to, or None if no row.

        Running: start <= d <= end (row status `active`); else d is in the 30-day tail (`ended`).
        """
        for first, last in reversed(self._periods):
            if first <= d:
                if d <= last:
                    return True, first, last
                if d <= last + timedelta(days=TAIL_DAYS):
                    return False, first, last
                return None
        return None

    def row_spans(self, today: date) -> list[tuple[date, date]]:
        """Inclusive report_date ranges with rows as of `today`: each run and its tail, cut by the next
        run and by today. Idle days between a tail and a renewal have no rows."""
        if not self.delivers(today):
            return []
        spans = []
        for i, (first, last) in enumerate(self._periods):
            if first > today:
                break
            stop = last + timedelta(days=TAIL_DAYS)
            if i + 1 < len(self._periods):
                stop = min(stop, self._periods[i + 1][0] - timedelta(days=1))
            spans.append((first, min(stop, today)))
        return spans

    def row_days(self, today: date) -> tuple[date, date] | None:
        """First and last report_date with rows as of `today` (a renewed campaign may have idle days
        in between: see row_spans)."""
        spans = self.row_spans(today)
        return (spans[0][0], spans[-1][1]) if spans else None

    @property
    def context(self) -> str:
        return "catalog" if self.target_type == "track" else "playlist"

    # --- API ------------------------------------------------------------------------------------------
    def to_api(self, day: date | None = None) -> dict[str, Any]:
        day = self.today() if day is None else day
        e = self.state(day)
        runs = [r for i, r in enumerate(self.runs) if i == 0 or r[0] <= day]
        planned_end = max(first + timedelta(days=days) for first, days in runs)
        return {
            "campaignId": self.campaign_id,
            "organizationId": self.organization_id,
            "status": e.status,
            "socialPlatform": "meta",
            "dailyBudget": self.daily_budget,
            "totalBudget": round(self.daily_budget * sum(days for _, days in runs), 2),
            # createdAt + campaignDuration stays the planned end of the latest run (the documented reading).
            "campaignDuration": (planned_end - self.start).days,
            "createdAt": iso_z(self.created_at),
            "updatedAt": iso_z(e.at),
            **self.extra,
        }


def with_run(events: list[Event], moment: datetime, days: int) -> list[Event]:
    """Events after a renewal at `moment` for `days`: `renewing` that day, `active` the next, then
    `completed` at the planned end. A completion not yet reached is superseded."""
    if days < 1:
        raise ValueError("a renewal's duration must be >= 1 day")
    r = moment.date()
    out = [e for e in events if not (e.status == COMPLETED and e.day >= r)]
    done = moment + timedelta(days=days) + _FINISH_DELAY
    out += [
        Event(r, "renewing", moment),
        Event(r + timedelta(days=1), "active", moment + timedelta(days=1)),
        Event(done.date(), COMPLETED, done),
    ]
    return sorted(out, key=lambda e: e.day)  # stable: on one day the later change wins


def _pinned_events(created: datetime, duration: int, status: str, age: int, today: date) -> list[Event]:
    """The legacy model: `status` is the campaign's status on the day it is added (with the updatedAt
    it always had); from then on an `active` campaign completes at its planned end, others keep theirs."""
    start = created.date()
    done = created + timedelta(days=duration) + _FINISH_DELAY
    if status in NO_ROW_STATUSES:
        return [Event(start, status, created + _SETUP_DELAY)]
    if status in (COMPLETED, "ended"):
        return [Event(start, "active", created), Event(min(today, done.date()), status, done)]
    edited = created + timedelta(days=age // 2, minutes=30)
    events = [Event(start, "active", created), Event(edited.date(), status, edited)]
    if status == "active" and done.date() > today:
        events.append(Event(done.date(), COMPLETED, done))
    return events


def make_campaign(
    *,
    seed: int,
    org_id: str,
    index: int,
    today: date,
    created_days_ago: int,
    duration: int,
    target_type: str,
    status: str | None,
    rows_per_day: int,
    campaign_id: str | None = None,
    name: str | None = None,
    renewals: Sequence[tuple[int, int]] = (),
    delivering_after_days: int | None = None,
) -> Campaign:
    """`status` given: the status on `today` (see _pinned_events). `renewals` ((days ago, duration),
    negative = in the future) or `delivering_after_days` instead derive every day's status."""
    h = digest(seed, "campaign", index)
    if campaign_id is None:
        campaign_id = f"camp_{b62(h[:8], 10)}" if index % 2 else det_uuid(seed, "campaign-id", index)
    start = today - timedelta(days=created_days_ago)
    # A campaign created "today" gets an early time so createdAt is rarely in the future.
    hour = 0 if created_days_ago == 0 else h[8] % 24
    created = datetime.combine(start, time(hour, h[9] % 60, h[10] % 60), UTC)
    runs = [(start, duration)]
    delivery_day = None
    if renewals or delivering_after_days:
        if status is not None:
            raise ValueError("status is derived from renewals / deliveringAfterDays: leave it out")
        events = [Event(start, "active", created)]
        if delivering_after_days:
            if not 0 < delivering_after_days <= duration:
                raise ValueError("deliveringAfterDays must be between 1 and campaignDuration")
            delivery_day = start + timedelta(days=delivering_after_days)
            active_at = created + timedelta(days=delivering_after_days)
            events = [
                Event(start, "creating", created + _SETUP_DELAY),
                Event(delivery_day, "active", active_at),
            ]
        done = created + timedelta(days=duration) + _FINISH_DELAY
        events.append(Event(done.date(), COMPLETED, done))
        for days_ago, days in renewals:
            moment = datetime.combine(today - timedelta(days=days_ago), created.timetz())
            if moment.date() <= runs[-1][0] or (delivery_day and moment.date() < delivery_day):
                raise ValueError("renewals must come in order, after the campaign started delivering")
            events = with_run(events, moment, days)
            runs.append((moment.date(), days))
    else:
        events = _pinned_events(created, duration, status or "active", created_days_ago, today)
    extra: dict[str, Any] = {"generation": 2 if created_days_ago < 100 else 1}
    if target_type == "track":
        extra["trackName"] = track_name(seed, campaign_id, 0)
    else:
        extra["playlistId"] = b62(digest(seed, "playlist", campaign_id), 22)
    return Campaign(
        campaign_id=campaign_id,
        organization_id=org_id,
        name=name or f"{_CAMPAIGN_WORDS[index % len(_CAMPAIGN_WORDS)]} #{index}",
        target_type=target_type,
        created_at=created,
        duration=duration,
        rows_per_day=rows_per_day,
        daily_budget=(10, 15, 25.5, 40, 12.75)[index % 5],
        seed=seed,
        events=events,
        runs=runs,
        extra=extra,
        delivery_day=delivery_day,
        # Old track campaigns predate target attribution, so their rows exercise the nullable target fields.
        target_known=not (target_type == "track" and created_days_ago >= 180),
    )


def _default_spec(k: int) -> tuple[int, int, str, str]:
    """Campaign k > 6 of the default mix: active, up to ~1 year old, planned end still ahead."""
    age = 14 + (k * 53) % 352
    return age, age + 30 + (k * 11) % 60, "track" if k % 2 else "playlist", "active"


def _large_spec(seed: int, k: int) -> tuple[int, int, str, str]:
    """Campaign k > 6 of a large account (labels, agencies): per 100 consecutive campaigns exactly
    88 completed long ago (last tail row more than 45 days ago), 3 completed recently (tail running or
    within the settling margin), 7 active, 2 failed."""
    slot = (k * 37) % 100  # 37 is coprime to 100: every block of 100 campaigns covers each slot once
    h = digest(seed, "mix", k)
    u = int.from_bytes(h[1:4], "big")
    days = 7 + h[0] % 84
    kind = "track" if h[4] % 3 else "playlist"
    if slot < 88:  # planned end 76..730 days ago: tail over 46+ days ago
        return days + 76 + u % (655 - days), days, kind, COMPLETED
    if slot < 91:  # planned end 1..75 days ago
        return days + 1 + u % 75, days, kind, COMPLETED
    if slot < 98:  # created 0..119 days ago, planned end 1..90 days ahead
        age = u % 120
        return age, age + 1 + h[5] % 90, kind, "active"
    return u % 730, 30, kind, "failed"


def default_campaigns(
    seed: int, org_id: str, today: date, count: int, rows_per_day: int, mix: str = "default"
) -> list[Campaign]:
    """The documented fixture set (see README), then more campaigns of the chosen account mix."""
    if mix not in ACCOUNT_MIXES:
        raise ValueError(f"account mix must be one of {ACCOUNT_MIXES}")
    specs = [
        (200, 60, "track", COMPLETED),  # ended T-140, tail over by T-110
        (120, 180, "track", "active"),  # history longer than one 90-day slice
        (45, 90, "playlist", "active"),
        (70, 50, "track", "ended"),  # ended T-20, tail still running
        (0, 30, "track", "creating"),  # no rows yet
        (30, 30, "playlist", "failed"),  # never any rows
    ]
    extra = _default_spec if mix == "default" else lambda k: _large_spec(seed, k)
    specs += [extra(k) for k in range(len(specs) + 1, count + 1)]
    return [
        make_campaign(
            seed=seed,
            org_id=org_id,
            index=i,
            today=today,
            created_days_ago=age,
            duration=dur,
            target_type=tt,
            status=st,
            rows_per_day=rows_per_day,
        )
        for i, (age, dur, tt, st) in enumerate(specs[:count], start=1)
    ]
