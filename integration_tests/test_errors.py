"""Every documented Soundlink error, through `source-soundlink read` and `source-soundlink check`.

A failing read exits non-zero with one TRACE ERROR whose failure_type is right and whose message says
what to fix and quotes the requestId the sandbox returned; `check` answers FAILED with the same facts.
The API key never appears in stdout or stderr (every run asserts it, see helpers.Connector.run).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from helpers import (
    Connector,
    Run,
    assert_exact,
    campaign_by_status,
    export_requests,
    multi_window_campaign,
    utc_today,
)
from soundlink_sandbox import Sandbox

REQUEST_ID_RE = re.compile(r"requestId ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
MISSING_ID = "camp_doesNotExist1"
BAD_KEY = "sk_live_9f8e7d6c5b4a39281706f5e4"


@dataclass(frozen=True)
class Case:
    id: str
    overrides: dict[str, Any]
    code: str
    status: int
    phrases: tuple[str, ...]  # what the message must say (what to fix, where)
    failure_type: str = "config_error"
    exports: bool = False  # whether the read gets as far as an export request
    check_phrases: tuple[str, ...] = field(default=())


# Not reachable through the command, so not here: 401 mixed_credentials (the connector sends exactly one
# credential header, whichever auth_header says; test_sync asserts every request the sandbox saw had one).
CASES = [
    Case("invalid_key", {"api_key": BAD_KEY}, "invalid_api_key", 401, ("paste a valid sk_ key",)),
    Case("revoked_key", {"api_key": "sk_sandbox_revoked"}, "api_key_revoked", 401, ("create a new key",)),
    Case("expired_key", {"api_key": "sk_sandbox_expired"}, "api_key_expired", 401, ("create a new key",)),
    # invalid_token (a Bearer value that is not `sk_<printable>`) cannot be sent: config validation refuses
    # such a key first (test_faults INVALID_CONFIGS); its mapping is pinned in unit_tests/test_requests.py.
    Case(
        "no_metrics_scope",
        {"api_key": "sk_sandbox_campaignsonly"},
        "insufficient_scope",
        403,
        ("metrics:read", "campaign ", "window "),
        exports=True,
    ),
    Case(
        "no_campaigns_scope",
        {"api_key": "sk_sandbox_metricsonly"},
        "insufficient_scope",
        403,
        ("campaigns:read", "campaign_ids and start_date"),
    ),
    Case(
        "no_campaigns_scope_ids_without_start_date",
        {"api_key": "sk_sandbox_metricsonly", "campaign_ids": ["@multi"]},
        "insufficient_scope",
        403,
        ("campaigns:read", "campaign_ids and start_date"),
    ),
    Case(
        "no_scope_at_all",
        {"api_key": "sk_sandbox_noscope"},
        "insufficient_scope",
        403,
        ("campaigns:read",),
    ),
    Case(
        "campaign_not_found",
        {"campaign_ids": ["@multi", MISSING_ID]},
        "campaign_not_found",
        404,
        (f"campaign {MISSING_ID}", "remove it from campaign_ids"),
    ),
    Case(
        "campaign_not_found_without_campaigns_scope",
        {"api_key": "sk_sandbox_metricsonly", "campaign_ids": [MISSING_ID], "start_date": "@today-20"},
        "campaign_not_found",
        404,
        (f"campaign {MISSING_ID}, window ", "remove it from campaign_ids"),
        exports=True,
    ),
    Case("not_found_route", {"base_url": "@base/not-the-api"}, "not_found", 404, ("check base_url",)),
]


def resolve(sandbox: Sandbox, connector: Connector, overrides: dict[str, Any]) -> dict[str, Any]:
    """Fill the placeholders a module-level table cannot know (ids, ports, today)."""
    today = sandbox.app.today()
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "campaign_ids":
            value = [multi_window_campaign(sandbox) if v == "@multi" else v for v in value]
        elif value == "@today-20":
            value = (today - timedelta(days=20)).isoformat()
        elif isinstance(value, str) and value.startswith("@base"):
            value = sandbox.base_url + value[len("@base") :]
        out[key] = value
    return connector.config(**out)


def assert_quotes_request_id(message: str, requests: list[dict[str, Any]], status: int, code: str) -> None:
    """The message quotes the requestId of the error answer the sandbox gave, and only real ones."""
    answered = {e["requestId"] for e in requests if e["status"] == status}
    assert answered, f"the sandbox never answered {status}: {requests}"
    quoted = REQUEST_ID_RE.findall(message)
    assert quoted, f"no requestId quoted in {message!r}"
    assert set(quoted) <= answered, f"quoted {quoted}, the sandbox answered {status} with {answered}"
    assert f"{status} {code}" in message, message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_read_fails_with_an_actionable_message(sandbox: Sandbox, connector: Connector, case: Case) -> None:
    config = resolve(sandbox, connector, case.overrides)
    run = connector.read(config)

    error = run.assert_failed(case.failure_type)
    message = error["message"]
    assert_quotes_request_id(message, sandbox.requests(), case.status, case.code)
    for phrase in case.phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert not run.records
    assert not (run.state or {}).get("campaigns"), "no window was read, so none may be checkpointed"
    assert run.stream_statuses[-1] == "INCOMPLETE"
    assert bool(export_requests(sandbox)) == case.exports, sandbox.requests()
    if case.exports:
        # The failed window is named exactly as it was requested.
        failed = [r for r in export_requests(sandbox) if r.status == case.status]
        assert any(f"campaign {r.campaign_id}, window {r.start}..{r.end}" in message for r in failed)


@pytest.fixture(scope="module")
def check_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Run, list[dict[str, Any]]]]:
    """`check --debug` for every case, each against its own sandbox, two at a time.

    `check` loads airbyte-cdk (about 1.5 s of CPU each), so the cases run concurrently to keep the suite
    fast; every case still has its own sandbox, so its request log and requestIds are its own.
    """

    def one(case: Case) -> tuple[Run, list[dict[str, Any]]]:
        with Sandbox(today=utc_today(), rate_limit_per_minute=0, rate_limit_per_hour=0, cache_mb=16) as sb:
            connector = Connector(sb, tmp_path_factory.mktemp(case.id))
            run = connector.check(resolve(sb, connector, case.overrides), debug=True)
            return run, sb.requests()

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([c.id for c in CASES], pool.map(one, CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_check_fails_with_an_actionable_message(
    check_runs: dict[str, tuple[Run, list[dict[str, Any]]]], case: Case
) -> None:
    run, requests = check_runs[case.id]

    assert run.returncode == 0, run.describe()
    status = run.connection_status
    assert status["status"] == "FAILED", run.describe()
    assert_quotes_request_id(status["message"], requests, case.status, case.code)
    for phrase in case.phrases:
        assert phrase in status["message"], f"{phrase!r} not in {status['message']!r}"


@pytest.mark.parametrize("case", CASES[:5], ids=lambda c: c.id)
def test_read_with_debug_does_not_leak_the_key(sandbox: Sandbox, connector: Connector, case: Case) -> None:
    """--debug adds logging; the key must still appear nowhere (Connector.run asserts it on every run)."""
    run = connector.read(resolve(sandbox, connector, case.overrides), debug=True)

    assert case.code in run.assert_failed(case.failure_type)["message"]


def check_succeeds(run: Run) -> None:
    assert run.returncode == 0, run.describe()
    assert run.connection_status["status"] == "SUCCEEDED", run.describe()


def test_check_succeeds_for_a_good_key(sandbox: Sandbox, connector: Connector) -> None:
    check_succeeds(connector.check())

    log = sandbox.requests()
    assert [e["path"] for e in log][:2] == ["/v1/ping", "/v1/campaigns"]
    exports = export_requests(sandbox)
    today = sandbox.app.today()
    assert len(exports) == 1 and exports[0].window == (today, today)  # a one-day probe of metrics:read
    assert all(e["auth"] == "x-api-key" and e["status"] == 200 for e in log)

    sandbox.clear_requests()
    check_succeeds(connector.check(connector.config(auth_header="bearer")))
    assert {e["auth"] for e in sandbox.requests()} == {"bearer"}


def test_key_without_campaigns_scope_works_with_campaign_ids_and_start_date(
    sandbox: Sandbox, connector: Connector
) -> None:
    today = sandbox.app.today()
    start = today - timedelta(days=20)
    wanted = [multi_window_campaign(sandbox), campaign_by_status(sandbox, "ended")]
    config = connector.config(
        api_key="sk_sandbox_metricsonly", campaign_ids=wanted, start_date=start.isoformat()
    )

    check_succeeds(connector.check(config))
    sandbox.clear_requests()
    run = connector.read(config).assert_ok()

    since = start.isoformat()
    expected = [row for cid in wanted for row in sandbox.truth(cid) if row["report_date"] >= since]
    assert_exact(run.records, expected)
    assert any("no campaigns:read" in log["message"] for log in run.logs)
    exports = export_requests(sandbox)
    assert sorted((r.campaign_id, r.window) for r in exports) == sorted((c, (start, today)) for c in wanted)


def test_failed_campaigns_stream_does_not_stop_the_engagement_stream(
    sandbox: Sandbox, connector: Connector
) -> None:
    today = sandbox.app.today()
    start = today - timedelta(days=5)
    wanted = [multi_window_campaign(sandbox)]
    config = connector.config(
        api_key="sk_sandbox_metricsonly", campaign_ids=wanted, start_date=start.isoformat()
    )

    run = connector.read(config, streams=("campaigns", "campaign_engagement_daily"))

    assert run.returncode == 1  # the sync as a whole failed: the campaigns stream could not be read
    assert run.stream_records("campaigns") == []
    error = run.error
    assert error["failure_type"] == "config_error" and "campaigns:read" in error["message"]
    since = start.isoformat()
    assert_exact(run.records, [row for row in sandbox.truth(wanted[0]) if row["report_date"] >= since])
    assert run.state is not None and wanted[0] in run.state["campaigns"]


def test_given_a_revoked_key_and_both_streams_when_read_then_exactly_one_trace_error_and_no_traceback(
    sandbox: Sandbox, connector: Connector
) -> None:
    run = connector.read(
        connector.config(api_key="sk_sandbox_revoked"), streams=("campaigns", "campaign_engagement_daily")
    )

    error = run.assert_failed("config_error")  # exactly one TRACE ERROR
    assert "api_key_revoked" in error["message"] and "stack_trace" not in error
    assert not any("Traceback" in log["message"] for log in run.logs) and b"Traceback" not in run.stderr
    assert [e["path"] for e in sandbox.requests()] == ["/v1/campaigns"]  # one request, refused once
    assert run.stream_statuses.count("INCOMPLETE") == 2  # both streams
