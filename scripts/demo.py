"""`make demo`: the connector end to end against a local Soundlink sandbox, in about 20 seconds.

Starts the sandbox, runs `source-soundlink` spec, check, discover, a full sync, revises the sandbox's
recent days (as Soundlink does with late Spotify playback events), runs an incremental sync with the saved
state, and checks that the deduplicated result equals the sandbox's ground truth. Exits 1 on a mismatch
or any failure; the sandbox is stopped on every exit path, Ctrl-C included.

    .venv/bin/python scripts/demo.py              # the connector's CLI, as Airbyte runs it
    .venv/bin/python scripts/demo.py --pyairbyte  # then the same through PyAirbyte into DuckDB
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyairbyte_demo  # stdlib-only at import; shares compare() and the PyAirbyte venv bootstrap

BIN = Path(sys.executable).parent  # .venv/bin: the connector and the sandbox are installed there
ENGAGEMENT, CAMPAIGNS = "campaign_engagement_daily", "campaigns"
API_KEY = "sk_sandbox_0123456789abcdef"  # the sandbox's built-in key with both scopes
CONNECTOR_TIMEOUT = 120
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class DemoError(Exception):
    pass


def _child_setup() -> None:
    """In the child before exec: undo the held signals, and ask for SIGTERM if the demo dies.

    PR_SET_PDEATHSIG is the last resort for a demo killed by SIGKILL, which runs no cleanup. Elsewhere than
    Linux it is skipped; `child()` still stops every process on normal exits, errors, Ctrl-C and SIGTERM.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@contextlib.contextmanager
def child(cmd: list[str], **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """A subprocess that is stopped whenever the block exits, however it exits.

    SIGINT and SIGTERM are held while it starts: one landing inside Popen would raise before we hold a
    handle to the process, and nothing could stop it.
    """
    proc: subprocess.Popen[Any] | None = None
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            proc = subprocess.Popen(cmd, preexec_fn=_child_setup, **popen)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
        yield proc
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr) if proc is not None else ():
            if pipe is not None:
                pipe.close()


class SandboxProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url

    def admin(self, path: str, method: str = "GET") -> Any:
        with urllib.request.urlopen(urllib.request.Request(self.url + path, method=method), timeout=60) as r:
            body = r.read()
        if path.startswith("/_sandbox/truth"):
            return [json.loads(line) for line in body.splitlines()]
        return json.loads(body)


@contextlib.contextmanager
def sandbox_process(log_path: Path, today: str) -> Iterator[SandboxProcess]:
    """`soundlink-sandbox --port 0` as a subprocess; its first stdout line is the base URL."""
    cmd = [
        str(BIN / "soundlink-sandbox"),
        "--port", "0",
        "--today", today,  # pinned: a sync that straddles midnight UTC still matches the truth
        "--rate-limit-per-minute", "6000",  # the documented 60/min would make the demo wait
        "--rate-limit-per-hour", "100000",
    ]  # fmt: skip
    with open(log_path, "w") as log, child(cmd, stdout=subprocess.PIPE, stderr=log, text=True) as proc:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().strip() if ready and proc.stdout else ""
        if not line.startswith("http"):
            raise DemoError(f"the sandbox did not start (no base URL printed); see {log_path}")
        yield SandboxProcess(proc, line)


def connector(verb: str, *args: str) -> list[dict[str, Any]]:
    """Run `source-soundlink VERB ...`; return its Airbyte messages, or raise on an error trace or exit."""
    cmd = [str(BIN / "source-soundlink"), verb, *args]
    with child(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=CONNECTOR_TIMEOUT)
    messages = [json.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    errors = [m["trace"]["error"]["message"] for m in messages if m.get("trace", {}).get("type") == "ERROR"]
    if errors or proc.returncode != 0:
        detail = "; ".join(errors) or err.decode(errors="replace")[-2000:]
        raise DemoError(f"source-soundlink {verb} failed (exit {proc.returncode}): {detail}")
    return messages


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == kind]


def section(title: str) -> None:
    print(f"\n== {title}")


def fmt_state(value: dict[str, Any] | list[Any]) -> str:
    """One compact line per campaign: flags as bare words, the rest as key=value. A settled campaign's
    state is the compact list [from, through, updatedAt(, context)]."""
    if isinstance(value, list):
        names = ("from", "through", "updated_at", "engagement_context")
        return "settled " + " ".join(f"{k}={v}" for k, v in zip(names, value, strict=False))
    return " ".join(k if v is True else f"{k}={v}" for k, v in value.items())


