"""A pinned tool in a virtualenv of its own (PyAirbyte, Airbyte's QA checks), created on first use.

Those tools pin other versions of shared libraries than the connector, so they cannot live in `.venv`.
Stdlib only: the demo, the QA script and the tests import it before any venv exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PIP = "pip==24.3.1"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, requirements: Path, what: str, log: Callable[[str], object] = print) -> Path:
    """Create or refresh `venv` from `requirements` (a pip requirements file) when it changed; return its
    python. Idempotent and safe from parallel processes (an flock around the install); the stamp holds the
    requirements' hash, so an unchanged file costs nothing. Raises RuntimeError with pip's output.
    """
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".installed"
    python = venv_python(venv)

    def ready() -> bool:
        return python.exists() and stamp.exists() and stamp.read_text().strip() == digest

    if ready():
        return python
    # The lock lives outside the work tree (`venv --clear` empties the venv dir; the repo stays clean).
    key = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"private-venv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing right now
        if ready():
            return python
        log(f"Installing {what} into {venv} (first time only, a minute or two)...")
        started = time.monotonic()
        base = getattr(sys, "_base_executable", sys.executable)  # a venv's own python would nest venvs
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        steps = [[base, "-m", "venv", "--clear", str(venv)], [*pip, PIP], [*pip, "-r", str(requirements)]]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(
                    f"Could not install {what} into {venv}: `{' '.join(cmd)}` exited {done.returncode}.\n"
                    f"{(done.stdout + done.stderr)[-4000:]}"
                )
        stamp.write_text(digest + "\n")
        log(f"{what} installed in {time.monotonic() - started:.0f} s.")
    return python


def main(pairs: list[str]) -> int:
    """`private_venv.py VENV:REQUIREMENTS ...`: prepare several venvs at once (installs are mostly single-
    threaded, so two run side by side in about the time of one); `make test` calls it before pytest."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for pair in pairs:
        venv, _, requirements = pair.partition(":")
        jobs.append((Path(venv), Path(requirements), Path(venv).name))
    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        futures = [pool.submit(ensure_venv, *job, lambda m: print(m, flush=True)) for job in jobs]
        errors = [f.exception() for f in futures if f.exception() is not None]
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
