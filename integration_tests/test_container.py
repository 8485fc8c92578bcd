"""The connector image, run as the README documents `docker run`, against the sandbox on the host.

The image `airbyte/source-soundlink:dev` is (re)built once per session by `scripts/build_image.sh`, which
installs and configures podman on a Debian machine if needed (no Docker engine here) and is quick when
nothing changed. Every command then runs as

    podman run --rm --network host -v <dir>:/secrets airbyte/source-soundlink:dev <verb> [--config ...]

with the sandbox API served on the host's loopback (`soundlink-sandbox --port 0`). If podman cannot be
set up, the tests fail with the build script's output: they never skip.

Knobs: SOUNDLINK_IMAGE (tag, default airbyte/source-soundlink:dev); SOUNDLINK_SKIP_IMAGE_BUILD=1 uses the
image as it is (it must exist) instead of running the build script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import (
    CAMPAIGNS,
    ENGAGEMENT,
    IMAGE,
    PRIMARY_KEY,
    campaign_state,
    ensure_image,
    spawn_sandbox,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_KEY = "sk_sandbox_0123456789abcdef"
RUN_TIMEOUT_S = 300

pytestmark = pytest.mark.image_tests


# ------------------------------------------------------------------------------------------ helpers
# (test_standard_suite.py has its own copy of the two session helpers: no shared module needed.)


@dataclass
class HostSandbox:
    base_url: str
    process: subprocess.Popen[str]

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.base_url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def truth_rows(self) -> int:
        response = self.admin("GET", "/_sandbox/truth")
        return int(response.headers["X-Row-Count"])

    def export_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.admin("GET", "/_sandbox/requests").json() if r["path"].endswith("/export")]


def start_host_sandbox() -> HostSandbox:
    """The sandbox on the host: the container reaches it over the host network."""
    process, base_url = spawn_sandbox()
    return HostSandbox(base_url, process)


def stop_host_sandbox(sandbox: HostSandbox) -> None:
    stop_process(sandbox.process)


@dataclass
class Run:
    returncode: int
    messages: list[dict[str, Any]]
    stdout: str
    stderr: str

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if m["record"]["stream"] == stream]

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\nstdout tail:\n{self.stdout[-3000:]}\n"
            f"stderr tail:\n{self.stderr[-3000:]}"
        )


def podman_run(secrets: Path | None, *args: str) -> Run:
    """`podman run --rm --network host [-v secrets:/secrets] IMAGE args...`, stdout parsed as messages."""
    command = ["podman", "run", "--rm", "--network", "host"]
    if secrets is not None:
        command += ["-v", f"{secrets}:/secrets"]
    result = subprocess.run(
        [*command, IMAGE, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    messages = []
    for line in result.stdout.splitlines():
        message = json.loads(line)  # every stdout line must be an Airbyte message
        assert isinstance(message, dict) and "type" in message, line[:200]
        messages.append(message)
    return Run(result.returncode, messages, result.stdout, result.stderr)


def secrets_dir(tmp_path: Path, config: dict[str, Any], **files: Any) -> Path:
    """A folder the container's `airbyte` user (uid 1000) can read, holding config.json and more.

    pytest's tmp_path sits under a 0700 root-owned folder, so the files go to a world-traversable
    folder beside it (removed after the test).
    """
    folder = Path(tempfile.mkdtemp(prefix="soundlink-secrets-"))
    (tmp_path / "secrets").symlink_to(folder)  # findable from the test's own tmp_path when debugging
    for name, content in {"config.json": config, **files}.items():
        (folder / name).write_text(json.dumps(content))
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    _SECRET_DIRS.append(folder)
    return folder


_SECRET_DIRS: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_secret_dirs() -> Iterator[None]:
    yield
    while _SECRET_DIRS:
        shutil.rmtree(_SECRET_DIRS.pop(), ignore_errors=True)


def configured_catalog(engagement_mode: str = "incremental") -> dict[str, Any]:
    def stream(name: str, mode: str, destination: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "stream": {
                "name": name,
                "json_schema": {},
                "supported_sync_modes": ["full_refresh", "incremental"],
            },
            "sync_mode": mode,
            "destination_sync_mode": destination,
        }
        if name == ENGAGEMENT:
            entry["cursor_field"] = ["report_date"]
            entry["primary_key"] = [[field] for field in PRIMARY_KEY]
        return entry

    return {
        "streams": [
            stream(ENGAGEMENT, engagement_mode, "append_dedup"),
            stream(CAMPAIGNS, "full_refresh", "overwrite"),
        ]
    }


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def image() -> str:
    return ensure_image()


@pytest.fixture(scope="module")
def host_sandbox() -> Iterator[HostSandbox]:
    sandbox = start_host_sandbox()
    try:
        yield sandbox
    finally:
        stop_host_sandbox(sandbox)


@pytest.fixture
def config(host_sandbox: HostSandbox) -> dict[str, Any]:
    return {"api_key": SANDBOX_KEY, "base_url": host_sandbox.base_url}


# ------------------------------------------------------------------------------------------ tests


def test_image_metadata(image: str) -> None:
    inspect = subprocess.run(
        ["podman", "image", "inspect", image], capture_output=True, text=True, check=True
    )
    config = json.loads(inspect.stdout)[0]["Config"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["version"]
    assert config["Labels"]["io.airbyte.version"] == version
    assert config["Labels"]["io.airbyte.name"] == "airbyte/source-soundlink"
    # As Airbyte's pipeline builds it from metadata.yaml: /entrypoint.sh runs the console script.
    assert config["Entrypoint"] == ["/entrypoint.sh"]
    assert "AIRBYTE_ENTRYPOINT=/entrypoint.sh" in config["Env"]
    assert config["User"] == "airbyte"
    # The CA bundle given to the build is a secret mount, not a file of the image.
    probe = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            image,
            "-c",
            "id -u; ls /run/secrets 2>/dev/null | wc -l",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["1000", "0"], probe.stdout
    # Nor did it end up in the image's trust store: no certificate this host added locally is there.
    bundle = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "cat", image, "/etc/ssl/certs/ca-certificates.crt"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for local_ca in Path("/usr/local/share/ca-certificates").glob("**/*.crt"):
        body = [line for line in local_ca.read_text().splitlines() if line and not line.startswith("-----")]
        assert body and body[len(body) // 2] not in bundle, f"{local_ca} was baked into the image"


def test_spec(image: str) -> None:
    run = podman_run(None, "spec")
    assert run.returncode == 0, run.describe()
    specs = run.of_type("SPEC")
    assert len(specs) == 1, run.describe()
    spec = specs[0]["spec"]
    assert spec["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/soundlink"
    connection = spec["connectionSpecification"]
    assert connection["required"] == ["api_key"]
    assert connection["properties"]["api_key"]["airbyte_secret"] is True
    expected = {
        "api_key",
        "campaign_ids",
        "start_date",
        "end_date",
        "engagement_context",
        "lookback_window_days",
        "window_size_days",
        "auth_header",
        "base_url",
        "num_workers",
        "requests_per_minute",
        "requests_per_hour",
    }
    assert expected <= set(connection["properties"]), sorted(expected - set(connection["properties"]))


def test_check_succeeds(image: str, config: dict[str, Any], tmp_path: Path) -> None:
    run = podman_run(secrets_dir(tmp_path, config), "check", "--config", "/secrets/config.json")
    assert run.returncode == 0, run.describe()
    statuses = run.of_type("CONNECTION_STATUS")
    assert [s["connectionStatus"]["status"] for s in statuses] == ["SUCCEEDED"], run.describe()


def test_check_fails_for_a_revoked_key(image: str, config: dict[str, Any], tmp_path: Path) -> None:
    bad_key = "sk_sandbox_revoked"
    run = podman_run(
        secrets_dir(tmp_path, {**config, "api_key": bad_key}), "check", "--config", "/secrets/config.json"
    )
    statuses = run.of_type("CONNECTION_STATUS")
    assert [s["connectionStatus"]["status"] for s in statuses] == ["FAILED"], run.describe()
    message = statuses[0]["connectionStatus"]["message"]
    assert "api_key_revoked" in message and "requestId" in message, message
    assert bad_key not in run.stdout and bad_key not in run.stderr


def test_discover(image: str, config: dict[str, Any], tmp_path: Path) -> None:
    run = podman_run(secrets_dir(tmp_path, config), "discover", "--config", "/secrets/config.json")
    assert run.returncode == 0, run.describe()
    catalogs = run.of_type("CATALOG")
    assert len(catalogs) == 1, run.describe()
    streams = {s["name"]: s for s in catalogs[0]["catalog"]["streams"]}
    assert set(streams) == {ENGAGEMENT, CAMPAIGNS}
    engagement = streams[ENGAGEMENT]
    assert set(engagement["supported_sync_modes"]) == {"full_refresh", "incremental"}
    assert engagement["default_cursor_field"] == ["report_date"]
    assert engagement["source_defined_primary_key"] == [[field] for field in PRIMARY_KEY]
    assert streams[CAMPAIGNS]["source_defined_primary_key"] == [["campaignId"]]


def test_read_then_incremental_read_with_state(
    image: str, config: dict[str, Any], host_sandbox: HostSandbox, tmp_path: Path
) -> None:
    host_sandbox.admin("DELETE", "/_sandbox/requests")
    secrets = secrets_dir(tmp_path, config, **{"catalog.json": configured_catalog()})
    first = podman_run(
        secrets, "read", "--config", "/secrets/config.json", "--catalog", "/secrets/catalog.json"
    )
    assert first.returncode == 0, first.describe()
    assert not [t for t in first.of_type("TRACE") if t["trace"]["type"] == "ERROR"], first.describe()

    rows = first.records(ENGAGEMENT)
    assert len(rows) == host_sandbox.truth_rows() > 0  # every row the API holds, once
    keys = {tuple(row[field] for field in PRIMARY_KEY) for row in rows}
    assert len(keys) == len(rows)
    assert {row["schema_version"] for row in rows} == {"1.0"}
    assert len(first.records(CAMPAIGNS)) >= 1

    states = first.of_type("STATE")
    assert states, first.describe()

    def last_index(kind: str) -> int:
        return max(
            i
            for i, m in enumerate(first.messages)
            if (kind == "RECORD" and m.get("type") == "RECORD" and m["record"]["stream"] == ENGAGEMENT)
            or (
                kind == "STATE"
                and m.get("type") == "STATE"
                and m["state"]["stream"]["stream_descriptor"]["name"] == ENGAGEMENT
            )
        )

    assert last_index("STATE") > last_index("RECORD"), "a final STATE must follow the last record"
    first_requests = len(host_sandbox.export_requests())

    # Second sync from the final state (`--state` as documented): only the lookback is re-read.
    host_sandbox.admin("DELETE", "/_sandbox/requests")
    (secrets / "state.json").write_text(json.dumps([s["state"] for s in states]))
    (secrets / "state.json").chmod(0o644)
    second = podman_run(
        secrets,
        "read",
        "--config",
        "/secrets/config.json",
        "--catalog",
        "/secrets/catalog.json",
        "--state",
        "/secrets/state.json",
    )
    assert second.returncode == 0, second.describe()
    again = second.records(ENGAGEMENT)
    assert 0 < len(again) < len(rows)
    # The newest checkpoint (the last STATE of the saved output) decides: settled campaigns are not
    # asked again, the others only from `through` minus the 7-day lookback (never before `from`).
    final = [s for s in states if s["state"]["stream"]["stream_descriptor"]["name"] == ENGAGEMENT][-1]
    final = final["state"]["stream"]["stream_state"]["campaigns"]
    second_requests = host_sandbox.export_requests()
    assert len(second_requests) < first_requests
    for request in second_requests:
        campaign = campaign_state({"campaigns": final}, request["path"].split("/")[3])
        assert not campaign.get("settled"), request
        lookback_start = date.fromisoformat(campaign["through"]) - timedelta(days=7)
        expected_start = max(lookback_start, date.fromisoformat(campaign["from"]))
        assert request["query"]["startDate"] == expected_start.isoformat(), request
    assert second.of_type("STATE"), second.describe()
