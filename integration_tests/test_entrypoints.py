"""The entrypoints as Airbyte runs them: the `source-soundlink` console script in a subprocess, against
the sandbox over real HTTP.

Airbyte Cloud's network guard on check, discover and read (a refused base_url is a config error naming
the reason, and the sandbox sees no request); outside Cloud the same commands work on loopback. Input
mistakes (a config typo, a key with a space, state of another stream, files that are missing or not JSON)
give warnings or one clean error: stdout is only JSON messages, nothing prints a Python traceback, and
the key is never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import CAMPAIGNS, RUN_TIMEOUT_S, Run, assert_secret_absent, catalog, parse_messages
from soundlink_sandbox import Sandbox

SCRIPT = Path(sys.executable).with_name("source-soundlink")
GUARD_ADVICE = "base_url is for testing and private deployments"


def run_script(workdir: Path, args: list[str], secret: str, **env: str) -> Run:
    """The console script with `env` over a clean DEPLOYMENT_MODE/LOG_LEVEL; asserts what every run must
    hold: only JSON on stdout, no traceback anywhere, the key never printed (nor its stripped form)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DEPLOYMENT_MODE", "LOG_LEVEL")}
    command = [str(SCRIPT), *args]
    proc = subprocess.run(
        command, capture_output=True, timeout=RUN_TIMEOUT_S, cwd=workdir, env={**environment, **env}
    )
    run = Run(command, proc.returncode, proc.stdout, proc.stderr, 0.0)
    assert_secret_absent(secret.strip(), proc.stdout, proc.stderr)
    run.messages = parse_messages(proc.stdout)
    assert b"Traceback" not in proc.stdout + proc.stderr, run.describe()
    return run


def write(workdir: Path, name: str, content: Any) -> str:
    path = workdir / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def command_args(verb: str, workdir: Path, config: Any, state: Any = None) -> list[str]:
    args = [verb, "--config", write(workdir, "config.json", config)]
    if verb == "read":
        args += ["--catalog", write(workdir, "catalog.json", catalog())]
    if state is not None:
        args += ["--state", write(workdir, "state.json", state)]
    return args


def assert_config_error(run: Run, verb: str, *phrases: str) -> str:
    """check answers FAILED (exit 0, as the CDK's check does); discover and read fail with one TRACE."""
    if verb == "check":
        assert run.returncode == 0, run.describe()
        assert run.connection_status["status"] == "FAILED", run.describe()
        assert not run.errors, run.describe()
        message = run.connection_status["message"]
    else:
        message = run.assert_failed("config_error")["message"]
    for phrase in phrases:
        assert phrase in message, run.describe()
    return message


def sandbox_config(sandbox: Sandbox, **overrides: Any) -> dict[str, Any]:
    return {"api_key": sandbox.api_key, "base_url": sandbox.base_url, **overrides}


@pytest.mark.parametrize("verb", ["check", "discover", "read"])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("{sandbox}", "uses http, not https"),
        ("https://127.0.0.1:{port}", "base_url host 127.0.0.1 is a loopback address"),
    ],
)
def test_given_cloud_mode_and_a_loopback_base_url_when_run_then_a_config_error_names_why_and_no_request(
    verb: str, url: str, reason: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    base_url = url.format(sandbox=sandbox.base_url, port=sandbox.base_url.rsplit(":", 1)[1])
    config = sandbox_config(sandbox, base_url=base_url)

    run = run_script(tmp_path, command_args(verb, tmp_path, config), sandbox.api_key, DEPLOYMENT_MODE="Cloud")

    assert_config_error(run, verb, reason, GUARD_ADVICE)
    assert sandbox.requests() == []


def test_given_no_cloud_mode_and_a_typo_when_check_discover_and_read_then_each_warns_and_works(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    campaign = sandbox.campaigns()[0]["campaignId"]
    config = sandbox_config(sandbox, campaign_ids=[campaign], start_dat="2026-01-01")
    typo = "start_dat is not a setting of this connector; did you mean start_date?"
    users = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {}}}]

    check = run_script(tmp_path, command_args("check", tmp_path, config), sandbox.api_key)
    discover = run_script(tmp_path, command_args("discover", tmp_path, config), sandbox.api_key)
    read = run_script(tmp_path, command_args("read", tmp_path, config, users), sandbox.api_key)

    assert check.connection_status["status"] == "SUCCEEDED", check.describe()
    assert {s["name"] for s in discover.of_type("CATALOG")[0]["catalog"]["streams"]} >= {CAMPAIGNS}
    read.assert_ok()
    assert read.records and {row["campaign_id"] for row in read.records} == {campaign}
    for run in (check, discover, read):
        assert typo in [log["message"] for log in run.logs if log["level"] == "WARN"], run.describe()
    assert any(
        "The state holds stream users, which this source does not have" in log["message"]
        for log in read.logs
        if log["level"] == "WARN"
    ), read.describe()
    assert sandbox.requests(), "outside Cloud the loopback sandbox is reached"


@pytest.mark.parametrize("verb", ["check", "read"])
def test_given_a_key_with_a_leading_space_when_run_then_the_message_says_so_and_no_request(
    verb: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = sandbox_config(sandbox, api_key=f" {sandbox.api_key}\n")

    run = run_script(tmp_path, command_args(verb, tmp_path, config), sandbox.api_key)

    message = assert_config_error(run, verb, "api_key has spaces or line breaks before or after it")
    assert "sk_" not in message.replace("sk_ key", "")
    assert sandbox.requests() == []


@pytest.mark.parametrize(
    ("verb", "file", "content", "phrase"),
    [
        ("check", "config", None, "Cannot read the config file"),
        ("check", "config", "{not json", "is not valid JSON"),
        ("check", "config", "[1, 2]", "does not hold a JSON object"),
        ("discover", "config", None, "Cannot read the config file"),
        ("discover", "config", "{not json", "is not valid JSON"),
        ("read", "config", None, "Cannot read the config file"),
        ("read", "config", "{not json", "is not valid JSON"),
        ("read", "catalog", None, "Cannot read the catalog file"),
        ("read", "catalog", "streams:", "is not valid JSON"),
        ("read", "state", None, "Cannot read the state file"),
        ("read", "state", "{[", "is not valid JSON"),
    ],
)
def test_given_an_input_file_missing_or_not_json_when_run_then_one_clean_error_names_the_file(
    verb: str, file: str, content: str | None, phrase: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    args = command_args(verb, tmp_path, sandbox_config(sandbox), state={} if file == "state" else None)
    path = tmp_path / f"{file}.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)

    run = run_script(tmp_path, args, sandbox.api_key)

    assert_config_error(run, verb, phrase, str(path))
    assert sandbox.requests() == []
