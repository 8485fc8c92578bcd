"""source-soundlink benchmarks against the local sandbox (see benchmarks/README.md).

Default (`make bench`): throughput. One 90-day export of 6000 rows/day for one campaign, read by the
orjson anchor and by `source-soundlink read` alternately (ABAB, --pairs pairs), stdout to /dev/null,
after one untimed counted run of each (warm-up + exact record count).

    .venv/bin/python benchmarks/run.py [--rows-per-day 6000] [--days 90] [--pairs 3]
        [--memory] [--concurrency] [--requests] [--scale] [--all]

--scale: large accounts (100, 1,000 and 10,000 campaigns, about 90 % of them settled): a backfill and an
incremental sync each, with wall time, peak RSS, export requests and the STATE output; then a backfill of
3,000 campaigns bound by the default request budget, on a clock sped up 120x for 3 hours: STATE messages
and bytes per hour, and what a 10,000-campaign account writes per hour and per day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from harness import (
    BIN,
    DEFAULT_KEY,
    ROOT,
    Child,
    Sandbox,
    catalog,
    created_date,
    final_states,
    machine,
    median,
    run_child,
    utc_today,
    write_json,
)
from orjson_loop import export_urls

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
ANCHOR, CONNECTOR = "orjson loop", "source-soundlink"
RATIO_TARGET = 0.60
PEAK_LIMIT_MIB = 100.0
FLAT_TOLERANCE_MIB = 10.0
MEMORY_STALL_S = 3.0
UNLIMITED = ["--rate-limit-per-minute", "0", "--rate-limit-per-hour", "0"]  # 0 disables the sandbox limit
UNLIMITED_BUDGET = {"requests_per_minute": 100_000, "requests_per_hour": 1_000_000}  # the config maxima
TERMINAL_STATUSES = {"completed", "ended", "stopped", "failed"}
SETTLE_DAYS = 30 + 7 + 1  # post-end tail + revision window + the last day closing
SCALE_PEAK_LIMIT_MIB = 150.0  # peak RSS of a sync of 10,000 campaigns
STATE_BYTES_FACTOR = 10  # a sync's STATE output, at most this many times its final state


class Bench:
    """Shared state of one invocation: options, temp dir, printed report, JSON results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="soundlink-bench-"))
        self.results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
        self.connector = (
            shlex.split(args.connector_cmd) if args.connector_cmd else [str(BIN / "source-soundlink")]
        )
        self.sandbox_cmd = shlex.split(args.sandbox_cmd) if args.sandbox_cmd else None
        self.failures: list[str] = []

    def sandbox(self, *flags: str) -> Sandbox:
        sb = Sandbox(*flags, cmd=self.sandbox_cmd)
        up = f"{sb.base_url}, {len(sb.campaigns)} campaigns, up in {sb.startup_s:.1f} s"
        print(f"  sandbox {' '.join(flags)}: {up}")
        return sb

    def config(self, sb: Sandbox, name: str, ids: list[str], start: dt.date, **extra: Any) -> Path:
        cfg = {"api_key": DEFAULT_KEY, "base_url": sb.base_url, "campaign_ids": ids, "start_date": str(start)}
        return write_json(self.tmp / f"{name}.json", cfg | extra)

    def connector_argv(
        self, config: Path, state: Path | None = None, sync_mode: str = "incremental"
    ) -> list[str]:
        cat = write_json(self.tmp / f"catalog-{sync_mode}.json", catalog(sync_mode))
        argv = [*self.connector, "read", "--config", str(config), "--catalog", str(cat)]
        return [*argv, "--state", str(state)] if state else argv

    def measure(self, sb: Sandbox, argv: list[str], *, count: bool, stall_s: float = 0.0) -> dict[str, Any]:
        sb.clear()
        cpu0 = sb.cpu()
        child = run_child(argv, count=count, stall_s=stall_s)
        exports = sb.exports_seen()
        row = summary(child) | {
            "export_requests": len(exports),
            "export_429": sum(1 for r in exports if r.get("status") == 429),
            "export_by_campaign": by_campaign(exports),
            "rows_served": sum(r.get("rows") or 0 for r in exports if r.get("status") == 200),
            "sandbox_cpu_s": round(sb.cpu() - cpu0, 3),
        }
        name = Path(argv[1] if argv[0] == sys.executable else argv[0]).name
        if child.returncode != 0 or child.errors:
            self.fail(f"{name} exited {child.returncode}: {child.errors[:3]} {child.stderr[-800:]}")
        if count and child.records != row["rows_served"]:
            self.fail(f"{name} emitted {child.records:,} records for {row['rows_served']:,} rows served")
        return row | {"_child": child}

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  !! {message}")


