"""The README's quick-start files work as shipped: integration_tests/sample_config.json and
integration_tests/configured_catalog.json, run through the `source-soundlink` command against the sandbox.

Only `base_url` is replaced (the README starts the sandbox on port 8765; here it gets a free port).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import CAMPAIGNS, ENGAGEMENT, Connector, assert_same_rows, by_pk
from soundlink_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = ROOT / "integration_tests" / "sample_config.json"
CONFIGURED_CATALOG = ROOT / "integration_tests" / "configured_catalog.json"


def _sample_config(sandbox: Sandbox) -> dict[str, Any]:
    config = json.loads(SAMPLE_CONFIG.read_text())
    assert config["base_url"] == "http://127.0.0.1:8765" and config["api_key"] == sandbox.api_key
    return {**config, "base_url": sandbox.base_url}


def test_given_the_sample_config_and_catalog_when_read_then_both_streams_equal_the_sandbox(
    sandbox: Sandbox, connector: Connector
) -> None:
    config = _sample_config(sandbox)
    check = connector.run(connector.argv("check", config), config["api_key"])
    assert check.connection_status["status"] == "SUCCEEDED", check.describe()

    argv = [*connector.argv("read", config), "--catalog", str(CONFIGURED_CATALOG)]
    run = connector.run(argv, config["api_key"]).assert_ok()

    assert_same_rows(by_pk(run.stream_records(ENGAGEMENT)), sandbox.truth())
    assert {c["campaignId"] for c in run.stream_records(CAMPAIGNS)} == {
        c["campaignId"] for c in sandbox.campaigns()
    }
    assert run.state is not None and run.state["campaigns"], "no engagement state to start the next sync"
    # No warning about the sample config's fields: every one of them is a spec field.
    assert not [log for log in run.logs if log.get("level") == "WARN"], run.describe()


def test_given_discover_when_compared_then_the_configured_catalog_matches_the_streams(
    sandbox: Sandbox, connector: Connector
) -> None:
    config = _sample_config(sandbox)
    run = connector.run(connector.argv("discover", config), config["api_key"]).assert_ok()
    discovered = {s["name"]: s for s in run.of_type("CATALOG")[0]["catalog"]["streams"]}
    configured = {e["stream"]["name"]: e for e in json.loads(CONFIGURED_CATALOG.read_text())["streams"]}

    assert set(configured) == set(discovered) == {ENGAGEMENT, CAMPAIGNS}
    for name, entry in configured.items():
        stream = discovered[name]
        assert entry["sync_mode"] in stream["supported_sync_modes"]
        assert entry["primary_key"] == stream["source_defined_primary_key"]
        assert entry["stream"]["supported_sync_modes"] == stream["supported_sync_modes"]
    engagement = configured[ENGAGEMENT]
    assert (engagement["sync_mode"], engagement["destination_sync_mode"]) == ("incremental", "append_dedup")
    assert engagement["cursor_field"] == discovered[ENGAGEMENT]["default_cursor_field"]
    assert (configured[CAMPAIGNS]["sync_mode"], configured[CAMPAIGNS]["destination_sync_mode"]) == (
        "full_refresh",
        "overwrite",
    )
