"""The declarative manifest: current CDK syntax (no deprecated fields), date pickers, the campaigns URL."""

from __future__ import annotations

import json
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


def test_date_fields_render_as_date_pickers() -> None:
    properties = yaml.safe_load(MANIFEST.read_text())["spec"]["connection_specification"]["properties"]
    for field in ("start_date", "end_date"):
        assert properties[field]["format"] == "date"
        assert properties[field]["pattern_descriptor"] == "YYYY-MM-DD"
        assert properties[field]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


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