class Demo:
    def __init__(self, sandbox: SandboxProcess, workdir: Path) -> None:
        self.sb = sandbox
        self.workdir = workdir
        self.config = workdir / "config.json"
        self.catalog = workdir / "catalog.json"
        self.status: dict[str, str] = {}  # campaignId -> status, from the campaigns stream
        self.campaigns: list[dict[str, Any]] = []  # the latest sync's campaigns records
        self.last_state: dict[str, Any] = {}  # per-campaign engagement state after the previous sync

    def spec(self) -> None:
        section("1. spec: what a user configures")
        spec = of_type(connector("spec"), "SPEC")[0]["spec"]["connectionSpecification"]
        fields = sorted(spec["properties"].items(), key=lambda kv: kv[1].get("order", 99))
        names = [f"{name}{' (required)' if name in spec.get('required', []) else ''}" for name, _ in fields]
        lines = textwrap.wrap(f"{len(fields)} fields: {', '.join(names)}", 100, subsequent_indent="  ")
        print("\n".join(f"   {line}" for line in lines))
        config = {
            "api_key": API_KEY,
            "base_url": self.sb.url,
            "requests_per_minute": 6000,  # client-side budget; the real API allows 60/min, 600/h
            "requests_per_hour": 100_000,
        }
        self.config.write_text(json.dumps(config))
        shown = {**config, "api_key": API_KEY[:11] + "****"}
        print(f"   demo config: {json.dumps(shown)}")

    def check(self) -> None:
        section("2. check: key, scopes and one tiny export")
        status = of_type(connector("check", "--config", str(self.config)), "CONNECTION_STATUS")[0]
        status = status["connectionStatus"]
        print(f"   {status['status']}{': ' + status['message'] if status.get('message') else ''}")
        if status["status"] != "SUCCEEDED":
            raise DemoError("check failed")

    def discover(self) -> None:
        section("3. discover: streams")
        streams = of_type(connector("discover", "--config", str(self.config)), "CATALOG")[0]["catalog"][
            "streams"
        ]
        configured = []
        for s in streams:
            pk = [p[0] for p in s.get("source_defined_primary_key") or []]
            cursor = s.get("default_cursor_field") or []
            print(
                f"   {s['name']}: {', '.join(s['supported_sync_modes'])}"
                + (f"; cursor {cursor[0]}" if cursor else "")
            )
            print(f"     primary key ({', '.join(pk)})")
            incremental = "incremental" in s["supported_sync_modes"]
            configured.append(
                {
                    "stream": s,
                    "sync_mode": "incremental" if incremental else "full_refresh",
                    "destination_sync_mode": "append_dedup" if incremental else "overwrite",
                    "cursor_field": cursor,
                    "primary_key": [[p] for p in pk],
                }
            )
        self.catalog.write_text(json.dumps({"streams": configured}))
        print(f"   selected: {ENGAGEMENT} incremental (append + dedup), {CAMPAIGNS} full refresh")

    def sync(
        self, n: int, title: str, state: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One `read`; prints rows and windows per campaign and the state. Returns (rows, final states)."""
        section(f"{n}. {title}")
        args = ["--config", str(self.config), "--catalog", str(self.catalog)]
        if state is not None:
            state_path = self.workdir / f"state-{n}.json"
            state_path.write_text(json.dumps(state))
            args += ["--state", str(state_path)]
        self.sb.admin("/_sandbox/requests", "DELETE")
        started = time.monotonic()
        messages = connector("read", *args)
        elapsed = time.monotonic() - started
        records = [m["record"] for m in of_type(messages, "RECORD")]
        rows = [r["data"] for r in records if r["stream"] == ENGAGEMENT]
        campaigns = [r["data"] for r in records if r["stream"] == CAMPAIGNS]
        self.status.update({c["campaignId"]: c.get("status", "?") for c in campaigns})
        final: dict[str, dict[str, Any]] = {}
        for m in of_type(messages, "STATE"):  # the last STATE per stream is what a platform would save
            final[m["state"]["stream"]["stream_descriptor"]["name"]] = m["state"]
        log = self.sb.admin("/_sandbox/requests")
        exports = [e for e in log if e["path"].endswith("/metrics/engagement/export")]
        print(
            f"   {len(campaigns)} campaigns, {len(rows)} engagement rows in {elapsed:.1f} s; "
            f"{len(log)} API requests ({len(exports)} exports)"
        )
        per_campaign = Counter(r["campaign_id"] for r in rows)
        windows: dict[str, list[str]] = defaultdict(list)
        for e in sorted(exports, key=lambda e: e["query"].get("startDate", "")):
            windows[e["path"].split("/")[3]].append(
                f"{e['query'].get('startDate')}..{e['query'].get('endDate')}"
            )
        width = max(map(len, self.status), default=10)
        stream_state = final[ENGAGEMENT]["stream"]["stream_state"]
        per_state = stream_state.get("campaigns", {})
        print(f"   {'campaign':<{width}}  {'status':<9} {'rows':>5}  windows requested (startDate..endDate)")
        for cid in self.status:
            settled = isinstance(per_state.get(cid), list)
            requested = ", ".join(windows[cid]) or (
                "none: settled (ended, past its tail)" if settled else "none"
            )
            print(f"   {cid:<{width}}  {self.status[cid]:<9} {per_campaign[cid]:>5}  {requested}")
        if per_state == self.last_state:
            print("   state after this sync: unchanged (the lookback re-read does not move `through`)")
        else:
            print(
                f"   state after this sync (per campaign, state_version={stream_state.get('state_version')}):"
            )
            for cid in sorted(
                per_state, key=lambda c: list(self.status).index(c) if c in self.status else 99
            ):
                if per_state[cid] != self.last_state.get(cid):
                    print(f"     {cid:<{width}}  {fmt_state(per_state[cid])}")
        self.last_state = per_state
        self.campaigns = campaigns
        return rows, list(final.values())


def run_demo(sandbox: SandboxProcess, workdir: Path, today: str) -> bool:
    demo = Demo(sandbox, workdir)
    print(f"Sandbox Soundlink API at {sandbox.url} (pid {sandbox.proc.pid}), today {today} UTC")
    print(f"Connector {BIN / 'source-soundlink'}; temp files in {workdir}")
    demo.spec()
    demo.check()
    demo.discover()
    rows1, state = demo.sync(4, "sync 1: full (incremental mode, no state)", None)

    section("5. revise: Soundlink re-states recent days")
    revision = sandbox.admin("/_sandbox/revise", "POST")["revision"]
    print(
        f"   POST /_sandbox/revise -> revision {revision}: the last 7 report dates and today get new values"
    )
    print("   (Soundlink revises closed days for 7 days as late Spotify playback events arrive)")
    rows2, _ = demo.sync(6, "sync 2: incremental, with sync 1's state", state)

    section("7. result: deduplicated on the primary key (later sync wins) vs GET /_sandbox/truth")
    first = {pyairbyte_demo.pk(r): r for r in rows1}
    merged = dict(first)
    merged.update((pyairbyte_demo.pk(r), r) for r in rows2)
    changed = sum(1 for r in rows2 if pyairbyte_demo.pk(r) in first and first[pyairbyte_demo.pk(r)] != r)
    truth = sandbox.admin("/_sandbox/truth")
    print(f"   sync 1: {len(rows1)} rows; sync 2: {len(rows2)} rows re-read, {changed} with revised values")
    print(f"   deduplicated: {len(merged)} unique rows; GET /_sandbox/truth: {len(truth)} rows")
    problems = pyairbyte_demo.compare(merged.values(), truth, exact=True)
    campaigns_truth = sandbox.admin("/_sandbox/campaigns")
    if sorted(demo.campaigns, key=lambda c: c["campaignId"]) != sorted(
        campaigns_truth, key=lambda c: c["campaignId"]
    ):
        problems.append("the campaigns stream differs from GET /_sandbox/campaigns")
    print(f"   deduplicated result == sandbox truth (every field of every row, and campaigns): "
          f"{'MISMATCH' if problems else 'OK'}")  # fmt: skip
    for problem in problems[:10]:
        print(f"     {problem}")
    return not problems


def run_pyairbyte(sandbox: SandboxProcess, workdir: Path) -> bool:
    section("8. PyAirbyte: the same connector into a DuckDB cache (merge on the primary key)")
    python = pyairbyte_demo.ensure_venv(log=lambda msg: print(f"   {msg}", flush=True))
    sys.stdout.flush()
    cmd = [
        str(python),
        str(Path(pyairbyte_demo.__file__)),
        "--base-url", sandbox.url,
        "--api-key", API_KEY,
        "--executable", str(BIN / "source-soundlink"),
        "--workdir", str(workdir / "pyairbyte"),
    ]  # fmt: skip
    with child(cmd) as proc:
        return proc.wait(timeout=300) == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run source-soundlink end to end against a local sandbox.")
    parser.add_argument(
        "--pyairbyte", action="store_true", help="also load the sandbox with PyAirbyte into DuckDB"
    )
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # live progress through a pipe (`make demo | tee`) too
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the finally blocks stop the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("source-soundlink", "soundlink-sandbox"):
        if not os.access(BIN / tool, os.X_OK):
            print(f"{BIN / tool} not found: run this with the project's venv (`make demo`).", file=sys.stderr)
            return 2
    started = time.monotonic()
    today = datetime.now(UTC).date().isoformat()
    ok = False
    try:
        with (
            tempfile.TemporaryDirectory(prefix="soundlink-demo-") as tmp,
            sandbox_process(Path(tmp) / "sandbox.log", today) as sandbox,
        ):
            ok = run_demo(sandbox, Path(tmp), today)
            if args.pyairbyte:
                ok = run_pyairbyte(sandbox, Path(tmp)) and ok
    except (DemoError, subprocess.TimeoutExpired, RuntimeError, OSError) as error:
        print(f"\nDEMO FAILED: {error}", file=sys.stderr)  # OSError: an admin call; RuntimeError: pip
    except KeyboardInterrupt:
        print("\nInterrupted; sandbox stopped.", file=sys.stderr)
        return 130
    print(f"\n{'Demo OK' if ok else 'Demo FAILED'} in {time.monotonic() - started:.0f} s; sandbox stopped.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
