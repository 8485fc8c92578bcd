"""Whole syncs through the `source-soundlink` command against the sandbox over real HTTP.

Full refresh and incremental syncs: records equal the sandbox's truth exactly, the requests the sandbox saw
are the documented ones (explicit dates, <= 90 inclusive days, never after today, one credential header),
and incremental syncs re-read only what can still change.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from helpers import (
    CAMPAIGNS,
    ENGAGEMENT,
    Connector,
    ExportRequest,
    Run,
    assert_exact,
    assert_same_rows,
    assert_unique_pks,
    by_pk,
    campaign_by_status,
    campaign_state,
    catalog,
    export_requests,
    multi_window_campaign,
    pk,
    utc_today,
)
from soundlink_sandbox import Sandbox

MANIFEST = Path(__file__).resolve().parents[1] / "source_soundlink" / "manifest.yaml"

NDJSON = "application/x-ndjson"


def assert_windows_tile(requests: list[ExportRequest], first_day, last_day, max_days: int = 90) -> None:
    """One campaign's requests: each <= max_days, contiguous, covering first_day..last_day exactly once."""
    windows = sorted(r.window for r in requests)
    assert windows, "no export request for the campaign"
    assert windows[0][0] == first_day, windows
    assert windows[-1][1] == last_day, windows
    for (_, end), (next_start, _) in itertools.pairwise(windows):
        assert next_start == end + timedelta(days=1), f"gap or overlap between windows: {windows}"
    for start, end in windows:
        assert start <= end, windows
        assert (end - start).days + 1 <= max_days, f"window {start}..{end} is over {max_days} days"


def test_full_refresh_is_exact_and_requests_are_documented(sandbox: Sandbox, connector: Connector) -> None:
    run = connector.read(sync_mode="full_refresh").assert_ok()

    assert_exact(run.records, sandbox.truth())
    assert run.stream_statuses == ["STARTED", "RUNNING", "COMPLETE"]
    assert run.state is not None and run.state["state_version"] == 2

    today = sandbox.app.today()
    log = sandbox.requests()
    assert all(entry["auth"] == "x-api-key" for entry in log), {e["auth"] for e in log}
    assert all(entry["status"] == 200 for entry in log), [(e["path"], e["status"]) for e in log]
    listing = [e for e in log if e["path"] == "/v1/campaigns"]
    assert listing and all(e["accept"] == "application/json" for e in listing)

    exports = export_requests(sandbox)
    assert len(exports) + len(listing) == len(log), "only the listing and exports are needed"
    assert all(r.accept == NDJSON for r in exports)
    assert all("engagementContext" not in r.query for r in exports), "engagementContext was not configured"
    assert all(r.end <= today for r in exports), "a window ends after today"
    assert len({(r.campaign_id, r.window) for r in exports}) == len(exports), "a window was requested twice"
    # Every campaign, with rows or not, is tiled from its first day (createdAt's UTC date) up to today,
    # except a settled one: its windows stop once a window reaches 38 days past its end and its updatedAt.
    for c in sandbox.app.campaign_list():
        cs = campaign_state(run.state, c.campaign_id)
        last = dt.date.fromisoformat(cs["through"]) if cs.get("settled") else today
        assert_windows_tile(export_requests(sandbox, c.campaign_id), c.start, last)
        if cs.get("settled"):
            ended_on = c.end + dt.timedelta(days=1)  # its rows are `ended` from the day after its end
            updated = dt.datetime.fromisoformat(cs["updated_at"]).date()
            assert max(ended_on, updated) + dt.timedelta(days=38) <= last < today
    # The 121-day campaign needs two windows, the first exactly 90 inclusive days.
    long_one = sorted(r.window for r in export_requests(sandbox, multi_window_campaign(sandbox)))
    assert len(long_one) == 2 and (long_one[0][1] - long_one[0][0]).days == 89


def test_bearer_auth_sends_only_the_authorization_header(sandbox: Sandbox, connector: Connector) -> None:
    run = connector.read(connector.config(auth_header="bearer"), sync_mode="full_refresh").assert_ok()

    assert_exact(run.records, sandbox.truth())
    log = sandbox.requests()
    assert log and all(entry["auth"] == "bearer" for entry in log), {e["auth"] for e in log}


def test_engagement_context_is_sent_only_when_configured(sandbox: Sandbox, connector: Connector) -> None:
    run = connector.read(connector.config(engagement_context="playlist")).assert_ok()

    expected = [row for row in sandbox.truth() if row["engagement_context"] == "playlist"]
    assert expected and len(expected) < len(sandbox.truth())
    assert_exact(run.records, expected)
    exports = export_requests(sandbox)
    assert exports and all(r.query.get("engagementContext") == "playlist" for r in exports)


