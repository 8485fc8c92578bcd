"""Request and response builders for the Soundlink API, in the house style of Airbyte connector tests."""

from __future__ import annotations

import io
import json
import tempfile
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests_mock
import urllib3
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
)
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.test.state_builder import StateBuilder

from source_soundlink import read_command
from source_soundlink.clock import Clock

BASE_URL = "https://api.getsoundlink.com"
API_KEY = "sk_test_unit_4f8a9c2e7b1d"
ORG_ID = "9b2f6a1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
ENGAGEMENT = "campaign_engagement_daily"
NDJSON = "application/x-ndjson"


def config(**overrides: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "requests_per_minute": 10_000, "requests_per_hour": 100_000, **overrides}


def catalog(stream: str = ENGAGEMENT, sync_mode: str = "incremental") -> ConfiguredAirbyteCatalog:
    from airbyte_cdk.models import SyncMode

    builder = ConfiguredAirbyteStreamBuilder().with_name(stream)
    builder = builder.with_sync_mode(
        SyncMode.incremental if sync_mode == "incremental" else SyncMode.full_refresh
    )
    return CatalogBuilder().with_stream(builder).build()


def state(campaigns: dict[str, dict[str, Any]]) -> list[AirbyteStateMessage]:
    return StateBuilder().with_stream_state(ENGAGEMENT, {"state_version": 1, "campaigns": campaigns}).build()


def campaign(
    campaign_id: str, created: str = "2026-01-01", duration: int = 30, status: str = "active", **extra: Any
) -> dict[str, Any]:
    return {
        "campaignId": campaign_id,
        "organizationId": ORG_ID,
        "status": status,
        "socialPlatform": "meta",
        "dailyBudget": 10,
        "totalBudget": 10 * duration,
        "campaignDuration": duration,
        "createdAt": f"{created}T09:30:00Z",
        "updatedAt": f"{created}T09:45:00Z",
        **extra,
    }


def campaigns_request(page: int = 1) -> HttpRequest:
    return HttpRequest(
        f"{BASE_URL}/v1/campaigns",
        query_params={"page": str(page), "pageSize": "100", "sortBy": "createdAt", "sortOrder": "asc"},
    )


def campaigns_response(items: list[dict[str, Any]], page: int = 1, total_pages: int = 1) -> HttpResponse:
    pagination = {"page": page, "pageSize": 100, "totalCount": len(items), "totalPages": total_pages}
    return json_response({"items": items, "pagination": pagination})


def json_response(data: Any, status: int = 200, request_id: str = "req-ok") -> HttpResponse:
    return HttpResponse(orjson.dumps({"data": data, "meta": {"requestId": request_id}}).decode(), status)


