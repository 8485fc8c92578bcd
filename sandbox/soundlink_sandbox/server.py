"""HTTP side of the sandbox: the Soundlink v1 routes, admin routes under /_sandbox/, the CLI and `Sandbox`."""

from __future__ import annotations

import argparse
import email.utils
import gzip
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from .app import BODY_FAULTS, DEFAULT_API_KEY, EARLY_FAULTS, RANGE_FAULTS, App
from .campaigns import ACCOUNT_MIXES, Campaign

JSON = "application/json"
NDJSON = "application/x-ndjson"
WRITE_CHUNK = 1 << 20  # join small day blocks so one export is a few large sendall calls
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT_RE = re.compile(r"-?\d+")
_BEARER_RE = re.compile(r"bearer +(sk_\S+)", re.IGNORECASE)
_CAMPAIGN_RE = re.compile(r"/v1/campaigns/([^/]+)")
_EXPORT_RE = re.compile(r"/v1/campaigns/([^/]+)/metrics/engagement/export")
_RENEW_RE = re.compile(r"/_sandbox/campaigns/([^/]+)/renew")


@dataclass
class Reply:
    status: int
    body: list[bytes] = field(default_factory=list)
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    rows: int | None = None
    cut_at: int | None = None  # bytes of body to send before an abrupt close (cut_mid_body)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _error_reply(
    rid: str, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    body = orjson.dumps({"error": {"code": code, "message": message}, "meta": {"requestId": rid}})
    return Reply(status, [body], headers=headers or {})


def _parse_date(query: dict[str, str], name: str) -> date | None:
    v = query.get(name)
    if v is None:
        return None
    try:
        if not _DATE_RE.fullmatch(v):
            raise ValueError(v)
        return date.fromisoformat(v)
    except ValueError:
        raise ApiError(
            400, "invalid_query_parameter", f"{name} must be a date YYYY-MM-DD, got {v!r}"
        ) from None


def _parse_int(query: dict[str, str], name: str, default: int) -> int:
    v = query.get(name)
    if v is None:
        return default
    if not _INT_RE.fullmatch(v) or int(v) < 1:
        raise ApiError(400, "invalid_query_parameter", f"{name} must be an integer >= 1, got {v!r}")
    return int(v)


