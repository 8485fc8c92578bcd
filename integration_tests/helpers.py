"""Shared helpers for the whole-sync integration tests: run the `source-soundlink` command, parse its output.

Every run goes through the installed console script as a subprocess against an in-process sandbox over
real HTTP. `Connector.read`/`check` also assert, for every run, that the API key never appears in stdout
or stderr and that every stdout line is a JSON Airbyte message.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from soundlink_sandbox import Sandbox

ENGAGEMENT = "campaign_engagement_daily"
CAMPAIGNS = "campaigns"
PRIMARY_KEY = (
    "provider",
    "account_id",
    "report_date",
    "campaign_id",
    "engagement_context",
    "country_code",
    "engaged_spotify_track_id",
)
Rows = dict[tuple[Any, ...], dict[str, Any]]  # primary key -> row
EXPORT_RE = re.compile(r"^/v1/campaigns/([^/]+)/metrics/engagement/export$")
RUN_TIMEOUT_S = 120


IMAGE = os.environ.get("SOUNDLINK_IMAGE", "airbyte/source-soundlink:dev")
IMAGE_BUILD_TIMEOUT_S = 1800
ROOT = Path(__file__).resolve().parents[1]
# This checkout's podman settings, written by scripts/build_image.sh (nothing machine-wide).
PODMAN_DIR = ROOT / "build" / "podman"


def use_project_podman_settings() -> None:
    """Point every podman command of this session (direct, or through scripts/image/docker) at them."""
    os.environ["CONTAINERS_CONF"] = str(PODMAN_DIR / "containers.conf")  # as build_image.sh uses it
    if (PODMAN_DIR / "storage.conf").is_file():
        os.environ["CONTAINERS_STORAGE_CONF"] = str(PODMAN_DIR / "storage.conf")


def ensure_image() -> str:
    """Build (or refresh) the image once per session with scripts/build_image.sh; fail loudly, never skip."""
    if os.environ.get("_SOUNDLINK_IMAGE_READY") == IMAGE:
        return IMAGE
    if os.environ.get("SOUNDLINK_SKIP_IMAGE_BUILD") == "1":
        use_project_podman_settings()
        podman = shutil.which("podman")
        if not podman or subprocess.run([podman, "image", "exists", IMAGE], check=False).returncode != 0:
            raise AssertionError(
                f"SOUNDLINK_SKIP_IMAGE_BUILD=1 but there is no image {IMAGE}: run scripts/build_image.sh"
            )
    else:
        try:
            result = subprocess.run(
                ["bash", str(ROOT / "scripts" / "build_image.sh")],
                env={**os.environ, "SOUNDLINK_IMAGE": IMAGE},
                capture_output=True,
                text=True,
                timeout=IMAGE_BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"scripts/build_image.sh did not finish within {IMAGE_BUILD_TIMEOUT_S} s"
            ) from None
        if result.returncode != 0:
            raise AssertionError(
                f"Could not build the connector image {IMAGE} with podman (scripts/build_image.sh exited "
                f"{result.returncode}). The container tests need root, apt-get (Debian) and the package "
                f"registries to set podman up.\n{(result.stdout + result.stderr)[-6000:]}"
            )
    use_project_podman_settings()
    os.environ["_SOUNDLINK_IMAGE_READY"] = IMAGE
    return IMAGE


def _die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies, even by SIGKILL (Linux; elsewhere skipped)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def spawn_sandbox(startup_timeout_s: float = 30.0) -> tuple[subprocess.Popen[str], str]:
    """`soundlink-sandbox --port 0` as a host process (today pinned, rate limits off) and its base URL.

    For tests whose connector runs outside this process (a container, the CDK's standard suite).
    """
    script = Path(sys.executable).with_name("soundlink-sandbox")
    command = [str(script)] if script.exists() else [shutil.which("soundlink-sandbox") or "soundlink-sandbox"]
    today = datetime.now(UTC).date().isoformat()
    flags = ["--port", "0", "--today", today, "--rate-limit-per-minute", "0", "--rate-limit-per-hour", "0"]
    process = subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_die_with_parent,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], startup_timeout_s)
    base_url = process.stdout.readline().strip() if ready else ""
    if not base_url.startswith("http://"):
        process.kill()
        raise AssertionError(
            f"soundlink-sandbox printed no base URL within {startup_timeout_s:.0f} s (got {base_url!r})"
        )
    return process, base_url


def stop_process(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


# Runs the connector's console entrypoint with its UTC date pinned to the sandbox's `today`, so a test that
# runs across midnight UTC keeps one truth on both sides (the sandbox is pinned at start-up; the connector
# would otherwise read the wall clock). With a warp factor, the connector's clock (source_soundlink/clock.py,
# the one every wait and duration of a sync goes through) runs `factor` times faster: it is installed as
# the default clock before any connector module binds it. Used only where a test must watch minute-long
# request budgets, Retry-After waits or the STATE pacing.
_BOOTSTRAP = """
import sys
from datetime import date
today, factor = date.fromisoformat(sys.argv.pop(1)), float(sys.argv.pop(1))
import source_soundlink.clock
if factor != 1:
    source_soundlink.clock.SYSTEM_CLOCK = source_soundlink.clock.ScaledClock(factor)
import source_soundlink.config
source_soundlink.config.today_utc = lambda: today
from source_soundlink.run import run
run()
"""


def utc_today() -> str:
    return datetime.now(UTC).date().isoformat()


def pinned_connector_command(today: date, warp: float = 1.0) -> list[str]:
    """The connector's `run()` with today pinned (and, with `warp`, its clocks sped up)."""
    return [sys.executable, "-c", _BOOTSTRAP, today.isoformat(), str(warp)]


def catalog(*streams: str, sync_mode: str = "incremental") -> dict[str, Any]:
    streams = streams or (ENGAGEMENT,)
    entries = []
    for name in streams:
        mode = sync_mode if name == ENGAGEMENT else "full_refresh"
        entries.append(
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup" if mode == "incremental" else "overwrite",
                **({"cursor_field": ["report_date"]} if mode == "incremental" else {}),
            }
        )
    return {"streams": entries}


