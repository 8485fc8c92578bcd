"""Fixtures for the whole-sync integration tests (test_sync, test_faults, test_errors, test_kill_resume).

Each test gets its own in-process sandbox on a free port, so tests are independent and can run in any
order or in parallel. Rate limits are off unless a test turns them on; `today` is pinned to the real UTC
date at start-up, and `Connector` runs the connector with the same date pinned, so a test that runs across
midnight still compares against one consistent truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Connector, utc_today
from soundlink_sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The documented six-campaign fixture, 12 rows a day, no server-side rate limit."""
    with Sandbox(today=utc_today(), rate_limit_per_minute=0, rate_limit_per_hour=0, cache_mb=64) as sb:
        yield sb


@pytest.fixture
def connector(sandbox: Sandbox, tmp_path: Path) -> Connector:
    return Connector(sandbox, tmp_path)