def summary(child: Child) -> dict[str, Any]:
    return {
        "wall_s": round(child.wall_s, 3),
        "cpu_s": round(child.cpu_s, 3),
        "peak_mib": round(child.peak_mib, 1),
        "records": child.records,
        "returncode": child.returncode,
    }


def by_campaign(exports: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in exports:
        cid = r["path"].split("/campaigns/", 1)[1].split("/", 1)[0]
        counts[cid] = counts.get(cid, 0) + 1
    return counts


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in cells:
        first, *rest = zip(r, widths, strict=True)
        print("  " + "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)]))


def pick_campaigns(sb: Sandbox, start: dt.date, n: int) -> list[str]:
    """Active campaigns that existed on `start`, oldest first; then any others."""
    ranked = sorted(
        sb.campaigns, key=lambda c: (c["status"] != "active", created_date(c) > start, c["createdAt"])
    )
    return [c["campaignId"] for c in ranked[:n]]


def curl_export(bench: Bench, sb: Sandbox, urls: list[str], runs: int = 3) -> dict[str, Any] | None:
    """The same export bytes fetched by curl into /dev/null: what the sandbox + loopback can serve."""
    curl = shutil.which("curl")
    if not curl:
        return None
    argv = [curl, "-sS", "--fail", "-H", f"x-api-key: {DEFAULT_KEY}", "-H", "Accept: application/x-ndjson"]
    argv += ["-w", "%{size_download}\\n"]
    for url in urls:
        argv += ["-o", "/dev/null", url]
    walls, size = [], 0
    for _ in range(runs):
        child = run_child(argv, count=False)
        walls.append(child.wall_s)
        if child.returncode != 0:
            bench.fail(f"curl exited {child.returncode}")
            return None
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    size = sum(int(x) for x in out.split())
    return {"wall_s": round(median(walls), 3), "bytes": size}


# ---------------------------------------------------------------------------------------------- scenarios


def throughput(bench: Bench) -> None:
    days, rpd, pairs = bench.args.days, bench.args.rows_per_day, bench.args.pairs
    n = days * rpd
    start = utc_today() - dt.timedelta(days=days - 1)
    print(f"\n== throughput: {days} days x {rpd} rows/day = {n:,} rows, {pairs} ABAB pairs")
    with bench.sandbox("--campaigns", "2", "--rows-per-day", str(rpd), "--prewarm", *UNLIMITED) as sb:
        ids = [bench.args.campaign_id] if bench.args.campaign_id else pick_campaigns(sb, start, 1)
        cfg = bench.config(sb, "throughput", ids, start)
        urls = export_urls({"base_url": sb.base_url, "campaign_ids": ids, "start_date": str(start)})
        print(f"  campaign {ids[0]}, {start} .. today: {len(urls)} export request(s) expected")
        variants = {
            ANCHOR: [sys.executable, str(HERE / "orjson_loop.py"), "--config", str(cfg)],
            CONNECTOR: bench.connector_argv(cfg),
        }
        counted = {}
        for name, argv in variants.items():  # warm-up (untimed) doubles as the exact record count
            counted[name] = public(bench.measure(sb, argv, count=True))
            if counted[name]["records"] != n:
                bench.fail(f"{name} emitted {counted[name]['records']:,} records, expected {n:,}")
        curl = curl_export(bench, sb, urls)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(pairs):
            for name, argv in variants.items():
                runs[name].append(public(bench.measure(sb, argv, count=False)))

    rows = []
    for name, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        rows.append(
            [
                name,
                n,
                f"{median(walls):.3f} ({min(walls):.2f}-{max(walls):.2f})",
                f"{n / median(walls):,.0f}",
                f"{median([r['cpu_s'] for r in rs]):.2f}",
                f"{max(r['peak_mib'] for r in rs):.1f}",
                rs[0]["export_requests"],
                f"{median([r['sandbox_cpu_s'] for r in rs]):.2f}",
                counted[name]["records"],
            ]
        )
    if curl:
        wall = curl["wall_s"]
        rows.append(["curl > /dev/null", n, f"{wall:.3f}", f"{n / wall:,.0f}", "", "", len(urls), "", ""])
    table(
        ["variant", "N rows", "wall s median (min-max)", "rows/s", "cpu s", "peak MiB", "export req",
         "sandbox cpu s", "records counted"],
        rows,
    )  # fmt: skip
    ratios = [a["wall_s"] / c["wall_s"] for a, c in zip(runs[ANCHOR], runs[CONNECTOR], strict=True)]
    ratio = median(ratios)
    cpu_ratio = median([a["cpu_s"] / c["cpu_s"] for a, c in zip(runs[ANCHOR], runs[CONNECTOR], strict=True)])
    peak = max(r["peak_mib"] for r in runs[CONNECTOR] + [counted[CONNECTOR]])
    print(f"  connector/anchor throughput, median of per-pair ratios: {ratio:.1%}")
    print(f"    pairs {', '.join(f'{r:.1%}' for r in ratios)} -> {verdict(ratio >= RATIO_TARGET)} (>= 60 %)")
    print(f"  (CPU-time ratio anchor/connector {cpu_ratio:.1%}: insensitive to other load on the machine)")
    print(f"  connector peak RSS {peak:.1f} MiB -> {verdict(peak <= PEAK_LIMIT_MIB)} (<= 100 MiB)")
    if curl:
        print(
            f"  curl: {curl['bytes'] / 1e6:,.0f} MB in {curl['wall_s']:.3f} s, the sandbox's serving ceiling"
        )
    if ratio < RATIO_TARGET or peak > PEAK_LIMIT_MIB:
        bench.fail(f"throughput: ratio {ratio:.1%}, peak {peak:.1f} MiB")
    bench.results["throughput"] = {
        "rows": n,
        "campaign_ids": ids,
        "start_date": str(start),
        "counted": counted,
        "runs": runs,
        "ratios": ratios,
        "ratio_median": ratio,
        "cpu_ratio_median": cpu_ratio,
        "connector_peak_mib": peak,
        "curl": curl,
        "pass": ratio >= RATIO_TARGET and peak <= PEAK_LIMIT_MIB,
    }


def memory(bench: Bench) -> None:
    rpd, stall = bench.args.memory_rows_per_day, MEMORY_STALL_S
    print(f"\n== memory: connector only, {rpd} rows/day; destinations: /dev/null (fast) and stalled")
    print(
        f"   (stalled: reads nothing for {stall:.0f} s, then counts, so every buffer in the connector fills)"
    )
    start = utc_today() - dt.timedelta(days=89)
    cases = []
    with bench.sandbox("--campaigns", "4", "--rows-per-day", str(rpd), *UNLIMITED) as sb:
        every = [c["campaignId"] for c in sb.campaigns]
        for url in export_urls({"base_url": sb.base_url, "campaign_ids": every, "start_date": str(start)}):
            sb.warm(url)
        one = [bench.args.campaign_id] if bench.args.campaign_id else pick_campaigns(sb, start, 1)
        for label, ids, days in (("one response, 9 days", one, 9), ("one response, 90 days", one, 90),
                                 (f"{len(every)} campaigns in parallel, 90 days", every, 90)):  # fmt: skip
            cfg = bench.config(sb, f"memory-{len(cases)}", ids, start + dt.timedelta(days=90 - days))
            argv = bench.connector_argv(cfg)
            fast = public(bench.measure(sb, argv, count=False))
            slow = public(bench.measure(sb, argv, count=True, stall_s=stall))
            cases.append({"case": label, "rows": slow["rows_served"], "fast": fast, "stalled": slow})
    table(
        ["case", "rows", "records counted", "export req", "peak MiB /dev/null", "peak MiB stalled"],
        [
            [c["case"], c["rows"], c["stalled"]["records"], c["fast"]["export_requests"],
             c["fast"]["peak_mib"], c["stalled"]["peak_mib"]]
            for c in cases
        ],
    )  # fmt: skip
    growth = {mode: cases[1][mode]["peak_mib"] - cases[0][mode]["peak_mib"] for mode in ("fast", "stalled")}
    flat = max(growth.values()) <= FLAT_TOLERANCE_MIB
    peak = max(c[mode]["peak_mib"] for c in cases for mode in growth)
    fast, stalled = growth["fast"], growth["stalled"]
    print(f"  one response, 100k -> 1M rows: /dev/null {fast:+.1f} MiB, stalled {stalled:+.1f} MiB")
    print(f"    -> {verdict(flat)} (flat: <= {FLAT_TOLERANCE_MIB:.0f} MiB growth with either destination)")
    print(f"  highest peak {peak} MiB -> {verdict(peak <= PEAK_LIMIT_MIB)} (<= {PEAK_LIMIT_MIB:.0f} MiB)")
    if not flat or peak > PEAK_LIMIT_MIB:
        bench.fail(f"memory: growth {fast:+.1f} / {stalled:+.1f} MiB, highest peak {peak} MiB")
    bench.results["memory"] = {"cases": cases, "growth_mib": growth, "peak_mib": peak, "flat": flat}


def concurrency(bench: Bench) -> None:
    a = bench.args
    start = utc_today() - dt.timedelta(days=29)
    print(f"\n== concurrency: {a.campaigns} campaigns, one export each from {start}, {a.latency} s latency")
    # The sandbox's 6 fixture campaigns come first; every one after them is active.
    flags = ["--campaigns", str(a.campaigns + 6), "--latency", str(a.latency), "--rows-per-day", "20"]
    runs = []
    with bench.sandbox(*flags, *UNLIMITED) as sb:
        ids = pick_campaigns(sb, start, a.campaigns)
        for workers in a.workers:
            extra = UNLIMITED_BUDGET | ({"num_workers": workers} if workers else {})
            argv = bench.connector_argv(bench.config(sb, f"conc-{workers}", ids, start, **extra))
            label = f"num_workers={workers or 'default'}, budget raised"
            runs.append({"label": label} | public(bench.measure(sb, argv, count=True)))
    with bench.sandbox(*flags, "--rate-limit-per-minute", "60", "--rate-limit-per-hour", "600") as sb:
        argv = bench.connector_argv(bench.config(sb, "conc-documented", ids, start))
        runs.append(
            {"label": "defaults: workers, 60/min, 600/h"} | public(bench.measure(sb, argv, count=True))
        )
    sequential = runs[0]["wall_s"]
    table(
        ["run", "wall s", "vs first", "export req", "429s", "records counted"],
        [
            [r["label"], f"{r['wall_s']:.2f}", f"{r['wall_s'] / sequential:.2f}", r["export_requests"],
             r["export_429"], r["records"]]
            for r in runs
        ],
    )  # fmt: skip
    ok = all(r["wall_s"] <= 0.5 * sequential for r in runs[1:])
    print(f"  latency alone, one request at a time: {runs[0]['export_requests']} x {a.latency} s")
    print(f"  every later run vs the first ({runs[0]['label']}) -> {verdict(ok)} ('well under': <= 50 %)")
    if not ok:
        bench.fail("concurrency: a parallel run took more than 50 % of the first run")
    bench.results["concurrency"] = {"campaign_ids": ids, "latency": a.latency, "runs": runs, "pass": ok}


def may_change(campaign: dict[str, Any], today: dt.date) -> bool:
    """Can a campaign still get new or revised rows? No once it reached a terminal status and today is
    past its planned end (createdAt + campaignDuration) + 1 + the 30-day tail + 7-day revision window + 1."""
    if campaign.get("status") not in TERMINAL_STATUSES:
        return True
    end = created_date(campaign) + dt.timedelta(days=int(campaign.get("campaignDuration") or 0))
    return today < end + dt.timedelta(days=1 + SETTLE_DAYS)


def backfill_requests(campaign: dict[str, Any], first: dt.date, today: dt.date) -> int:
    """The request rule: ceil(days/90) windows from the first day, where the last day is today, or the
    day the campaign settles if that comes first (its windows stop there: no row can follow)."""
    last = today
    if campaign.get("status") in TERMINAL_STATUSES:
        end = created_date(campaign) + dt.timedelta(days=int(campaign.get("campaignDuration") or 0))
        last = min(today, end + dt.timedelta(days=1 + SETTLE_DAYS))
    return math.ceil(((last - first).days + 1) / 90)


def request_count(bench: Bench) -> None:
    today = utc_today()
    print("\n== requests: backfill of every campaign, then an incremental sync with the saved state")
    flags = ["--rows-per-day", "20", "--campaigns", str(bench.args.requests_campaigns), *UNLIMITED]
    with bench.sandbox(*flags) as sb:
        camps = sb.campaigns
        start = min(created_date(c) for c in camps) - dt.timedelta(days=365)
        cfg = bench.config(sb, "requests", [], start)  # no campaign_ids: every campaign
        first = bench.measure(sb, bench.connector_argv(cfg), count=True)
        states = final_states(first["_child"].states)
        if not states:
            bench.fail("requests: the backfill emitted no STATE message")
        state = write_json(bench.tmp / "state.json", states)
        second = bench.measure(sb, bench.connector_argv(cfg, state), count=True)
    rows, want1, want2 = [], 0, 0
    for c in camps:
        cid, days = c["campaignId"], (today - max(created_date(c), start)).days + 1
        rule1, rule2 = backfill_requests(c, max(created_date(c), start), today), int(may_change(c, today))
        got1, got2 = first["export_by_campaign"].get(cid, 0), second["export_by_campaign"].get(cid, 0)
        want1, want2 = want1 + rule1, want2 + rule2
        flag = "" if (got1, got2) == (rule1, rule2) else "<- differs"
        rows.append([cid, c["status"], c["createdAt"][:10], c.get("campaignDuration", ""), days])
        rows[-1] += [rule1, got1, rule2, got2, flag]
    table(
        [
            "campaign",
            "status",
            "created",
            "duration d",
            "days",
            "rule",
            "backfill",
            "can change",
            "incremental",
            "",
        ],
        rows,
    )
    ok1, ok2 = first["export_requests"] == want1, second["export_requests"] == want2
    made = first["export_requests"]
    rule = "sum(ceil(days to today, or to settling, / 90))"
    print(f"  backfill: {made} export requests, rule {rule} = {want1} -> {verdict(ok1)}")
    print(
        f"  incremental: {second['export_requests']} vs {want2} campaigns that can change -> {verdict(ok2)}"
    )
    print(f"  records: backfill {first['records']:,}, incremental {second['records']:,}")
    if not (ok1 and ok2):
        bench.fail("requests: counts differ from the rule (see the per-campaign table)")
    bench.results["requests"] = {
        "start_date": str(start),
        "backfill": public(first),
        "incremental": public(second),
        "rule_backfill": want1,
        "rule_incremental": want2,
        "state": states,
        "pass": ok1 and ok2,
    }


def scale(bench: Bench) -> None:
    """Large accounts: per size, a backfill (no state) and an incremental sync with its final state."""
    sizes = bench.args.scale_sizes
    print(f"\n== scale: {', '.join(f'{n:,}' for n in sizes)} campaigns of a large account, 1 row/day")
    print(
        "   (sandbox --account-mix large: ~88 % ended long ago, 3 % ended recently, 7 % running, 2 % failed)"
    )
    today, rows, failures = utc_today(), [], []
    for n in sizes:
        flags = ["--campaigns", str(n), "--account-mix", "large", "--rows-per-day", "1", *UNLIMITED]
        with bench.sandbox(*flags) as sb:
            cfg = write_json(
                bench.tmp / f"scale-{n}.json",
                {"api_key": DEFAULT_KEY, "base_url": sb.base_url, "num_workers": 8, **UNLIMITED_BUDGET},
            )
            backfill = bench.measure(sb, bench.connector_argv(cfg), count=True)
            state = write_json(bench.tmp / f"scale-{n}-state.json", final_states(backfill["_child"].states))
            incremental = bench.measure(sb, bench.connector_argv(cfg, state), count=True)
            camps = sb.campaigns
        may = {c["campaignId"] for c in camps if may_change(c, today)}
        by_cid = incremental["export_by_campaign"]
        one_each = set(by_cid) == may and all(count == 1 for count in by_cid.values())
        for label, run in (("backfill", backfill), ("incremental", incremental)):
            child = run["_child"]
            sizes_b = child.state_bytes or [0]
            row = {
                "campaigns": n,
                "sync": label,
                "wall_s": run["wall_s"],
                "peak_mib": run["peak_mib"],
                "export_requests": run["export_requests"],
                "records": run["records"],
                "states": len(child.state_bytes),
                "state_bytes": sum(child.state_bytes),
                "final_state_bytes": sizes_b[-1],
                "bytes_per_campaign": round(sizes_b[-1] / n, 1),
                "settled_pct": round(100 * (n - len(may)) / n, 1),
            }
            rows.append(row)
            if row["state_bytes"] > STATE_BYTES_FACTOR * row["final_state_bytes"]:
                failures.append(f"{n} {label}: STATE bytes {row['state_bytes']:,} > 10x the final state")
        if not one_each:
            failures.append(
                f"{n} incremental: {sum(by_cid.values())} export requests for {len(may)} running campaigns"
            )
        if n >= 10_000 and max(backfill["peak_mib"], incremental["peak_mib"]) > SCALE_PEAK_LIMIT_MIB:
            failures.append(f"{n}: peak RSS over {SCALE_PEAK_LIMIT_MIB:.0f} MiB")
    table(
        ["campaigns", "sync", "wall s", "peak MiB", "export req", "records", "STATE msgs", "STATE bytes",
         "final state", "B/campaign", "settled %"],
        [
            [r["campaigns"], r["sync"], f"{r['wall_s']:.1f}", f"{r['peak_mib']:.1f}", r["export_requests"],
             r["records"], r["states"], r["state_bytes"], r["final_state_bytes"], r["bytes_per_campaign"],
             r["settled_pct"]]
            for r in rows
        ],
    )  # fmt: skip
    print(
        "  targets: STATE bytes <= 10x the final state per sync; peak <= 150 MiB at 10,000 campaigns;"
        "\n  incremental: one export request per running campaign, none for the rest."
    )
    print("  (wall times include the harness reading and counting the output: it runs with count=True)")
    print(f"  -> {verdict(not failures)}" + "".join(f"\n  !! {f}" for f in failures))
    for failure in failures:
        bench.fail(f"scale: {failure}")
    bench.results["scale"] = {"rows": rows, "pass": not failures}


# The connector's `run()` with its clock sped up `factor` times (the first argument): the injected clock
# (source_soundlink/clock.py) every wait and duration goes through, as the integration tests warp it. The
# request budget, Retry-After waits and the STATE pacing all run on it, so hours pass in seconds.
WARP_BOOTSTRAP = """
import sys
import source_soundlink.clock
source_soundlink.clock.SYSTEM_CLOCK = source_soundlink.clock.ScaledClock(float(sys.argv.pop(1)))
from source_soundlink.run import run
run()
"""
BUDGET_STATES_PER_HOUR = 20  # a budget-bound sync's STATE messages per hour, at most


def budget_bound(bench: Bench) -> None:
    """A backfill bound by the default budget (60/min, 600/h) for a few warped hours: STATE per hour."""
    n, hours, warp = bench.args.budget_campaigns, bench.args.budget_hours, bench.args.budget_warp
    print(
        f"\n== budget-bound backfill: {n:,} campaigns of a large account, the default budget (600/h), "
        f"{hours} hours on a clock sped up {warp:g}x"
    )
    if bench.args.connector_cmd:
        print("  skipped: it warps the connector's clocks in-process, so it runs this checkout's code only")
        return
    flags = ["--campaigns", str(n), "--account-mix", "large", "--rows-per-day", "1", *UNLIMITED]
    with bench.sandbox(*flags) as sb:  # the sandbox's own limiter runs on real time: off
        cfg = write_json(bench.tmp / "budget.json", {"api_key": DEFAULT_KEY, "base_url": sb.base_url})
        cat = write_json(bench.tmp / "catalog-incremental.json", catalog("incremental"))
        argv = [sys.executable, "-c", WARP_BOOTSTRAP, str(warp), "read", "--config", str(cfg)]
        sb.clear()
        states, records = timed_states([*argv, "--catalog", str(cat)], hours * 3600 / warp, warp)
        exports = len(sb.exports_seen())
    per_hour = [[size for at, size, _ in states if h * 3600 <= at < (h + 1) * 3600] for h in range(hours)]
    last = states[-1][2] if states else {}
    campaigns_in_state = len(last.get("stream", {}).get("stream_state", {}).get("campaigns", {}))
    last_bytes = states[-1][1] if states else 0
    per_campaign = last_bytes / campaigns_in_state if campaigns_in_state else 0.0
    table(
        ["hour", "STATE msgs", "STATE bytes", "mean STATE bytes"],
        [[h + 1, len(sizes), sum(sizes), round(sum(sizes) / len(sizes)) if sizes else 0]
         for h, sizes in enumerate(per_hour)],
    )  # fmt: skip
    most = max((len(sizes) for sizes in per_hour), default=0)
    at_10k = most * per_campaign * 10_000
    print(
        f"  {exports:,} export requests, {records:,} records; the last STATE holds {campaigns_in_state:,} "
        f"campaigns, {per_campaign:.0f} B each"
    )
    print(
        f"  at 10,000 campaigns (computed: {most} STATE/h x {per_campaign:.0f} B x 10,000): "
        f"{at_10k / 1e6:.1f} MB/h, {24 * at_10k / 1e6:.0f} MB/day"
    )
    ok = 0 < most <= BUDGET_STATES_PER_HOUR
    print(f"  target: at most {BUDGET_STATES_PER_HOUR} STATE messages in any hour -> {verdict(ok)}")
    if not ok:
        bench.fail(f"budget-bound: {most} STATE messages in an hour (target <= {BUDGET_STATES_PER_HOUR})")
    bench.results["budget_bound"] = {
        "campaigns": n,
        "warp": warp,
        "export_requests": exports,
        "records": records,
        "states_per_hour": [len(sizes) for sizes in per_hour],
        "state_bytes_per_hour": [sum(sizes) for sizes in per_hour],
        "state_bytes_per_campaign": round(per_campaign, 1),
        "computed_10k_bytes_per_hour": round(at_10k),
        "pass": ok,
    }


def timed_states(
    argv: list[str], real_s: float, warp: float
) -> tuple[list[tuple[float, int, dict[str, Any]]], int]:
    """Run argv for `real_s` seconds, then kill it: each STATE's (warped second, size, state), records."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    states: list[tuple[float, int, dict[str, Any]]] = []
    counts = {"records": 0}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b'{"type":"RECORD"'):
                counts["records"] += 1
            elif line.startswith(b'{"type":"STATE"'):
                at = (time.monotonic() - started) * warp
                states.append((at, len(line), orjson.loads(line)["state"]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=real_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
    return states, counts["records"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows-per-day", type=int, default=6000, help="throughput scale (default 6000)")
    p.add_argument(
        "--days", type=int, default=90, help="throughput window in days, ending today (default 90)"
    )
    p.add_argument("--pairs", type=int, default=3, help="timed anchor/connector pairs; 0 skips throughput")
    p.add_argument(
        "--memory", action="store_true", help="also: peak RSS for one response of 100k and 1M rows"
    )
    p.add_argument("--concurrency", action="store_true", help="also: 20 campaigns with 0.3 s latency")
    p.add_argument(
        "--requests", action="store_true", help="also: export requests of a backfill + incremental"
    )
    p.add_argument(
        "--scale", action="store_true", help="also: 100/1,000/10,000 campaigns, backfill + incremental"
    )
    p.add_argument(
        "--scale-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 10_000],
        help="scale: campaign counts (default 100,1000,10000)",
    )
    p.add_argument(
        "--budget-campaigns", type=int, default=3000, help="scale: budget-bound backfill size (default 3000)"
    )
    p.add_argument("--budget-hours", type=int, default=3, help="scale: budget-bound hours (default 3)")
    p.add_argument("--budget-warp", type=float, default=120.0, help="scale: clock speed-up (default 120)")
    p.add_argument("--all", action="store_true", help="all scenarios")
    p.add_argument("--campaign-id", help="campaign for throughput/memory (default: oldest active one)")
    p.add_argument("--memory-rows-per-day", type=int, default=11112)
    p.add_argument("--campaigns", type=int, default=20, help="concurrency: campaigns (default 20)")
    p.add_argument(
        "--latency", type=float, default=0.3, help="concurrency: seconds per request (default 0.3)"
    )
    p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 0, 8],
                   help="concurrency: num_workers values, 0 = connector default (default 1,0,8)")  # fmt: skip
    p.add_argument(
        "--requests-campaigns", type=int, default=8, help="requests: sandbox campaigns (default 8)"
    )
    p.add_argument("--connector-cmd", help="connector command (default .venv/bin/source-soundlink)")
    p.add_argument("--sandbox-cmd", help="sandbox command (default .venv/bin/soundlink-sandbox)")
    args = p.parse_args()
    bench = Bench(args)
    m = bench.results["machine"]
    m["rss_floor_mib"] = round(run_child(["true"], count=False).peak_mib, 1)
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, airbyte-cdk {m['airbyte_cdk']}")
    print(
        f"  kernel {m['kernel']}, load {m['loadavg_at_start']}, RSS floor (launcher) {m['rss_floor_mib']} MiB"
    )
    print(f"connector: {shlex.join(bench.connector)} (repo {ROOT})")
    scenarios = [
        (args.pairs > 0, throughput),
        (args.memory or args.all, memory),
        (args.concurrency or args.all, concurrency),
        (args.requests or args.all, request_count),
        (args.scale or args.all, scale),
        (args.scale or args.all, budget_bound),
    ]
    try:
        for enabled, scenario in scenarios:
            if enabled:
                scenario(bench)
    finally:
        RESULTS.parent.mkdir(exist_ok=True)
        write_json(RESULTS, bench.results | {"failures": bench.failures})
        shutil.rmtree(bench.tmp, ignore_errors=True)
    print(f"\nresults: {RESULTS.relative_to(ROOT)}")
    if bench.failures:
        print("FAILED:\n  " + "\n  ".join(bench.failures))
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