def test_incremental_with_revisions_rereads_only_the_trailing_lookback(
    sandbox: Sandbox, connector: Connector
) -> None:
    today = sandbox.app.today()
    first = connector.read().assert_ok()
    assert_exact(first.records, sandbox.truth())
    settled = campaign_by_status(sandbox, "completed")  # ended T-140, tail over by T-110
    assert campaign_state(first.state, settled).get("settled") is True
    assert set(first.state["campaigns"]) == {c["campaignId"] for c in sandbox.campaigns()}

    sandbox.revise()  # every report_date of the last 7 days changes
    sandbox.clear_requests()
    second = connector.read(state=first.state).assert_ok()

    truth = sandbox.truth()
    # Sync 2 re-reads exactly the trailing lookback (7 days before the last checkpoint) of every campaign
    # that can still change: one request each, none for the settled campaign.
    exports = export_requests(sandbox)
    changing = {c["campaignId"] for c in sandbox.campaigns()} - {settled}
    assert sorted(r.campaign_id for r in exports) == sorted(changing)
    lookback_start = today - timedelta(days=7)
    for r in exports:
        created = sandbox.app.campaigns[r.campaign_id].start
        assert r.window == (max(lookback_start, created), today), r
    assert_unique_pks(second.records)
    since = lookback_start.isoformat()
    in_lookback = [row for row in truth if row["report_date"] >= since and row["campaign_id"] != settled]
    assert_same_rows(by_pk(second.records), in_lookback)
    # The revision is visible: re-read rows carry new values, and the upserted union is the new truth.
    before = by_pk(first.records)
    revised = [row for row in second.records if before[pk(row)] != row]
    assert revised and all(row["report_date"] >= lookback_start.isoformat() for row in revised)
    assert_same_rows(by_pk(first.records, second.records), truth)
    assert second.state["campaigns"][settled] == first.state["campaigns"][settled]


def test_campaign_added_after_earlier_syncs_gets_its_whole_history(
    sandbox: Sandbox, connector: Connector
) -> None:
    today = sandbox.app.today()
    first = connector.read().assert_ok()
    second = connector.read(state=first.state).assert_ok()
    new = sandbox.add_campaign(created_days_ago=100, campaign_duration=80, target_type="playlist")
    new_id = new["campaignId"]
    sandbox.clear_requests()

    third = connector.read(state=second.state).assert_ok()

    new_start = today - timedelta(days=100)
    assert_windows_tile(export_requests(sandbox, new_id), new_start, today)
    assert len(export_requests(sandbox, new_id)) == 2  # 101 days: 90 + 11
    new_rows = sandbox.truth(new_id)
    assert len(new_rows) == 101 * 12
    assert_same_rows(by_pk(row for row in third.records if row["campaign_id"] == new_id), new_rows)
    assert_same_rows(by_pk(first.records, second.records, third.records), sandbox.truth())
    assert third.state["campaigns"][new_id]["from"] == new_start.isoformat()
    # The campaigns synced before still re-read only their lookback.
    for r in export_requests(sandbox):
        if r.campaign_id != new_id:
            assert r.start >= today - timedelta(days=7), r


def test_widening_engagement_context_backfills_the_rows_it_adds(
    sandbox: Sandbox, connector: Connector
) -> None:
    """Sync playlist rows only, then clear engagement_context: the catalog rows must arrive too.

    The state says each campaign is covered "through today" without saying for which context, so a
    second sync that only re-reads the lookback never fetches the older catalog rows: silent loss.
    """
    first = connector.read(connector.config(engagement_context="playlist")).assert_ok()
    second = connector.read(connector.config(), state=first.state).assert_ok()

    assert_unique_pks(second.records)
    assert_same_rows(by_pk(first.records, second.records), sandbox.truth())


def test_campaign_ids_filter_syncs_only_those_campaigns(sandbox: Sandbox, connector: Connector) -> None:
    wanted = [multi_window_campaign(sandbox), campaign_by_status(sandbox, "ended")]
    run = connector.read(connector.config(campaign_ids=wanted)).assert_ok()

    assert_exact(run.records, [row for cid in wanted for row in sandbox.truth(cid)])
    assert {r.campaign_id for r in export_requests(sandbox)} == set(wanted)
    assert set(run.state["campaigns"]) == set(wanted)