def error_response(
    status: int, code: str, request_id: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = {"error": {"code": code, "message": f"{code} (from Soundlink)"}, "meta": {"requestId": request_id}}
    return HttpResponse(
        orjson.dumps(body).decode(), status, {"Content-Type": "application/json", **(headers or {})}
    )


def export_request(campaign_id: str, start: str, end: str, **params: str) -> HttpRequest:
    return HttpRequest(
        f"{BASE_URL}/v1/campaigns/{campaign_id}/metrics/engagement/export",
        query_params={"startDate": start, "endDate": end, **params},
        headers={"Accept": NDJSON, "x-api-key": API_KEY},
    )


def row(
    campaign_id: str,
    report_date: str,
    country: str = "US",
    track: str = "4cOdK2wGLETKBW3PvgPWqT",
    **extra: Any,
):
    data = {
        "provider": "soundlink",
        "account_id": ORG_ID,
        "schema_version": "1.0",
        "report_date": report_date,
        "report_date_timezone": "UTC",
        "exported_at": f"{report_date}T23:00:00Z",
        "campaign_id": campaign_id,
        "campaign_name": f"Campaign {campaign_id}",
        "campaign_target_type": "track",
        "campaign_target_isrc": "USRC17607839",
        "campaign_target_spotify_track_id": track,
        "campaign_target_playlist_id": None,
        "status": "active",
        "engagement_context": "catalog",
        "country_code": country,
        "engaged_track_isrc": "USRC17607839",
        "engaged_spotify_track_id": track,
        "engaged_track_name": "Song",
        "playlist_position": None,
        "new_listeners": 3,
        "returning_listeners": 2,
        "listeners": 5,
        "new_listener_streams": 4,
        "returning_listener_streams": 6,
        "streams": 10,
        "spl": 2.0,
    }
    data.update(extra)
    return data


def daily_rows(
    campaign_id: str, start: str, end: str, countries: tuple[str, ...] = ("DE", "US"), **extra: Any
):
    day, last = date.fromisoformat(start), date.fromisoformat(end)
    rows = []
    while day <= last:
        rows.extend(row(campaign_id, day.isoformat(), country, **extra) for country in countries)
        day += timedelta(days=1)
    return rows


def jsonl_response(
    rows: list[dict[str, Any]],
    row_count: int | None = None,
    request_id: str = "req-export",
    raw: str | None = None,
) -> HttpResponse:
    body = raw if raw is not None else "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    headers = {"Content-Type": NDJSON, "X-Request-Id": request_id}
    headers["X-Row-Count"] = str(len(rows) if row_count is None else row_count)
    return HttpResponse(body, 200, headers)


# -- whole reads, shared by the test modules --------------------------------------------------


class FakeClock(Clock):
    """Fake time for the code under test: a wait records its seconds and moves `time` on instead of
    sleeping (a test can move it too). Threads share it, as they share the real clock."""

    def __init__(self) -> None:
        self.time = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.time

    def wait(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        with self._lock:
            self.waits.append(seconds)
            self.time += max(0.0, seconds)
        return interrupt is not None and interrupt.is_set()


def read_source(
    config: dict[str, Any],
    state: Any = None,
    sync_mode: str = "incremental",
    clock: Clock | None = None,
    debug: bool = False,
) -> EntrypointOutput:
    """A whole `source-soundlink read` in-process: read_command.main, the path the platform runs, with
    its waits on `clock` (a fresh FakeClock unless given)."""
    files: dict[str, Any] = {
        "config": config,
        "catalog": ConfiguredAirbyteCatalogSerializer.dump(catalog(sync_mode=sync_mode)),
    }
    if state is not None:
        files["state"] = [AirbyteStateMessageSerializer.dump(m) for m in state] if _messages(state) else state
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        argv = ["--debug"] if debug else []
        for name, content in files.items():
            path = Path(folder) / f"{name}.json"
            path.write_text(json.dumps(content))
            argv.append(f"--{name}={path}")
        read_command.main(argv, out, clock or FakeClock())
    return EntrypointOutput(messages=out.getvalue().decode().splitlines())


def in_thread(action: Any) -> Any:
    """Run `action` on its own thread (the budget keeps each thread's request apart) and return its result."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(action()))
    worker.start()
    worker.join(10)
    assert result, "the action did not finish"
    return result[0]


def _messages(state: Any) -> bool:
    return isinstance(state, list) and all(isinstance(m, AirbyteStateMessage) for m in state)


def final_state(output: EntrypointOutput) -> dict[str, Any]:
    return output.most_recent_state.stream_state.__dict__


def pks(output: EntrypointOutput) -> list[tuple]:
    return [
        tuple(r.record.data[f] for f in ("campaign_id", "report_date", "country_code"))
        for r in output.records
    ]


def single_window_with(http_mocker: HttpMocker, response: Any) -> None:
    http_mocker.get(campaigns_request(), campaigns_response([campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(export_request("camp_a", "2026-03-01", "2026-03-05"), response)


def read_with(
    responses: list[dict[str, Any]], clock: Clock | None = None, **overrides: Any
) -> tuple[EntrypointOutput, list[Any]]:
    """A whole read of camp_a's one window (2026-03-01..05), answered by `responses` in turn."""
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json=LISTING)
        mocker.get(EXPORT, responses)
        output = read_source(config(end_date="2026-03-05", **overrides), clock=clock)
        exports = [r for r in mocker.request_history if r.path.endswith("/export")]
    return output, exports


def jsonl(rows: list[dict[str, Any]], newline: bytes = b"\n") -> bytes:
    return b"".join(orjson.dumps(r) + newline for r in rows)


class CutBody(io.BytesIO):
    """A body whose connection breaks after `limit` bytes, as urllib3 reports it."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.limit:
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
        size = self.limit - self.tell() if size is None or size < 0 else min(size, self.limit - self.tell())
        return super().read(size)


EXPORT = f"{BASE_URL}/v1/campaigns/camp_a/metrics/engagement/export"


LISTING = {"data": {"items": [campaign("camp_a", created="2026-03-01")], "pagination": {"totalPages": 1}}}
