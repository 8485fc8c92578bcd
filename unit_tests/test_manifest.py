"""The declarative manifest: current CDK syntax (no deprecated fields), the campaigns URL, and the numbers
it shares with the Python code (the spec's defaults and bounds, the base URL, the retry policy)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from source_soundlink import config as config_module
from source_soundlink.retry_policy import DEFAULT_POLICY
from source_soundlink.source import SourceSoundlink

MANIFEST = Path(__file__).resolve().parents[1] / "source_soundlink" / "manifest.yaml"
KEY = "sk_test_0123456789abcdef"


def _campaigns_catalog() -> Any:
    stream = ConfiguredAirbyteStreamBuilder().with_name("campaigns").with_primary_key([["campaignId"]])
    return CatalogBuilder().with_stream(stream.with_sync_mode(SyncMode.full_refresh)).build()


def _page(items: list[dict[str, Any]]) -> HttpResponse:
    pagination = {"page": 1, "pageSize": 100, "totalCount": len(items), "totalPages": 1}
    body = {"data": {"items": items, "pagination": pagination}, "meta": {"requestId": "req-1"}}
    return HttpResponse(json.dumps(body), 200)


def test_no_deprecated_manifest_fields() -> None:
    """HttpRequester's url_base and path are deprecated in favour of url: the CDK warns about neither."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = SourceSoundlink(config={"api_key": KEY})
        source.streams({"api_key": KEY})
    assert source.deprecation_warnings() == []
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]
    text = MANIFEST.read_text()
    assert "url_base:" not in text and "\n        path:" not in text


def _manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def test_given_the_spec_when_compared_with_config_py_then_every_default_and_bound_is_the_same() -> None:
    properties = _manifest()["spec"]["connection_specification"]["properties"]
    in_code = {
        **{name: bounds._asdict() for name, bounds in config_module.INT_FIELDS.items()},
        "base_url": {"default": config_module.DEFAULT_BASE_URL},
        "auth_header": {"default": config_module.DEFAULT_AUTH_HEADER},
    }
    in_manifest = {
        name: {k: prop[k] for k in ("default", "minimum", "maximum") if k in prop}
        for name, prop in properties.items()
        if {"default", "minimum", "maximum"} & set(prop)
    }
    assert in_manifest == in_code
    assert tuple(properties["auth_header"]["enum"]) == config_module.AUTH_HEADERS
    assert tuple(properties["engagement_context"]["enum"]) == config_module.ENGAGEMENT_CONTEXTS


def test_given_a_date_field_when_rendered_then_it_is_a_picker_accepting_what_config_py_accepts() -> None:
    properties = _manifest()["spec"]["connection_specification"]["properties"]
    samples = ["2026-01-31", "2026/01/31", "26-01-31", "2026-1-31", " 2026-01-31", "2026-01-31T00:00"]
    for field in ("start_date", "end_date"):
        assert properties[field]["format"] == "date"
        pattern = re.compile(properties[field]["pattern"])
        assert [bool(pattern.match(v)) for v in samples] == [
            bool(config_module._DATE_RE.match(v)) for v in samples
        ]


def test_given_the_campaigns_url_when_no_base_url_is_set_then_it_falls_back_to_config_py_default() -> None:
    url = _manifest()["streams"][0]["retriever"]["requester"]["url"]
    assert f"or '{config_module.DEFAULT_BASE_URL}'" in url


def test_given_the_campaigns_error_handler_then_it_follows_the_retry_policy() -> None:
    handler = _manifest()["definitions"]["requester"]["error_handler"]
    wait_from_header, exponential = handler["backoff_strategies"]
    assert handler["max_retries"] == DEFAULT_POLICY.max_attempts - 1  # the CDK counts retries, not sends
    assert wait_from_header["max_waiting_time_in_seconds"] == DEFAULT_POLICY.max_silent_retry_after_s
    assert exponential["factor"] == DEFAULT_POLICY.backoff_base_s


@pytest.mark.parametrize(
    ("base_url", "expected_root"),
    [
        (None, "https://api.getsoundlink.com"),
        ("https://sandbox.example.com/", "https://sandbox.example.com"),
        ("https://sandbox.example.com/api", "https://sandbox.example.com/api"),
    ],
)
def test_campaigns_url_is_the_api_root_plus_the_route(base_url: str | None, expected_root: str) -> None:
    config = {"api_key": KEY, **({"base_url": base_url} if base_url else {})}
    campaign = {"campaignId": "camp_1", "status": "active", "createdAt": "2026-01-01T00:00:00Z"}
    with HttpMocker() as http_mocker:
        http_mocker.get(
            HttpRequest(
                f"{expected_root}/v1/campaigns",
                query_params={"pageSize": "100", "sortBy": "createdAt", "sortOrder": "asc"},
            ),
            _page([campaign]),
        )
        # The manifest's own stream (SourceSoundlink reads `campaigns` from the export's listing instead).
        manifest = YamlDeclarativeSource(path_to_yaml=str(MANIFEST), config=config)
        output = read(manifest, config, _campaigns_catalog())
    assert [record.record.data["campaignId"] for record in output.records] == ["camp_1"], output.errors
