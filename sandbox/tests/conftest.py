"""Fixtures shared by the sandbox's tests: one sandbox per module at the documented today, a session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import requests
from soundlink_sandbox import Sandbox

T = date(2026, 5, 1)  # the tests' pinned today (each module names it too, for its own arithmetic)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(today=T) as s:
        yield s


@pytest.fixture()
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