def pk(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[f] for f in PRIMARY_KEY)


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.stream_records(ENGAGEMENT)

    def stream_records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if m["record"]["stream"] == stream]

    @property
    def state_messages(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of_type("STATE")]

    @property
    def state(self) -> dict[str, Any] | None:
        """The engagement stream_state of the last STATE message, or None when none was emitted."""
        states = [s for s in self.state_messages if s["stream"]["stream_descriptor"]["name"] == ENGAGEMENT]
        return states[-1]["stream"]["stream_state"] if states else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    @property
    def error(self) -> dict[str, Any]:
        """The run's single TRACE ERROR (asserting there is exactly one)."""
        assert len(self.errors) == 1, f"expected one TRACE ERROR, got {self.errors}\n{self.describe()}"
        return self.errors[0]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [m["log"] for m in self.of_type("LOG")]

    @property
    def stream_statuses(self) -> list[str]:
        traces = [m["trace"] for m in self.of_type("TRACE")]
        return [t["stream_status"]["status"] for t in traces if t["type"] == "STREAM_STATUS"]

    @property
    def connection_status(self) -> dict[str, Any]:
        statuses = [m["connectionStatus"] for m in self.of_type("CONNECTION_STATUS")]
        assert len(statuses) == 1, f"expected one CONNECTION_STATUS\n{self.describe()}"
        return statuses[0]

    def describe(self) -> str:
        tail = b"\n".join(line for line in self.stdout.splitlines() if b'"type":"RECORD"' not in line)
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode} in {self.seconds:.1f} s\n"
            f"--- stdout (records elided) ---\n{tail.decode(errors='replace')[-6000:]}\n"
            f"--- stderr ---\n{self.stderr.decode(errors='replace')[-3000:]}"
        )

    def assert_ok(self) -> Run:
        assert self.returncode == 0, self.describe()
        assert not self.errors, self.describe()
        return self

    def assert_failed(self, failure_type: str) -> dict[str, Any]:
        """Non-zero exit with exactly one TRACE ERROR of `failure_type`; returns the error."""
        assert self.returncode != 0, self.describe()
        error = self.error
        assert error["failure_type"] == failure_type, self.describe()
        return error


