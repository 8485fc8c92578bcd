"""Input files and their secrets: readable errors, the spec's secret and setting names kept in step."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from source_soundlink import inputs
from source_soundlink.config import ConfigError, unknown_field_warnings

SPEC = yaml.safe_load(Path(inputs.__file__).with_name("manifest.yaml").read_text())["spec"]
PROPERTIES = SPEC["connection_specification"]["properties"]


def test_given_the_spec_when_its_secret_fields_are_listed_then_the_fast_path_masks_each() -> None:
    """The fast path does not load the spec; if a new airbyte_secret field appears, inputs.secrets must
    learn it (this fails until it does)."""
    config = {name: f"secret-value-of-{name}" for name, p in PROPERTIES.items() if p.get("airbyte_secret")}
    assert config, "the spec marks no secret field"
    assert set(inputs.secrets(config)) >= set(config.values())


def test_given_every_spec_property_when_checked_then_none_is_unknown_and_others_are() -> None:
    assert unknown_field_warnings(dict.fromkeys(PROPERTIES, "x")) == []
    assert len(unknown_field_warnings({"not_in_the_spec": 1})) == 1


def test_given_the_spec_when_read_then_it_declares_no_config_migration_the_fast_path_would_skip() -> None:
    """The CDK applies the spec's config_normalization_rules before check/discover; `read` does not."""
    assert "config_normalization_rules" not in SPEC


def test_given_a_missing_file_when_loaded_then_the_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Cannot read the config file .*nope.json: No such file"):
        inputs.load_json(str(tmp_path / "nope.json"), "config")


def test_given_a_file_that_is_not_json_when_loaded_then_the_error_names_it(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("{'streams': []}")
    with pytest.raises(ConfigError, match=r"^The catalog file .*catalog.json is not valid JSON"):
        inputs.load_json(str(tmp_path / "catalog.json"), "catalog")


def test_given_state_for_streams_this_source_lacks_when_loaded_then_each_is_named_once() -> None:
    mine = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "campaign_engagement_daily"}}}
    users = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {}}}
    orders = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}}}
    printed = {"type": "STATE", "state": orders}

    warnings = inputs.foreign_state_warnings([mine, users, printed, users])

    assert warnings == [
        inputs.FOREIGN_STATE.format(stream=name, streams="campaign_engagement_daily, campaigns")
        for name in ("users", "orders")
    ]
    assert inputs.foreign_state_warnings({"campaign_engagement_daily": {}}) == []
    assert inputs.foreign_state_warnings(None) == []


def test_given_a_message_holding_the_key_when_masked_then_every_form_of_it_is_gone() -> None:
    key = 'sk_live_"quoted"\\x'
    line = orjson.dumps({"message": f"key {key} and repr {key!r}"})
    masked = inputs.mask(line, *inputs.secrets({"api_key": key}))
    assert b"sk_live" not in masked
    assert masked.count(b"****") == 2
