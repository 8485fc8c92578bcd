"""airbyte-cdk's standard source tests (FAST), against the sandbox, in-process and in the image.

`SourceTestSuiteBase` reads its scenarios from `acceptance-test-config.yml`: the configs
`integration_tests/standard_*.json` there are templates whose `base_url` is replaced, per test session,
by the URL of a `soundlink-sandbox` started on a free port (see `get_scenarios` below), so two sessions
never fight over a port.

- In-process tests: spec (+ spec lint), config matches spec, check (a good key succeeds, a revoked one
  fails), discover (catalog checks), basic read (records of every stream, validated against the schemas),
  full-refresh read of a second config, read with a bad catalog.
- Image tests (marker `image_tests`): the same commands through `docker run` in the image built by
  `scripts/build_image.sh` with podman. `scripts/image/docker` (first on PATH) hands `docker` to
  podman with host networking. `--connector-image=TAG` (needs
  `-p airbyte_cdk.test.standard_tests.pytest_hooks`) or SOUNDLINK_IMAGE picks another image; by
  default `airbyte/source-soundlink:dev` is (re)built once per session. The spec backward-compatibility
  test compares with the spec published in Airbyte's public registry: it skips (with the CDK's warning)
  because the registry cannot be reached from here and the connector is not published.

Deselect the image tests with `-m "not image_tests"`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER_SHIM_DIR = ROOT / "scripts" / "image"

# The CDK decides at import time whether its image tests run (`shutil.which("docker")`), and runs
# `docker ...` as a subprocess: the podman shim must come first on PATH before the suite is imported.
if os.environ.get("PATH", "").split(os.pathsep)[0] != str(DOCKER_SHIM_DIR):
    os.environ["PATH"] = f"{DOCKER_SHIM_DIR}{os.pathsep}{os.environ.get('PATH', '')}"

from airbyte_cdk.test.models import ConnectorTestScenario  # noqa: E402
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase  # noqa: E402
from helpers import ensure_image, spawn_sandbox, stop_process  # noqa: E402

from source_soundlink.source import SourceSoundlink  # noqa: E402

# Fixtures (scenario parametrization, image/stream options) of the standard suite. Registered from
# this module, so the CLI options need `-p airbyte_cdk.test.standard_tests.pytest_hooks` to be given.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

# Per-session folder of the configs with the live sandbox URL (known here, written by the fixture).
RUNTIME_DIR = Path(tempfile.gettempdir()) / f"soundlink-standard-tests-{os.getpid()}"


def _runtime_config_path(template: Path) -> Path:
    return RUNTIME_DIR / template.name


def _templates() -> list[Path]:
    return sorted((ROOT / "integration_tests").glob("standard_*.json"))


# ------------------------------------------------------------------------------ sandbox and image


@pytest.fixture(scope="session", autouse=True)
def standard_sandbox() -> Iterator[str]:
    """`soundlink-sandbox --port 0` on the host; the scenario configs get its URL as `base_url`."""
    process, base_url = spawn_sandbox()
    try:
        RUNTIME_DIR.mkdir(mode=0o755, exist_ok=True)
        for template in _templates():
            config = json.loads(template.read_text())
            config["base_url"] = base_url
            _runtime_config_path(template).write_text(json.dumps(config))
        yield base_url
    finally:
        stop_process(process)
        shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


# ------------------------------------------------------------------------------ suite option fixtures
# These override the plugin's fixtures of the same names (module fixtures win over plugin ones).


@pytest.fixture
def connector_image_override(request: pytest.FixtureRequest) -> str:
    """`--connector-image` if given, else the podman-built image (never the CDK's GitHub-template build)."""
    given = request.config.getoption("--connector-image", default=None)
    return given or ensure_image()


@pytest.fixture
def read_from_streams(request: pytest.FixtureRequest) -> Literal["all", "none", "default"] | list[str]:
    """The image read test reads the suggested streams (both) unless `--read-from-streams` says otherwise.

    The plugin's own fixture turns a missing option into "none" (no read at all) when the plugin is
    registered from a test module, as here, rather than with `-p`.
    """
    given = request.config.getoption("--read-from-streams", default=None)
    if not given or given.lower() in ("true", "suggested", "default"):
        return "default"
    if given.lower() in ("false", "none"):
        return "none"
    if given.lower() == "all":
        return "all"
    return given.split(",")


@pytest.fixture
def read_scenarios(request: pytest.FixtureRequest) -> list[str] | Literal["all", "default"]:
    """Read every scenario by default: the CDK's default only reads configs named `config.json`."""
    given = request.config.getoption("--read-scenarios", default=None)
    if not given or given.lower() in ("all", "default"):
        return "all"
    if given.lower() == "none":
        return []
    return [name.strip().lower().removesuffix(".json") for name in given.split(",")]


# ------------------------------------------------------------------------------ the suite


class TestSoundlinkStandard(SourceTestSuiteBase):
    connector = SourceSoundlink

    @classmethod
    def get_scenarios(cls) -> list[ConnectorTestScenario]:
        """The acceptance-test-config.yml scenarios, each reading its config from the session's copy."""
        scenarios = []
        for scenario in super().get_scenarios():
            if scenario.config_path is not None:
                template = scenario.config_path
                if not template.is_absolute():
                    template = cls.get_connector_root_dir() / template
                assert template.is_file(), f"{template} is listed in acceptance-test-config.yml but missing"
                scenario = scenario.model_copy(update={"config_path": _runtime_config_path(template)})
            scenarios.append(scenario)
        assert scenarios, "acceptance-test-config.yml lists no scenario"
        return scenarios


def test_docker_cli_is_the_podman_shim() -> None:
    """The image tests above ran `docker` = scripts/image/docker (podman), not a daemon-less Docker CLI."""
    assert shutil.which("docker") == str(DOCKER_SHIM_DIR / "docker")
    assert os.access(DOCKER_SHIM_DIR / "docker", os.X_OK)