def _apply_body_fault(f: dict[str, Any], chunks: list[bytes], rows: int) -> tuple[list[bytes], Reply]:
    """Rewrite an export body for a line-level fault. Returns the new body and a Reply carrying extras."""
    kind = f["kind"]
    meta = Reply(200)
    if kind == "gzip":
        return chunks, meta
    lines = b"".join(chunks).splitlines(keepends=True)
    n = len(lines)
    if kind in ("malformed_line", "missing_field", "bad_schema_version", "bad_value") and n:
        i = min(max(int(f["line"]), 1), n) - 1
        if kind == "malformed_line":
            lines[i] = lines[i][: len(lines[i]) // 2] + b"\n"  # a truncated object: not valid JSON
        else:
            obj = orjson.loads(lines[i])
            if kind == "missing_field":
                obj.pop(f["field"], None)
            elif kind == "bad_value":
                value = f["value"]  # a string may name the row's fields: "{report_date}T00:00:00Z"
                obj[f["field"]] = value.format_map(obj) if isinstance(value, str) else value
            else:
                obj["schema_version"] = f["value"]
            lines[i] = orjson.dumps(obj) + b"\n"
    elif kind == "short_body":
        lines = lines[: max(0, n - int(f["drop"]))]
    elif kind == "long_body" and n:
        lines += [lines[-1]] * int(f["extra"])  # a duplicate primary key beyond X-Row-Count
    elif kind == "cut_mid_body":
        body = b"".join(lines)
        cut = len(b"".join(lines[: int(f["after_rows"])]))
        meta.cut_at = min(cut, max(0, len(body) - 1))  # always leave the body incomplete
        return [body], meta
    return [b"".join(lines)], meta


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes; avoid 40 ms ACK stalls
    server: SandboxServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header (send_response adds it to every response): the sandbox's today, so a pinned
        or advanced day shows, with the real time of day."""
        app = self.server.app
        now = app.now(time.time() if timestamp is None else timestamp)
        return email.utils.format_datetime(now + timedelta(days=app.config.date_skew_days), usegmt=True)

    # --- plumbing ----------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        try:
            if url.path == "/_sandbox" or url.path.startswith("/_sandbox/"):
                self._admin(method, url.path, url.query, body)
            else:
                self._api(method, url.path, url.query)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-response; nothing left to say

    def _send(self, r: Reply, rid: str | None = None) -> None:
        self.send_response(r.status)
        self.send_header("Content-Type", r.content_type)
        if rid:
            self.send_header("X-Request-Id", rid)
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(sum(map(len, r.body))))
        self.end_headers()
        if r.cut_at is not None:
            self.wfile.write(b"".join(r.body)[: r.cut_at])
            self._close_abruptly(rst=False)
            return
        pending: list[bytes] = []
        size = 0
        for chunk in r.body:
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_CHUNK:
                self.wfile.write(pending[0] if len(pending) == 1 else b"".join(pending))
                pending, size = [], 0
        if pending:
            self.wfile.write(b"".join(pending))

    def _close_abruptly(self, rst: bool) -> None:
        sock = self.connection
        try:
            if rst:  # linger 0 makes close() send RST: the client sees a reset, not a clean EOF
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        self.close_connection = True

    def _json(self, status: int, payload: Any) -> None:
        self._send(Reply(status, [orjson.dumps(payload)]))

    # --- API ---------------------------------------------------------------------------------------
    def _api(self, method: str, path: str, raw_query: str) -> None:
        app = self.server.app
        rid = str(uuid.uuid4())
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        has_key = self.headers.get("x-api-key") is not None
        has_bearer = self.headers.get("Authorization") is not None
        auth = {(True, True): "both", (True, False): "x-api-key", (False, True): "bearer"}.get(
            (has_key, has_bearer), "none"
        )
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "auth": auth,
            "accept": self.headers.get("Accept"),
            "status": None,
            "rows": None,
            "time": time.time(),
            "requestId": rid,
            "fault": None,
        }
        app.record(entry)
        try:
            reply = self._route(method, path, query, rid, entry)
        except ApiError as e:
            reply = _error_reply(rid, e.status, e.code, e.message, e.headers)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = _error_reply(rid, 500, "internal_error", "Unexpected sandbox error")
        if app.config.latency > 0:
            time.sleep(app.config.latency)
        entry["rows"] = reply.rows
        if reply.status == 0:  # reset_before_body
            entry["status"] = 0
            self._close_abruptly(rst=True)
            return
        entry["status"] = reply.status
        self._send(reply, rid)

    def _route(self, method: str, path: str, query: dict[str, str], rid: str, entry: dict[str, Any]) -> Reply:
        app = self.server.app
        fault = app.take_fault(path, EARLY_FAULTS)
        if fault:
            entry["fault"] = fault["kind"]
            kind = fault["kind"]
            if kind == "rate_limit":
                ra = str(max(1, int(fault["retry_after"])))
                raise ApiError(429, "rate_limit_exceeded", "Rate limit exceeded", {"Retry-After": ra})
            if kind in ("server_error", "error"):
                raise ApiError(int(fault["status"]), str(fault["code"]), f"Injected {kind}")
            if kind == "reset_before_body":
                return Reply(0)
            time.sleep(float(fault["delay"]))  # slow_first_byte, then answer normally

        key = self._authenticate()
        cfg = app.config
        retry = app.limiter.hit(key, time.time(), cfg.rate_limit_per_minute, cfg.rate_limit_per_hour)
        if retry is not None:
            raise ApiError(429, "rate_limit_exceeded", "Rate limit exceeded", {"Retry-After": str(retry)})
        scopes = app.keys[key]
        assert isinstance(scopes, frozenset)

        def need(scope: str) -> None:
            if scope not in scopes:
                raise ApiError(403, "insufficient_scope", f"This API key lacks the required scope {scope}")

        if method == "GET":
            if path == "/v1/ping":
                return self._ok(rid, {"status": "ok"})
            if path == "/v1/campaigns":
                need("campaigns:read")
                return self._campaigns(rid, query)
            if m := _EXPORT_RE.fullmatch(path):
                need("metrics:read")
                return self._export(rid, path, unquote(m.group(1)), query, entry)
            if m := _CAMPAIGN_RE.fullmatch(path):
                need("campaigns:read")
                return self._ok(rid, self._campaign(unquote(m.group(1))).to_api(app.today()))
        raise ApiError(404, "not_found", f"No route for {method} {path}")

    def _authenticate(self) -> str:
        x_key = self.headers.get("x-api-key")
        authz = self.headers.get("Authorization")
        if x_key is not None and authz is not None:
            raise ApiError(401, "mixed_credentials", "Send either x-api-key or Authorization, not both")
        if authz is not None:
            m = _BEARER_RE.fullmatch(authz.strip())
            if not m:
                raise ApiError(401, "invalid_token", "Authorization must be 'Bearer sk_...'")
            x_key = m.group(1)
        if not x_key:
            raise ApiError(401, "invalid_api_key", "Missing API key")
        info = self.server.app.keys.get(x_key.strip())
        if info is None:
            raise ApiError(401, "invalid_api_key", "Invalid API key")
        if isinstance(info, str):
            raise ApiError(401, info, "This API key is no longer valid")
        return x_key.strip()

    @staticmethod
    def _ok(rid: str, data: Any) -> Reply:
        return Reply(200, [orjson.dumps({"data": data, "meta": {"requestId": rid}})])

    def _campaign(self, campaign_id: str) -> Campaign:
        c = self.server.app.campaigns.get(campaign_id)
        if c is None:
            raise ApiError(404, "campaign_not_found", f"Campaign {campaign_id} not found")
        return c

    def _campaigns(self, rid: str, query: dict[str, str]) -> Reply:
        page = _parse_int(query, "page", 1)
        size = _parse_int(query, "pageSize", 10)
        if size > 100:
            raise ApiError(400, "page_size_exceeded", "pageSize must be at most 100")
        sort_by = query.get("sortBy", "createdAt")
        order = query.get("sortOrder", "desc")
        if sort_by not in ("createdAt", "updatedAt") or order not in ("asc", "desc"):
            raise ApiError(400, "invalid_query_parameter", "sortBy: createdAt|updatedAt, sortOrder: asc|desc")
        app = self.server.app
        today = app.today()
        items = app.sorted_campaigns(
            "created_at" if sort_by == "createdAt" else "updated_at", order == "desc"
        )
        total = len(items)
        pagination = {"page": page, "pageSize": size, "totalCount": total, "totalPages": -(-total // size)}
        page_items = [c.to_api(today) for c in items[(page - 1) * size : page * size]]
        return self._ok(rid, {"items": page_items, "pagination": pagination})

    def _export(
        self, rid: str, path: str, campaign_id: str, query: dict[str, str], entry: dict[str, Any]
    ) -> Reply:
        app = self.server.app
        cfg = app.config
        c = self._campaign(campaign_id)
        today = app.today()
        context = query.get("engagementContext")
        if context is not None and context not in ("catalog", "playlist"):
            raise ApiError(400, "invalid_query_parameter", "engagementContext must be catalog or playlist")
        start = _parse_date(query, "startDate") or c.start
        end = _parse_date(query, "endDate") or today
        if end < start:
            raise ApiError(400, "invalid_date_range", "endDate is before startDate")
        span = (end - start).days + 1
        wide = app.take_fault(path, RANGE_FAULTS, lambda f: span > int(f["max_days"]))
        if wide:
            entry["fault"] = wide["kind"]
            raise ApiError(
                400, "invalid_query_parameter", f"Date range may not exceed {wide['max_days']} days"
            )
        if span > cfg.max_export_days:
            if cfg.strict_range:
                raise ApiError(
                    400, "invalid_query_parameter", f"Date range may not exceed {cfg.max_export_days} days"
                )
            start = end - timedelta(days=cfg.max_export_days - 1)  # seed: keep the most recent days
        if context not in (None, c.context):
            chunks, rows = [], 0
        else:
            chunks, rows = app.rows_between(c, start, end, today)
        headers = {"X-Row-Count": str(rows)}
        body_fault = app.take_fault(path, BODY_FAULTS)
        reply = Reply(200, chunks, NDJSON, headers, rows)
        if body_fault:
            entry["fault"] = body_fault["kind"]
            reply.body, extra = _apply_body_fault(body_fault, chunks, rows)
            reply.cut_at = extra.cut_at
        if cfg.gzip or (body_fault and body_fault["kind"] == "gzip"):
            plain = b"".join(reply.body)
            reply.body = [gzip.compress(plain, compresslevel=1, mtime=0)]
            headers["Content-Encoding"] = "gzip"
            if reply.cut_at is not None:  # the cut point was in plain bytes: move it into the compressed body
                size = len(reply.body[0])
                reply.cut_at = min(size - 1, max(1, size * reply.cut_at // max(1, len(plain))))
        return reply

    # --- admin -------------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, raw_query: str, body: bytes) -> None:
        app = self.server.app
        route = (method, path.rstrip("/"))
        try:
            payload = orjson.loads(body) if body.strip() else None
            if route == ("GET", "/_sandbox/requests"):
                return self._json(200, app.requests())
            if route == ("DELETE", "/_sandbox/requests"):
                app.clear_requests()
                return self._json(200, {"ok": True})
            if route == ("GET", "/_sandbox/faults"):
                return self._json(200, app.faults)
            if route == ("POST", "/_sandbox/faults"):
                faults = payload if isinstance(payload, list) else [payload]
                return self._json(200, {"queued": app.add_faults(faults)})
            if route == ("DELETE", "/_sandbox/faults"):
                app.clear_faults()
                return self._json(200, {"ok": True})
            if route == ("POST", "/_sandbox/revise"):
                return self._json(200, {"revision": app.revise()})
            if route == ("GET", "/_sandbox/truth"):
                return self._truth(parse_qs(raw_query).get("campaignId", [None])[0])
            if route == ("GET", "/_sandbox/campaigns"):
                today = app.today()
                return self._json(200, [c.to_api(today) for c in app.campaign_list()])
            if route == ("POST", "/_sandbox/campaigns"):
                return self._json(200, app.add_campaign(**_campaign_spec(payload or {})).to_api())
            if method == "POST" and (m := _RENEW_RE.fullmatch(route[1])):
                days = _only(payload or {}, {"durationDays"}).get("durationDays", 30)
                cid = unquote(m.group(1))
                if cid not in app.campaigns:
                    return self._json(404, {"error": {"code": "campaign_not_found", "message": cid}})
                return self._json(200, app.renew(cid, int(days)).to_api())
            if route == ("POST", "/_sandbox/advance"):
                app.advance(int(_only(payload or {}, {"days"}).get("days", 1)))
                return self._json(200, app.config.to_json())
            if route == ("GET", "/_sandbox/quota"):
                key = parse_qs(raw_query).get("apiKey", [None])[0]
                return self._json(200, app.quota(time.time(), key))
            if route == ("POST", "/_sandbox/quota"):
                p = _only(payload or {}, {"spend", "secondsAgo", "apiKey"})
                now = time.time()
                app.spend_quota(int(p.get("spend", 0)), now, p.get("apiKey"), float(p.get("secondsAgo", 0)))
                return self._json(200, app.quota(now, p.get("apiKey")))
            if route == ("GET", "/_sandbox/config"):
                return self._json(200, app.config.to_json())
            if route == ("POST", "/_sandbox/config"):
                return self._json(200, app.configure(**(payload or {})).to_json())
            if route == ("POST", "/_sandbox/reset"):
                app.reset()
                return self._json(200, {"ok": True})
            return self._json(
                404, {"error": {"code": "not_found", "message": f"No admin route {method} {path}"}}
            )
        except (ValueError, TypeError, KeyError) as e:
            return self._json(400, {"error": {"code": "bad_request", "message": str(e)}})

    def _truth(self, campaign_id: str | None) -> None:
        app = self.server.app
        if campaign_id is not None and campaign_id not in app.campaigns:
            return self._json(404, {"error": {"code": "campaign_not_found", "message": campaign_id}})
        # Streamed and delimited by close: the whole history can be larger than we want to hold at once.
        self.send_response(200)
        self.send_header("Content-Type", NDJSON)
        self.send_header("X-Row-Count", str(app.truth_count(campaign_id)))
        self.send_header("Connection", "close")
        self.end_headers()
        for block in app.truth(campaign_id):
            self.wfile.write(block)


def _only(p: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(p, dict) or set(p) - allowed:
        raise ValueError(f"expected a JSON object with fields among {sorted(allowed)}")
    return p


def _campaign_spec(p: dict[str, Any]) -> dict[str, Any]:
    names = {
        "campaignId": "campaign_id",
        "createdDaysAgo": "created_days_ago",
        "campaignDuration": "campaign_duration",
        "targetType": "target_type",
        "status": "status",
        "rowsPerDay": "rows_per_day",
        "name": "name",
        "renewals": "renewals",
        "deliveringAfterDays": "delivering_after_days",
    }
    unknown = set(p) - set(names)
    if unknown:
        raise ValueError(f"unknown campaign fields {sorted(unknown)}; allowed: {sorted(names)}")
    return {names[k]: v for k, v in p.items()}


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: App, verbose: bool = False) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.verbose = verbose
        super().__init__(addr, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall on machines without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError) and not self.verbose:
            return  # clients dropping connections is routine here (benchmarks, fault tests)
        super().handle_error(request, client_address)


class Sandbox:
    """The sandbox API in a background thread: `with Sandbox(today="2026-05-01") as sb: ... sb.base_url`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        prewarm: bool = False,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        """`options` are App's (api_key, today, campaigns, rows_per_day, rate limits, faults' defaults...)."""
        self.app = App(**options)
        self._server = SandboxServer((host, port), self.app, verbose)
        self._thread: threading.Thread | None = None
        if prewarm:
            self.app.prewarm()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        # The sandbox serves plain HTTP on loopback only (the connector refuses http:// elsewhere).
        if ":" in str(host):
            return f"http://[{host}]:{port}"  # ignore-https-check
        return f"http://{host}:{port}"  # ignore-https-check

    @property
    def api_key(self) -> str:
        return self.app.api_key

    def start(self) -> Sandbox:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever on a server that never served
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Admin operations, same semantics as the /_sandbox/ routes.
    def requests(self) -> list[dict[str, Any]]:
        return self.app.requests()

    def clear_requests(self) -> None:
        self.app.clear_requests()

    def add_faults(self, faults: Iterable[dict[str, Any]]) -> int:
        return self.app.add_faults(list(faults))

    def clear_faults(self) -> None:
        self.app.clear_faults()

    def revise(self) -> int:
        return self.app.revise()

    def today(self) -> date:
        return self.app.today()

    def set_today(self, day: date | str | None) -> date:
        """Pin the sandbox's today (None: the real UTC date). Returns the new today."""
        return self.app.set_today(day)

    def advance(self, days: int = 1) -> date:
        """Move today forward (pins it if it was following the real date). Returns the new today."""
        return self.app.advance(days)

    def renew(self, campaign_id: str, duration_days: int = 30) -> dict[str, Any]:
        """Renew a campaign today for `duration_days` days; answered as the API shows it."""
        return self.app.renew(campaign_id, duration_days).to_api()

    def spend_quota(self, n: int, *, seconds_ago: float = 0.0, api_key: str | None = None) -> dict[str, Any]:
        """Count n requests made `seconds_ago` seconds ago by another client of the key (default: the main
        key) against its rate limits. Returns quota()."""
        now = time.time()
        self.app.spend_quota(n, now, api_key, seconds_ago)
        return self.app.quota(now, api_key)

    def quota(self, api_key: str | None = None) -> dict[str, Any]:
        """`{"lastMinute", "lastHour", "retryAfter"}`: the key's counted requests and the Retry-After its
        next request would get (None: it would pass)."""
        return self.app.quota(time.time(), api_key)

    def truth(self, campaign_id: str | None = None) -> list[dict[str, Any]]:
        return [orjson.loads(line) for block in self.app.truth(campaign_id) for line in block.splitlines()]

    def truth_bytes(self, campaign_id: str | None = None) -> bytes:
        return b"".join(self.app.truth(campaign_id))

    def campaigns(self) -> list[dict[str, Any]]:
        return [c.to_api() for c in self.app.campaign_list()]

    def add_campaign(self, **options: Any) -> dict[str, Any]:
        """App.add_campaign (its keywords and defaults), answered as the API shows the campaign."""
        return self.app.add_campaign(**options).to_api()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.app.configure(**changes).to_json()

    def reset(self) -> None:
        self.app.reset()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="soundlink-sandbox", description="Local Soundlink Public API v1 sandbox."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    p.add_argument("--today", type=date.fromisoformat, default=None, help="pin today (YYYY-MM-DD)")
    p.add_argument("--campaigns", type=int, default=6)
    p.add_argument(
        "--account-mix",
        choices=ACCOUNT_MIXES,
        default="default",
        help="campaigns after the first 6: all active (default) or a large account's mix (large)",
    )
    p.add_argument("--rows-per-day", type=int, default=12)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rate-limit-per-minute", type=int, default=60, help="0 disables")
    p.add_argument("--rate-limit-per-hour", type=int, default=600, help="0 disables")
    p.add_argument("--max-export-days", type=int, default=90)
    p.add_argument("--strict-range", action="store_true", help="400 instead of truncating wide ranges")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added before every API response")
    p.add_argument("--gzip", action="store_true", help="gzip every export body")
    p.add_argument("--prewarm", action="store_true", help="encode every row before serving")
    p.add_argument("--cache-mb", type=int, default=2048, help="bound on cached encoded rows")
    p.add_argument("--verbose", action="store_true", help="access log and tracebacks on stderr")
    a = p.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sb = Sandbox(
        host=a.host,
        port=a.port,
        api_key=a.api_key,
        today=a.today,
        campaigns=a.campaigns,
        account_mix=a.account_mix,
        rows_per_day=a.rows_per_day,
        seed=a.seed,
        rate_limit_per_minute=a.rate_limit_per_minute,
        rate_limit_per_hour=a.rate_limit_per_hour,
        max_export_days=a.max_export_days,
        strict_range=a.strict_range,
        latency=a.latency,
        gzip=a.gzip,
        prewarm=a.prewarm,
        cache_mb=a.cache_mb,
        verbose=a.verbose,
    )
    sb.start()
    print(sb.base_url, flush=True)
    while not stop.wait(0.5):
        pass
    sb.stop()


if __name__ == "__main__":
    main()
