"""PyAirbyte into DuckDB against the sandbox: full sync, sandbox revision, incremental sync, table == truth.

PyAirbyte lives in its own venv, .venv-pyairbyte: airbyte 0.71.3 requires rich<14 and cryptography<47,
while the connector pins rich 15 and cryptography 50. PyAirbyte only runs the connector's executable
(from .venv) as a subprocess, so the two never need to share packages.

    .venv/bin/python scripts/demo.py --pyairbyte      # creates the venv (ensure_venv) and runs this
    .venv-pyairbyte/bin/python scripts/pyairbyte_demo.py --base-url URL \
        --executable .venv/bin/source-soundlink        # against a running sandbox

This module imports only the standard library at the top, so .venv (scripts/demo.py, the tests) can import
it for `ensure_venv` and `compare`; `airbyte` is imported inside `main`, after the offline environment.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import private_venv  # stdlib only, beside this script

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-pyairbyte"
REQUIREMENTS = ROOT / "scripts" / "pyairbyte-requirements.txt"
ENGAGEMENT = "campaign_engagement_daily"
PRIMARY_KEY = (
    "provider",
    "account_id",
    "report_date",
    "campaign_id",
    "engagement_context",
    "country_code",
    "engaged_spotify_track_id",
)
TOP_CAMPAIGNS_SQL = f"""
    SELECT campaign_name, SUM(streams) AS streams FROM soundlink.{ENGAGEMENT}
    GROUP BY campaign_name ORDER BY streams DESC LIMIT 3
"""
# No registry lookups, no telemetry, no live progress bars; PyAirbyte reads these at import time.
OFFLINE_ENV = {"AIRBYTE_OFFLINE_MODE": "1", "DO_NOT_TRACK": "1", "NO_LIVE_PROGRESS": "1"}


def ensure_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS, log: Any = print) -> Path:
    """Create or refresh the PyAirbyte venv when its requirements changed; return its python."""
    return private_venv.ensure_venv(venv, requirements, "PyAirbyte", log)


def normalize(value: Any) -> Any:
    """A DuckDB value as the API's JSON would carry it (dates ISO, timestamps Z, decimals as numbers)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")  # PyAirbyte stores the UTC instant, naive
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)  # spl is DECIMAL(38,9) in DuckDB; the API sends it as a JSON number
    return value


def pk(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in PRIMARY_KEY)


def compare(
    table: Iterable[Mapping[str, Any]], truth: Iterable[Mapping[str, Any]], exact: bool = False
) -> list[str]:
    """Problems found comparing table rows to truth rows on every truth field; empty means equal.

    Numbers compare by value (DECIMAL 3.330000000 equals 3.33, 0 equals 0.0), everything else exactly.
    `exact` also flags fields the table has and the truth lacks (a DuckDB table has a column for every
    schema field, so only connector output can be held to that).
    """
    problems: list[str] = []
    got: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in table:
        if pk(row) in got:
            problems.append(f"duplicate primary key in the table: {pk(row)}")
        got[pk(row)] = row
    want = {pk(row): row for row in truth}
    missing, extra = want.keys() - got.keys(), got.keys() - want.keys()
    if missing:
        problems.append(f"{len(missing)} truth rows missing from the table, e.g. {min(missing)}")
    if extra:
        problems.append(f"{len(extra)} table rows not in the truth, e.g. {min(extra)}")
    differing = 0
    for key in sorted(want.keys() & got.keys()):
        diffs = [f for f, v in want[key].items() if not _same(got[key].get(f, _ABSENT), v)]
        if exact:
            diffs += [f for f in got[key] if f not in want[key]]
        if diffs:
            differing += 1
            if differing == 1:
                f = diffs[0]
                have, should = got[key].get(f, "<absent>"), want[key].get(f, "<absent>")
                problems.append(f"row {key}: {f} is {have!r}, truth {should!r}")
    if differing > 1:
        problems.append(f"{differing} rows differ from the truth in all")
    return problems


