"""`make demo` (scripts/demo.py) passes, says the result equals the truth, and leaves nothing running.

Also interrupted mid-run (Ctrl-C to the demo alone, Ctrl-C to the terminal's whole process group, SIGTERM):
it exits promptly and stops the sandbox and any connector process, and removes its temp dir.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.py"
SANDBOX_LINE = re.compile(r"Sandbox Soundlink API at http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")
WORKDIR_LINE = re.compile(r"temp files in (\S+)")


def start_demo() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DEMO)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )


def gone(pid: int) -> bool:
    """True when pid is no longer a sandbox process (absent, or reused by something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True
    return b"soundlink-sandbox" not in cmdline


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the demo's temp dir is in each connector's)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def assert_clean(output: str) -> None:
    sandbox = SANDBOX_LINE.search(output)
    workdir = WORKDIR_LINE.search(output)
    assert sandbox and workdir, output
    port, pid = int(sandbox.group(1)), int(sandbox.group(2))
    deadline = time.monotonic() + 5  # the sandbox was waited for; allow a moment for /proc to settle
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid), f"sandbox pid {pid} still running"
    assert port_closed(port), f"sandbox port {port} still accepting connections"
    assert not processes_mentioning(workdir.group(1)), "a connector process outlived the demo"
    assert not Path(workdir.group(1)).exists(), "the demo's temp dir was left behind"


def test_demo_passes_and_stops_the_sandbox() -> None:
    # About 12 s on an idle 2-core machine; the timeout only guards against a hang (no wall-clock bound:
    # speed is measured by benchmarks/, not by tests on a shared machine).
    done = subprocess.run([sys.executable, str(DEMO)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"deduplicated result == sandbox truth .*: OK$", output, re.MULTILINE), output
    assert "MISMATCH" not in output
    for step in ("spec", "check", "discover", "sync 1", "revise", "sync 2", "result"):
        assert f". {step}" in output, f"section {step!r} missing:\n{output}"
    assert "SUCCEEDED" in output
    assert_clean(output)


@pytest.mark.parametrize(
    ("sig", "whole_group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-demo-only", "ctrl-c-terminal-group", "sigterm"],
)
def test_demo_interrupted_stops_everything(sig: signal.Signals, whole_group: bool) -> None:
    proc = start_demo()
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:  # interrupt while `discover` (a connector subprocess) runs
            seen.append(line)
            if line.startswith("== 3."):
                break
        else:
            pytest.fail("the demo ended before discover:\n" + "".join(seen))
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode != 0, output
    assert "Demo OK" not in output
    assert_clean(output)


def test_demo_connector_failure_exits_nonzero_and_stops_the_sandbox(tmp_path: Path) -> None:
    """A connector that fails (here: an error TRACE at `spec`) fails the demo loudly, cleanly."""
    bin_dir = tmp_path / "bin"  # the demo finds its tools beside sys.executable
    bin_dir.mkdir()
    venv_bin = Path(sys.executable).parent
    (bin_dir / "python").symlink_to(venv_bin / "python")
    (bin_dir / "soundlink-sandbox").symlink_to(venv_bin / "soundlink-sandbox")
    fake = bin_dir / "source-soundlink"
    error = '{"type":"TRACE","trace":{"type":"ERROR","emitted_at":0,"error":{"message":"boom from fake"}}}'
    fake.write_text(f"#!/bin/sh\necho '{error}'\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run(
        [str(bin_dir / "python"), str(DEMO)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "DEMO FAILED: source-soundlink spec failed (exit 1): boom from fake" in output
    assert_clean(output)
