"""The throughput anchor: the plainest fast reader of the same export, orjson per line (benchmarks/README.md).

Takes the connector's own config.json and requests the same export windows
(`window_size_days`-day windows from `start_date` to `end_date`/today, per campaign). Each body is read
from `resp.raw` in 1 MiB chunks, split into lines, parsed with `orjson.loads`, wrapped in an Airbyte
RECORD envelope and written with `orjson.dumps(..) + b"\\n"` to buffered stdout.

    python benchmarks/orjson_loop.py --config config.json > /dev/null
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import requests

STREAM = "campaign_engagement_daily"
CHUNK = 1 << 20
DEFAULT_KEY = "sk_sandbox_0123456789abcdef"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def windows(start: dt.date, end: dt.date, size_days: int = 90) -> Iterator[tuple[dt.date, dt.date]]:
    """Inclusive windows of at most `size_days` days covering start..end."""
    while start <= end:
        stop = min(start + dt.timedelta(days=size_days - 1), end)
        yield start, stop
        start = stop + dt.timedelta(days=1)


def export_urls(config: dict[str, Any]) -> list[str]:
    """The export URLs a backfill with this config requests (campaign x window)."""
    start = dt.date.fromisoformat(config["start_date"][:10])
    end = dt.date.fromisoformat(config["end_date"][:10]) if config.get("end_date") else utc_today()
    size = int(config.get("window_size_days", 90))
    base = config["base_url"].rstrip("/")
    return [
        f"{base}/v1/campaigns/{cid}/metrics/engagement/export?startDate={s}&endDate={e}"
        for cid in config["campaign_ids"]
        for s, e in windows(start, end, size)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the connector's config.json")
    config = orjson.loads(parser.parse_args(argv).config.read_bytes())
    headers = {"x-api-key": config.get("api_key", DEFAULT_KEY), "Accept": "application/x-ndjson"}
    write, loads, dumps = sys.stdout.buffer.write, orjson.loads, orjson.dumps
    with requests.Session() as session:
        for url in export_urls(config):
            with session.get(url, headers=headers, stream=True, timeout=60) as resp:
                resp.raise_for_status()
                tail = b""
                while chunk := resp.raw.read(CHUNK, decode_content=True):
                    lines = (tail + chunk).split(b"\n")
                    tail = lines.pop()
                    emitted_at = int(time.time() * 1000)
                    for line in lines:
                        if line:
                            record = {"stream": STREAM, "data": loads(line), "emitted_at": emitted_at}
                            write(dumps({"type": "RECORD", "record": record}) + b"\n")
                if tail.strip():
                    record = {"stream": STREAM, "data": loads(tail), "emitted_at": int(time.time() * 1000)}
                    write(dumps({"type": "RECORD", "record": record}) + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
