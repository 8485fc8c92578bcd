"""Invalid configuration fails before any request, naming the field and the fix."""

from __future__ import annotations

from datetime import date

import pytest

from source_soundlink.config import ConfigError, SoundlinkConfig, unknown_field_warnings
from unit_tests.builders import config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_key": "pk_live_123"}, "api_key must be a Soundlink secret key starting with 'sk_'"),
        ({"api_key": ""}, "api_key is required"),
        ({"start_date": "2026/01/01"}, "start_date must be a date in YYYY-MM-DD format"),
        ({"end_date": "2026-02-30"}, "end_date '2026-02-30' is not a real calendar date"),
        (
            {"start_date": "2026-03-01", "end_date": "2026-02-01"},
            "end_date 2026-02-01 is before start_date 2026-03-01",
        ),
        ({"engagement_context": "radio"}, "engagement_context must be one of catalog, playlist"),
        ({"window_size_days": 91}, "window_size_days must be between 1 and 90, not 91"),
        ({"window_size_days": 0}, "window_size_days must be between 1 and 90, not 0"),
        ({"lookback_window_days": 3}, "lookback_window_days must be between 7 and 90, not 3"),
        ({"num_workers": "4"}, "num_workers must be a whole number"),
        ({"auth_header": "basic"}, "auth_header must be 'x-api-key' or 'bearer'"),
        ({"campaign_ids": "camp_a"}, "campaign_ids must be a list of campaign id strings"),
        ({"base_url": "http://api.getsoundlink.com"}, "base_url must use https://"),
        ({"api_key": "sk_live_pasted_with_newline\n"}, "api_key has spaces or line breaks before or after"),
        ({"api_key": " sk_live_leading_space"}, "api_key has spaces or line breaks before or after"),
        ({"api_key": "sk_live two"}, "api_key must not contain spaces, line breaks"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SoundlinkConfig.from_mapping(config(**overrides))


def test_defaults_and_loopback_http() -> None:
    parsed = SoundlinkConfig.from_mapping(
        {"api_key": "sk_x_y", "base_url": "http://127.0.0.1:8080/"}, today=date(2026, 11, 27)
    )
    assert parsed.base_url == "http://127.0.0.1:8080"
    assert (parsed.lookback_window_days, parsed.window_size_days, parsed.auth_header) == (7, 90, "x-api-key")
    assert (parsed.requests_per_minute, parsed.requests_per_hour, parsed.num_workers) == (60, 600, 3)
    assert parsed.last_date == date(2026, 11, 27)


def test_end_date_in_the_future_is_clamped_to_today() -> None:
    parsed = SoundlinkConfig.from_mapping(config(end_date="2027-01-01"), today=date(2026, 11, 27))
    assert parsed.last_date == date(2026, 11, 27)


def test_the_key_never_appears_in_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        SoundlinkConfig.from_mapping({"api_key": "sk_secret_value", "start_date": "nope"})
    assert "sk_secret_value" not in str(raised.value)


@pytest.mark.parametrize(
    ("typo", "known"),
    [("start_dat", "start_date"), ("campaign_id", "campaign_ids"), ("apikey", "api_key")],
)
def test_given_a_misspelt_field_when_validated_then_a_warning_names_it_and_the_closest_setting(
    typo: str, known: str
) -> None:
    raw = config(**{typo: "x"})
    assert unknown_field_warnings(raw) == [
        f"{typo} is not a setting of this connector; did you mean {known}?"
    ]
    SoundlinkConfig.from_mapping(raw)  # never an error: a newer version may have added the field


def test_given_known_fields_and_platform_fields_when_validated_then_no_warning() -> None:
    raw = config(start_date="2026-01-01", __injected_declarative_manifest={})
    assert unknown_field_warnings(raw) == []


def test_given_a_field_like_no_setting_when_validated_then_the_warning_lists_the_settings() -> None:
    (warning,) = unknown_field_warnings(config(zzz=1))
    assert warning.startswith("zzz is not a setting of this connector; it is ignored (settings: api_key,")
