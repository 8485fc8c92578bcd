"""PyAirbyte loads the sandbox into DuckDB: full sync, revision, incremental sync; table == truth.

PyAirbyte runs from its own venv (.venv-pyairbyte, created on first use from the pinned
scripts/pyairbyte-requirements.txt; it cannot share .venv, see scripts/pyairbyte_demo.py) and runs the
connector's installed `source-soundlink` as a local executable, offline (no registry, no telemetry).
The test does not skip: if PyAirbyte cannot be installed, it fails and says why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from soundlink_sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import pyairbyte_demo  # the script under test: its venv bootstrap and field comparison

ROOT = Path(__file__).resolve().parent.parent

EXECUTABLE = Path(sys.executable).parent / "source-soundlink"
LOOKBACK_DAYS = 7  # the connector's default lookback_window_days


@pytest.fixture(scope="session")
def pyairbyte_python() -> Path:
    try:
        return pyairbyte_demo.ensure_venv(log=lambda message: print(message, file=sys.stderr))
    except RuntimeError as error:
        pytest.fail(f"PyAirbyte could not be installed, so this test cannot run:\n{error}")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    today = datetime.now(UTC).date().isoformat()  # pinned: a run across midnight keeps one truth
    with Sandbox(today=today, rate_limit_per_minute=0, rate_limit_per_hour=0, cache_mb=64) as sb:
        yield sb


def test_pyairbyte_merge_into_duckdb_equals_truth(
    pyairbyte_python: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert EXECUTABLE.exists(), f"{EXECUTABLE} missing: install the connector into this venv"
    before_revision = {pyairbyte_demo.pk(row): row for row in sandbox.truth()}
    dump = tmp_path / "table.jsonl"
    cmd = [
        str(pyairbyte_python), str(ROOT / "scripts" / "pyairbyte_demo.py"),
        "--base-url", sandbox.base_url,
        "--api-key", sandbox.api_key,
        "--executable", str(EXECUTABLE),
        "--workdir", str(tmp_path / "work"),
        "--dump", str(dump),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "merged on the primary key): OK" in done.stdout, output

    # Row for row, every truth field, after the revision; no duplicate primary keys.
    table = [json.loads(line) for line in dump.read_text().splitlines()]
    truth = sandbox.truth()
    assert len(table) == len(truth) > 0
    assert pyairbyte_demo.compare(table, truth) == []

    # Not vacuous: the revision changed rows the first sync had loaded, and the merge replaced them.
    revised = [row for row in truth if before_revision.get(pyairbyte_demo.pk(row)) != row]
    assert revised, "the sandbox revision changed no row"
    assert len(sandbox.app.revise_days) == 1

    # The second sync was incremental from the state PyAirbyte kept in the cache: the script clears the
    # request log before each sync, so what is left is sync 2's, and it re-reads only the lookback window.
    exports = [e["query"] for e in sandbox.requests() if e["path"].endswith("/export")]
    assert exports, "sync 2 made no export request"
    first_day = sandbox.app.today() - timedelta(days=LOOKBACK_DAYS)
    assert all(date.fromisoformat(q["startDate"]) >= first_day for q in exports), exports