def test_campaign_without_rows_does_not_reread_its_history(sandbox: Sandbox, connector: Connector) -> None:
    today = sandbox.app.today()
    quiet = sandbox.add_campaign(created_days_ago=60, campaign_duration=90, rows_per_day=0)["campaignId"]
    failed = campaign_by_status(sandbox, "failed")  # created T-30, never any rows
    first = connector.read().assert_ok()
    assert_exact(first.records, sandbox.truth())
    assert [r.window for r in export_requests(sandbox, quiet)] == [(today - timedelta(days=60), today)]

    previous = first
    for _ in range(2):  # the next syncs re-read only the lookback, sync after sync
        sandbox.clear_requests()
        run = connector.read(state=previous.state).assert_ok()
        assert run.records and not [row for row in run.records if row["campaign_id"] in (quiet, failed)]
        for cid in (quiet, failed):
            assert [r.window for r in export_requests(sandbox, cid)] == [(today - timedelta(days=7), today)]
            assert run.state["campaigns"][cid]["from"] == first.state["campaigns"][cid]["from"]
        previous = run


def test_full_refresh_of_both_streams(sandbox: Sandbox, connector: Connector) -> None:
    run = connector.read(sync_mode="full_refresh", streams=(CAMPAIGNS, ENGAGEMENT), debug=True).assert_ok()

    assert_exact(run.records, sandbox.truth())
    campaigns = run.stream_records(CAMPAIGNS)
    assert sorted(campaigns, key=lambda c: c["campaignId"]) == sorted(
        sandbox.campaigns(), key=lambda c: c["campaignId"]
    )
    assert all(entry["auth"] == "x-api-key" for entry in sandbox.requests())


def _campaigns_stream_messages(run: Run) -> list[dict[str, Any]]:
    def of_campaigns(message: dict[str, Any]) -> bool:
        if message["type"] == "RECORD":
            return message["record"]["stream"] == CAMPAIGNS
        if message["type"] == "STATE":
            return message["state"]["stream"]["stream_descriptor"]["name"] == CAMPAIGNS
        trace = message["trace"] if message["type"] == "TRACE" else {}
        return (
            trace.get("type") == "STREAM_STATUS"
            and trace["stream_status"]["stream_descriptor"]["name"] == CAMPAIGNS
        )

    return [m for m in run.messages if of_campaigns(m)]


@pytest.mark.parametrize("campaign_ids", [False, True], ids=["every-campaign", "campaign_ids"])
def test_given_both_streams_when_read_then_campaigns_are_listed_once_and_emitted_as_the_manifest_does(
    tmp_path: Path, campaign_ids: bool
) -> None:
    with Sandbox(today=utc_today(), campaigns=250, rate_limit_per_minute=0, rate_limit_per_hour=0) as sandbox:
        connector = Connector(sandbox, tmp_path)
        wanted = [c["campaignId"] for c in sandbox.campaigns()[1:250:50]] if campaign_ids else None
        config = connector.config(campaign_ids=wanted, start_date=sandbox.app.today().isoformat())
        run = connector.read(config, streams=(CAMPAIGNS, ENGAGEMENT)).assert_ok()
        listing = [e for e in sandbox.requests() if e["path"] == "/v1/campaigns"]
        # The manifest's own stream, read by the CDK in-process: the definition the fast path follows.
        manifest = YamlDeclarativeSource(path_to_yaml=str(MANIFEST), config=config)
        cdk = read(manifest, config, CatalogBuilder().with_stream(CAMPAIGNS, SyncMode.full_refresh).build())

    assert sorted(int(e["query"]["page"]) for e in listing) == [1, 2, 3]  # one pass over 3 pages
    assert run.stream_records(CAMPAIGNS) == [m.record.data for m in cdk.records]
    assert len(run.stream_records(CAMPAIGNS)) == (len(wanted) if wanted else 250)
    messages = _campaigns_stream_messages(run)
    statuses = [m["trace"]["stream_status"]["status"] for m in messages if m["type"] == "TRACE"]
    assert statuses == ["STARTED", "RUNNING", "COMPLETE"]
    state = next(m["state"] for m in messages if m["type"] == "STATE")
    assert state["sourceStats"]["recordCount"] == len(run.stream_records(CAMPAIGNS))


def test_given_both_streams_when_read_then_the_cdk_is_never_imported(
    sandbox: Sandbox, connector: Connector
) -> None:
    probe = (
        "import sys; from source_soundlink import read_command; code = read_command.main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.startswith('airbyte_cdk'))[:3], file=sys.stderr); "
        "sys.exit(code)"
    )
    argv = connector.argv("read", connector.config(), catalog(CAMPAIGNS, ENGAGEMENT))[1:]
    run = connector.run(argv, sandbox.api_key, command=[sys.executable, "-c", probe]).assert_ok()

    assert run.stream_records(CAMPAIGNS) and run.records
    assert run.stderr.strip().endswith(b"[]"), run.stderr[-500:]
