"""The version the connector reports (User-Agent) is pyproject.toml's, through the package metadata."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import requests_mock

from source_soundlink.version import VERSION
from unit_tests import builders as b
from unit_tests.builders import BASE_URL

ROOT = Path(__file__).resolve().parents[1]


def test_given_a_sync_when_it_calls_soundlink_then_the_user_agent_carries_the_package_version() -> None:
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{BASE_URL}/v1/campaigns", json={"data": {"items": [], "pagination": {"totalPages": 1}}})
        output = b.read_source(b.config(end_date="2026-03-05"))
    assert not output.errors
    assert mocker.request_history, "the sync made no request"
    expected = f"airbyte-source-soundlink/{metadata.version('source-soundlink')}"
    assert {request.headers["User-Agent"] for request in mocker.request_history} == {expected}


def test_given_this_checkout_is_installed_when_its_version_is_read_then_it_is_pyprojects() -> None:
    distribution = metadata.distribution("source-soundlink")
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    if direct_url.get("url") != ROOT.as_uri():
        pytest.skip(f"source-soundlink is installed from {direct_url.get('url')}, not this checkout")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["version"]
    assert VERSION == distribution.version == pyproject
