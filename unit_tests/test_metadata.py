"""metadata.yaml, Dockerfile and pyproject.toml agree, and metadata.yaml carries what Airbyte reads."""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def metadata() -> dict:
    document = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    assert set(document) == {"data", "metadataSpecVersion"}, set(document)
    return document


@pytest.fixture(scope="module")
def data(metadata: dict) -> dict:
    return metadata["data"]


@pytest.fixture(scope="module")
def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["version"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _dockerfile_instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_metadata_spec_version(metadata: dict) -> None:
    assert metadata["metadataSpecVersion"] == "1.0"


def test_required_keys_and_values(data: dict) -> None:
    # The keys ConnectorMetadataDefinitionV0 requires, plus what a current Airbyte source carries.
    required = {
        "name",
        "definitionId",
        "connectorType",
        "connectorSubtype",
        "dockerRepository",
        "dockerImageTag",
        "documentationUrl",
        "githubIssueLabel",
        "icon",
        "license",
        "releaseStage",
        "supportLevel",
        "tags",
        "connectorBuildOptions",
        "allowedHosts",
        "maxSecondsBetweenMessages",
        "registryOverrides",
        "remoteRegistries",
        "releases",
        "connectorTestSuitesOptions",
    }
    assert required <= set(data), sorted(required - set(data))
    assert data["name"] == "Soundlink"
    assert data["connectorType"] == "source"
    assert data["connectorSubtype"] == "api"
    assert data["dockerRepository"] == "airbyte/source-soundlink"
    assert data["githubIssueLabel"] == "source-soundlink"
    assert data["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/soundlink"
    assert data["license"] == "MIT"
    assert data["releaseStage"] == "alpha"
    assert data["supportLevel"] == "community"
    # language:python: the connector's code; cdk:low-code: what Airbyte's QA derives from manifest.yaml.
    assert data["tags"] == ["language:python", "cdk:low-code"]
    assert data["allowedHosts"]["hosts"] == ["api.getsoundlink.com"]
    assert data["maxSecondsBetweenMessages"] == 1200  # heartbeats every 60 s; the CDK's 600 s Retry-After cap
    assert data["registryOverrides"]["cloud"]["enabled"] is True
    assert data["registryOverrides"]["oss"]["enabled"] is True
    assert data["remoteRegistries"]["pypi"] == {"enabled": True, "packageName": "airbyte-source-soundlink"}
    assert "rolloutConfiguration" in data["releases"]
    suites = {entry["suite"] for entry in data["connectorTestSuitesOptions"]}
    assert suites == {"unitTests", "integrationTests", "acceptanceTests"}


def test_definition_id_is_a_fixed_uuid4(data: dict) -> None:
    assert uuid.UUID(data["definitionId"]).version == 4


def test_icon_exists_and_is_svg(data: dict) -> None:
    icon = ROOT / data["icon"]
    assert icon.is_file()
    text = icon.read_text()
    assert text.lstrip().startswith("<svg") and text.rstrip().endswith("</svg>")
    assert len(text.encode()) < 4096, "keep the icon small"


def test_docs_page_exists() -> None:
    assert (ROOT / "docs" / "integrations" / "sources" / "soundlink.md").is_file()


def test_suggested_streams_are_the_connector_streams(data: dict) -> None:
    assert set(data["suggestedStreams"]["streams"]) == {"campaign_engagement_daily", "campaigns"}


def test_docker_image_tag_equals_pyproject_version(data: dict, version: str) -> None:
    assert str(data["dockerImageTag"]) == version


def test_base_image_is_pinned_by_digest(data: dict) -> None:
    base_image = data["connectorBuildOptions"]["baseImage"]
    assert re.fullmatch(
        r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base_image
    ), base_image


def test_dockerfile_base_image_default_equals_metadata(data: dict, dockerfile: str) -> None:
    instructions = _dockerfile_instructions(dockerfile)
    args = [line for line in instructions if line.startswith("ARG BASE_IMAGE=")]
    assert len(args) == 1, args
    assert args[0].removeprefix("ARG BASE_IMAGE=") == data["connectorBuildOptions"]["baseImage"]
    assert "FROM ${BASE_IMAGE}" in instructions


def test_dockerfile_labels_match_metadata(data: dict, dockerfile: str, version: str) -> None:
    labels: dict[str, str] = {}
    for line in _dockerfile_instructions(dockerfile):
        if line.startswith("LABEL "):
            for key, value in re.findall(r'([\w.\-]+)=("[^"]*"|\S+)', line.removeprefix("LABEL ")):
                labels[key] = value.strip('"')
    assert labels["io.airbyte.version"] == version == str(data["dockerImageTag"])
    assert labels["io.airbyte.name"] == data["dockerRepository"]


def test_pyproject_license_equals_metadata(data: dict) -> None:
    poetry = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]
    assert poetry["name"] == data["githubIssueLabel"] == "source-soundlink"
    assert poetry["license"] == data["license"]


def test_dockerfile_entrypoint_is_airbytes(dockerfile: str) -> None:
    """As Airbyte's template for Python connectors: /entrypoint.sh runs the console script, as `airbyte`."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["scripts"]
    assert scripts["source-soundlink"] == "source_soundlink.run:run"
    instructions = _dockerfile_instructions(dockerfile)
    assert 'ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"' in instructions
    assert 'ENTRYPOINT ["/entrypoint.sh"]' in instructions
    entrypoint_script = [line for line in instructions if "> /entrypoint.sh" in line]
    assert len(entrypoint_script) == 1 and """'source-soundlink "$@"'""" in entrypoint_script[0]
    assert "WORKDIR /airbyte/integration_code" in instructions
    assert instructions[-1].startswith("ENTRYPOINT") and "USER airbyte" in instructions


def test_dockerfile_installs_from_the_lock_file(dockerfile: str) -> None:
    """Dependencies come from poetry.lock alone (hash-checked, no resolution); the CA bundle is a secret."""
    instructions = _dockerfile_instructions(dockerfile)
    assert any("lock_requirements.py poetry.lock --group main" in line for line in instructions)
    installs = [line for line in instructions if "pip install" in line]
    assert len(installs) == 2, installs
    assert "--require-hashes --no-deps -r /tmp/requirements.txt" in installs[0]
    assert "--no-deps ." in installs[1]
    assert not any(line.startswith(("COPY", "ADD")) and "ca-certificates" in line for line in instructions)
