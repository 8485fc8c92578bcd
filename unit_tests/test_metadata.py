"""metadata.yaml agrees with the code, the Dockerfile and pyproject.toml, and carries what Airbyte reads."""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from source_soundlink.config import DEFAULT_BASE_URL
from source_soundlink.engagement.state_emitter import HEARTBEAT_S
from source_soundlink.protocol import STREAMS
from source_soundlink.retry_policy import DEFAULT_POLICY

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
    assert (data["connectorType"], data["connectorSubtype"]) == ("source", "api")
    # Each test suite metadata declares is there to run.
    where = {"unitTests": "unit_tests", "integrationTests": "integration_tests"}
    where["acceptanceTests"] = "acceptance-test-config.yml"
    suites = {entry["suite"] for entry in data["connectorTestSuitesOptions"]}
    assert suites == set(where) and all((ROOT / where[suite]).exists() for suite in suites)


def test_given_what_metadata_says_of_the_code_then_the_code_agrees(data: dict) -> None:
    """Each value metadata.yaml states about the connector, checked against where the code says it."""
    poetry = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]
    manifest = yaml.safe_load((ROOT / "source_soundlink" / "manifest.yaml").read_text())
    assert data["dockerRepository"] == f"airbyte/{poetry['name']}"
    assert data["remoteRegistries"]["pypi"] == {"enabled": True, "packageName": f"airbyte-{poetry['name']}"}
    assert data["documentationUrl"] == manifest["spec"]["documentation_url"]
    assert data["allowedHosts"]["hosts"] == [urlsplit(DEFAULT_BASE_URL).hostname]
    # The platform must not take a waiting sync for a stuck one: the export heartbeats every HEARTBEAT_S,
    # the CDK's campaigns stream sleeps silently through a Retry-After of up to max_silent_retry_after_s.
    assert HEARTBEAT_S < DEFAULT_POLICY.max_silent_retry_after_s < data["maxSecondsBetweenMessages"]


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
    assert set(data["suggestedStreams"]["streams"]) == set(STREAMS)


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