_ABSENT = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def _http(url: str, method: str = "GET") -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as response:
        return response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="the sandbox's base URL")
    parser.add_argument("--api-key", default="sk_sandbox_0123456789abcdef")
    parser.add_argument("--executable", required=True, help="path to .venv/bin/source-soundlink")
    parser.add_argument("--workdir", help="where the DuckDB file and PyAirbyte logs go (default: a temp dir)")
    parser.add_argument("--dump", help="write the final DuckDB table here as JSON lines (for the tests)")
    args = parser.parse_args(argv)
    if args.workdir:
        return run(args.base_url, args.api_key, args.executable, Path(args.workdir), args.dump)
    with tempfile.TemporaryDirectory(prefix="pyairbyte-") as tmp:
        return run(args.base_url, args.api_key, args.executable, Path(tmp), args.dump)


def run(base_url: str, api_key: str, executable: str, workdir: Path, dump: str | None) -> int:
    os.environ.update(OFFLINE_ENV)
    os.environ["AIRBYTE_LOGGING_ROOT"] = str(workdir / "logs")  # not /tmp/airbyte
    os.environ["AIRBYTE_TEMP_DIR"] = str(workdir / "tmp")
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # google-* libraries nag about Python 3.11
    import airbyte as ab
    import sqlalchemy as sa
    from airbyte.caches import DuckDBCache

    config = {
        "api_key": api_key,
        "base_url": base_url,
        "requests_per_minute": 6000,  # the demo sandbox's limits are raised; the real API allows 60/min
        "requests_per_hour": 100_000,
    }
    db_path = workdir / "demo.duckdb"
    # PyAirbyte's progress and log-file chatter goes to a file; this script prints a short summary.
    with open(workdir / "pyairbyte-output.log", "w") as noise:
        with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
            source = ab.get_source("source-soundlink", local_executable=executable, config=config)
            source.select_streams([ENGAGEMENT, "campaigns"])
            cache = DuckDBCache(db_path=db_path, cache_dir=workdir / "cache", schema_name="soundlink")
        for label in ("sync 1: full (no state yet)", "sync 2: incremental (state read from the cache)"):
            if label.startswith("sync 2"):
                revision = json.loads(_http(f"{base_url}/_sandbox/revise", "POST"))["revision"]
                print(f"   sandbox revised (revision {revision}): the last 7 days of rows get new values")
            _http(f"{base_url}/_sandbox/requests", "DELETE")
            started = time.monotonic()
            with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
                result = source.read(cache=cache, write_strategy="merge")
            log = json.loads(_http(f"{base_url}/_sandbox/requests"))
            exports = [r["query"] for r in log if "/export" in r["path"]]
            span = f"{min(q['startDate'] for q in exports)}..{max(q['endDate'] for q in exports)}"
            print(
                f"   {label}: {result.processed_records} records in {time.monotonic() - started:.1f} s; "
                f"{len(exports)} export requests covering {span}"
            )
    with cache.get_sql_engine().connect() as conn:
        rows = [
            {k: normalize(v) for k, v in row.items() if not k.startswith("_airbyte_")}
            for row in conn.execute(sa.text(f"SELECT * FROM soundlink.{ENGAGEMENT}")).mappings()
        ]
        campaigns = conn.execute(sa.text("SELECT count(*) FROM soundlink.campaigns")).scalar_one()
        top = conn.execute(sa.text(TOP_CAMPAIGNS_SQL)).all()
    truth = [json.loads(line) for line in _http(f"{base_url}/_sandbox/truth").splitlines()]
    if dump:
        with open(dump, "w") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    problems = compare(rows, truth)
    print(
        f"   {db_path}: soundlink.{ENGAGEMENT} {len(rows)} rows, soundlink.campaigns {campaigns} rows; "
        f"/_sandbox/truth {len(truth)} rows"
    )
    print(f"   {' '.join(TOP_CAMPAIGNS_SQL.split())}")
    for name, streams in top:
        print(f"     {name:<24} {streams:>8}")
    verdict = "MISMATCH" if problems else "OK"
    print(
        f"   DuckDB table == sandbox truth (every field of every row, merged on the primary key): {verdict}"
    )
    for problem in problems[:10]:
        print(f"     {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
