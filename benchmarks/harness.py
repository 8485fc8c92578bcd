"""Plumbing for benchmarks/run.py: the sandbox subprocess, measured child processes, configs."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
STREAM = "campaign_engagement_daily"
EXPORT_PATH = "/metrics/engagement/export"
DEFAULT_KEY = "sk_sandbox_0123456789abcdef"
RECORD_PREFIX = b'{"type":"RECORD","record":{"stream":"' + STREAM.encode() + b'"'
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PRIMARY_KEY = [
    ["provider"], ["account_id"], ["report_date"], ["campaign_id"],
    ["engagement_context"], ["country_code"], ["engaged_spotify_track_id"],
]  # fmt: skip


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Sandbox:
    """`soundlink-sandbox --port 0 ...` as a subprocess; a context manager."""

    def __init__(self, *args: str, cmd: list[str] | None = None, api_key: str = DEFAULT_KEY) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the sandbox)
        argv = [*(cmd or [str(BIN / "soundlink-sandbox")]), "--port", "0", "--api-key", api_key, *args]
        self.argv = argv
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], 900)[0]:
            self.close()
            raise RuntimeError(f"sandbox printed no URL: {argv}")
        self.base_url = self.proc.stdout.readline().decode().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError(f"sandbox failed: {argv}\n{self.stderr()}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
        self.http = requests.Session()
        self.http.headers["x-api-key"] = api_key
        self.campaigns = self._campaigns()
        self.startup_s = time.perf_counter() - started
        self.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def get(self, path: str) -> Any:
        resp = self.http.get(self.base_url + path, timeout=600)
        resp.raise_for_status()
        return resp.json()

    def _campaigns(self) -> list[dict[str, Any]]:
        """The campaign list from the admin route: not rate-limited, not in the request log."""
        for _ in range(300):
            try:
                return self.get("/_sandbox/campaigns")
            except requests.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"sandbox not ready: {self.argv}\n{self.stderr()}")

    def clear(self) -> None:
        self.http.delete(f"{self.base_url}/_sandbox/requests", timeout=30).raise_for_status()

    def requests_seen(self) -> list[dict[str, Any]]:
        return self.get("/_sandbox/requests")

    def warm(self, url: str) -> None:
        """Fetch a URL once and discard the body: the sandbox caches the encoded rows it served."""
        with self.http.get(url, stream=True, timeout=600) as resp:
            resp.raise_for_status()
            for _ in resp.iter_content(1 << 20):
                pass

    def exports_seen(self) -> list[dict[str, Any]]:
        return [r for r in self.requests_seen() if EXPORT_PATH in r.get("path", "")]


@dataclass
class Child:
    """One measured child process."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    returncode: int
    records: int | None = None
    states: list[dict[str, Any]] = field(default_factory=list)
    state_bytes: list[int] = field(default_factory=list)  # each STATE message's size, newline included
    errors: list[str] = field(default_factory=list)
    stderr: str = ""


class _Counter:
    """Counts RECORD lines of our stream in a stream of Airbyte messages; keeps STATE and error messages."""

    def __init__(self) -> None:
        self.records = 0
        self.states: list[dict[str, Any]] = []
        self.state_bytes: list[int] = []
        self.errors: list[str] = []
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            if line.startswith(RECORD_PREFIX):
                self.records += 1
            elif line.strip():
                self._message(line)

    def close(self) -> None:
        if self._tail.strip():
            self.feed(b"\n")

    def _message(self, line: bytes) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.errors.append(f"non-JSON stdout line: {line[:200]!r}")
            return
        kind = msg.get("type")
        if kind == "RECORD" and msg["record"].get("stream") == STREAM:
            self.records += 1
        elif kind == "STATE":
            self.states.append(msg["state"])
            self.state_bytes.append(len(line) + 1)
        elif kind == "TRACE" and msg["trace"].get("type") == "ERROR":
            self.errors.append(f"TRACE ERROR: {msg['trace']['error'].get('message')}")
        elif kind == "LOG" and msg["log"].get("level") in ("ERROR", "FATAL"):
            self.errors.append(f"LOG {msg['log']['level']}: {msg['log'].get('message', '')[:300]}")


# Children are started by this small launcher, never by the harness itself: Linux carries the parent's
# peak RSS into a vforked/forked child's ru_maxrss across exec (exec_mmap: setmax_mm_hiwater_rss), so a
# child spawned directly reports at least the harness's own peak. The launcher (python -S, ~8 MiB) spawns
# the target, reaps it with wait4 and writes "wall cpu maxrss_kib exitcode" to the file in argv[1].
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
with open(out, "w") as f:
    f.write(f"{wall} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_child(argv: list[str], *, count: bool, stall_s: float = 0.0, timeout: float = 900) -> Child:
    """Run argv via LAUNCHER; wall time from spawn to reap, peak RSS and CPU from wait4 rusage.

    count=False sends stdout to /dev/null (timed runs); count=True reads the pipe here and counts
    RECORD messages (correctness runs: the parent's parsing shares the CPU, so do not time them).
    stall_s > 0 reads nothing for that long first: a stalled destination, so every buffer fills up.
    """
    counter = _Counter()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as out:
        launcher = [sys.executable, "-S", "-c", LAUNCHER, out.name, *argv]
        stdout = subprocess.PIPE if count else subprocess.DEVNULL
        proc = subprocess.Popen(launcher, stdout=stdout, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        if count:
            assert proc.stdout is not None
            time.sleep(stall_s)
            fd = proc.stdout.fileno()
            while chunk := os.read(fd, 1 << 20):
                counter.feed(chunk)
            counter.close()
            proc.stdout.close()
        proc.wait()
        timer.cancel()
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-3000:]
        fields = out.read().split()
    if proc.returncode != 0 or len(fields) != 4:
        raise RuntimeError(f"launcher failed ({proc.returncode}) for {argv}: {stderr}")
    wall, cpu, maxrss_kib, returncode = float(fields[0]), float(fields[1]), int(fields[2]), int(fields[3])
    return Child(
        wall_s=wall,
        cpu_s=cpu,
        peak_mib=maxrss_kib / 1024,
        returncode=returncode,
        records=counter.records if count else None,
        states=counter.states,
        state_bytes=counter.state_bytes,
        errors=counter.errors,
        stderr=stderr,
    )


def catalog(sync_mode: str = "incremental") -> dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {
                    "name": STREAM,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                    "source_defined_cursor": True,
                    "default_cursor_field": ["report_date"],
                    "source_defined_primary_key": PRIMARY_KEY,
                },
                "sync_mode": sync_mode,
                "cursor_field": ["report_date"],
                "destination_sync_mode": "append_dedup" if sync_mode == "incremental" else "append",
                "primary_key": PRIMARY_KEY,
            }
        ]
    }


def final_states(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last STATE per stream (or the last global/legacy one): what a platform would save."""
    last: dict[str, dict[str, Any]] = {}
    for state in states:
        key = json.dumps(state.get("stream", {}).get("stream_descriptor", state.get("type")), sort_keys=True)
        last[key] = state
    return list(last.values())


def write_json(path: Path, data: Any) -> Path:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


def created_date(campaign: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(campaign["createdAt"][:10])


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "airbyte_cdk": importlib.metadata.version("airbyte-cdk"),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