def parse_messages(stdout: bytes) -> list[dict[str, Any]]:
    messages = []
    for number, line in enumerate(stdout.splitlines(), 1):
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"stdout line {number} is not JSON: {line[:300]!r}") from exc
        assert isinstance(message, dict) and "type" in message, f"stdout line {number}: {line[:300]!r}"
        messages.append(message)
    return messages


def assert_secret_absent(secret: str, *outputs: bytes) -> None:
    for output in outputs:
        assert secret.encode() not in output, "the API key leaked into the connector's output"


class Connector:
    """Runs `source-soundlink` against one sandbox; files go to a per-test directory."""

    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self._n = 0

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A working config for this sandbox: high client budget, so only the server limits (if any)."""
        base = {
            "api_key": self.sandbox.api_key,
            "base_url": self.sandbox.base_url,
            "requests_per_minute": 10_000,
            "requests_per_hour": 100_000,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def command(self, warp: float = 1.0) -> list[str]:
        """How this connector is started: today pinned to the sandbox's (see pinned_connector_command)."""
        return pinned_connector_command(self.sandbox.app.today(), warp)

    def _write(self, name: str, payload: Any) -> str:
        self._n += 1
        path = self.workdir / f"{self._n:03d}-{name}.json"
        path.write_text(json.dumps(payload))
        return str(path)

    def argv(
        self,
        verb: str,
        config: dict[str, Any],
        catalog_: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        debug: bool = False,
    ) -> list[str]:
        argv = [verb, "--config", self._write("config", config)]
        if catalog_ is not None:
            argv += ["--catalog", self._write("catalog", catalog_)]
        if state is not None:
            argv += ["--state", self._write("state", state_file(state))]
        if debug:
            argv.append("--debug")
        return argv

    def run(self, argv: Sequence[str], secret: str, command: Sequence[str] | None = None) -> Run:
        full = [*(command or self.command()), *argv]
        started = time.monotonic()
        proc = subprocess.run(full, capture_output=True, timeout=RUN_TIMEOUT_S, cwd=self.workdir)
        run = Run(full, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        assert_secret_absent(secret, proc.stdout, proc.stderr)
        run.messages = parse_messages(proc.stdout)
        return run

    def read(
        self,
        config: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        sync_mode: str = "incremental",
        streams: Iterable[str] = (ENGAGEMENT,),
        debug: bool = False,
        command: Sequence[str] | None = None,
    ) -> Run:
        config = config if config is not None else self.config()
        argv = self.argv("read", config, catalog(*streams, sync_mode=sync_mode), state, debug)
        return self.run(argv, str(config.get("api_key") or "\0"), command)

    def check(self, config: dict[str, Any] | None = None, debug: bool = False) -> Run:
        config = config if config is not None else self.config()
        return self.run(self.argv("check", config, debug=debug), str(config.get("api_key") or "\0"))


def campaign_state(stream_state: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    """One campaign's state as an object: a settled campaign's compact [from, through, updatedAt(,
    context)] reads as {"from", "through", "updated_at", "settled": True(, "engagement_context")}."""
    value = stream_state["campaigns"][campaign_id]
    if isinstance(value, list):
        names = ("from", "through", "updated_at", "engagement_context")
        return {**dict(zip(names, value, strict=False)), "settled": True}
    return value


def state_file(stream_state: dict[str, Any]) -> list[dict[str, Any]]:
    """What Airbyte passes to --state: a list of per-stream STATE messages."""
    return [
        {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": ENGAGEMENT}, "stream_state": stream_state},
        }
    ]


# --- records ---------------------------------------------------------------------------------------------


def assert_unique_pks(records: Sequence[dict[str, Any]]) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    duplicates = []
    for i, row in enumerate(records):
        key = pk(row)
        if key in seen:
            duplicates.append((key, seen[key], i))
        seen[key] = i
    assert not duplicates, f"{len(duplicates)} duplicate primary keys within one sync, e.g. {duplicates[:3]}"


def by_pk(*syncs: Iterable[dict[str, Any]]) -> Rows:
    """The deduplicated union of syncs' records, later syncs winning (the documented upsert)."""
    merged: Rows = {}
    for records in syncs:
        for row in records:
            merged[pk(row)] = row
    return merged


def assert_same_rows(actual: Rows, expected: Iterable[dict[str, Any]]) -> None:
    expected_map = by_pk(expected)
    missing = expected_map.keys() - actual.keys()
    extra = actual.keys() - expected_map.keys()
    assert not missing, f"{len(missing)} rows missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} rows not in the sandbox truth, e.g. {sorted(extra)[:3]}"
    differ = [k for k, row in expected_map.items() if actual[k] != row]
    assert not differ, (
        f"{len(differ)} rows differ from the sandbox truth, e.g. {differ[0]}:\n"
        f"  got      {actual[differ[0]]}\n  expected {expected_map[differ[0]]}"
    )


def assert_exact(records: Sequence[dict[str, Any]], truth: Iterable[dict[str, Any]]) -> None:
    """One sync's records: no primary key twice, and exactly the truth (every field equal)."""
    assert_unique_pks(records)
    assert_same_rows(by_pk(records), truth)


# --- the sandbox's request log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    campaign_id: str
    start: date
    end: date
    status: int | None
    request_id: str
    time: float
    auth: str
    accept: str | None
    query: dict[str, str]
    fault: str | None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def window(self) -> tuple[date, date]:
        return self.start, self.end


def export_requests(sandbox: Sandbox, campaign_id: str | None = None) -> list[ExportRequest]:
    out = []
    for entry in sandbox.requests():
        m = EXPORT_RE.match(entry["path"])
        if not m or (campaign_id is not None and m.group(1) != campaign_id):
            continue
        q = entry["query"]
        assert "startDate" in q and "endDate" in q, f"export without explicit dates: {entry}"
        out.append(
            ExportRequest(
                m.group(1),
                date.fromisoformat(q["startDate"]),
                date.fromisoformat(q["endDate"]),
                entry["status"],
                entry["requestId"],
                entry["time"],
                entry["auth"],
                entry["accept"],
                q,
                entry["fault"],
            )
        )
    return out


def campaign_spans(sandbox: Sandbox) -> dict[str, tuple[date, date] | None]:
    """Each campaign's inclusive report_date range with rows, as of the sandbox's today."""
    today = sandbox.app.today()
    return {c.campaign_id: c.row_days(today) for c in sandbox.app.campaign_list()}


def campaign_by_status(sandbox: Sandbox, status: str) -> str:
    return next(c["campaignId"] for c in sandbox.campaigns() if c["status"] == status)


def multi_window_campaign(sandbox: Sandbox) -> str:
    """The active campaign whose history is longer than one 90-day window (fixture campaign #2)."""
    spans = campaign_spans(sandbox)
    return max(
        (c for c in sandbox.app.campaign_list() if c.status == "active" and spans[c.campaign_id]),
        key=lambda c: (spans[c.campaign_id][1] - spans[c.campaign_id][0]).days,  # type: ignore[index]
    ).campaign_id


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def window_label(start: date, end: date) -> str:
    """How the connector names a window in its messages."""
    return f"{start.isoformat()}..{end.isoformat()}"
