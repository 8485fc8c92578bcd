"""One campaign's read: its span planned from the state, windows in order, the lookback, backfills of
campaigns added later, settled campaigns left alone, late delivery, and too-wide windows split. Whole reads
pinned with the CDK's HttpMocker (which fails a test whose mocked request was not made), and the span
reader alone with a fake window reader."""

from __future__ import annotations

from datetime import date
from typing import Any

from airbyte_cdk.test.mock_http import HttpMocker

from source_soundlink.config import SoundlinkConfig
from source_soundlink.engagement.campaigns import Campaign
from source_soundlink.engagement.cursor import CampaignState
from source_soundlink.engagement.partitioner import DateSlicingPartitioner
from source_soundlink.engagement.span_reader import CampaignSpanReader
from source_soundlink.engagement.window import Window, WindowProgress
from unit_tests import builders as b


@HttpMocker()
def test_backfill_requests_windows_of_at_most_90_inclusive_days(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-01-01")]))
    windows = [("2026-01-01", "2026-03-31"), ("2026-04-01", "2026-06-29"), ("2026-06-30", "2026-07-10")]
    for start, end in windows:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = b.read_source(b.config(end_date="2026-07-10"))

    assert not output.errors
    assert len(output.records) == 2 * 191  # 2 rows a day, 2026-01-01..2026-07-10
    assert len(set(b.pks(output))) == len(output.records)
    assert b.final_state(output)["campaigns"] == {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-07-10",
            "has_rows": True,
            "report_date": "2026-07-10",
        }
    }
    # STATE is throttled (state_emitter.py): a sync this short emits only its final one.
    assert len(output.state_messages) == 1


@HttpMocker()
def test_each_campaign_starts_at_its_own_creation_date_and_start_date_clamps_it(
    http_mocker: HttpMocker = None,
) -> None:
    campaigns = [b.campaign("camp_old", created="2025-12-01"), b.campaign("camp_new", created="2026-03-05")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_old", "2026-03-01", "2026-03-10"), b.jsonl_response([]))
    http_mocker.get(b.export_request("camp_new", "2026-03-05", "2026-03-10"), b.jsonl_response([]))

    output = b.read_source(b.config(start_date="2026-03-01", end_date="2026-03-10"))

    assert not output.errors
    assert b.final_state(output)["campaigns"]["camp_new"] == {"from": "2026-03-05", "through": "2026-03-10"}


@HttpMocker()
def test_window_size_and_engagement_context_are_sent(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-05-01")]))
    for start, end in [("2026-05-01", "2026-05-10"), ("2026-05-11", "2026-05-15")]:
        http_mocker.get(
            b.export_request("camp_a", start, end, engagementContext="playlist"),
            b.jsonl_response(b.daily_rows("camp_a", start, end, engagement_context="playlist")),
        )

    output = b.read_source(
        b.config(end_date="2026-05-15", window_size_days=10, engagement_context="playlist")
    )

    assert not output.errors
    assert len(output.records) == 30


@HttpMocker()
def test_second_sync_rereads_the_lookback_window_per_campaign(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_b", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    # camp_a was read through 06-30: re-read from 06-30 - 7 days; camp_b through 06-20 with a 10-day lookback.
    http_mocker.get(
        b.export_request("camp_a", "2026-06-20", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_a", "2026-06-20", "2026-07-05")),
    )
    http_mocker.get(
        b.export_request("camp_b", "2026-06-10", "2026-07-05"),
        b.jsonl_response(b.daily_rows("camp_b", "2026-06-10", "2026-07-05")),
    )
    previous = {
        "camp_a": {
            "from": "2026-01-01",
            "through": "2026-06-30",
            "has_rows": True,
            "report_date": "2026-06-30",
        },
        "camp_b": {
            "from": "2026-02-01",
            "through": "2026-06-20",
            "has_rows": True,
            "report_date": "2026-06-20",
        },
    }

    output = b.read_source(b.config(end_date="2026-07-05", lookback_window_days=10), b.state(previous))

    assert not output.errors
    campaigns_state = b.final_state(output)["campaigns"]
    assert campaigns_state["camp_a"]["through"] == "2026-07-05"
    assert campaigns_state["camp_b"]["through"] == "2026-07-05"
    assert campaigns_state["camp_a"]["from"] == "2026-01-01"  # coverage is kept, not reset to the lookback


@HttpMocker()
def test_a_campaign_added_later_is_backfilled_from_its_own_start(http_mocker: HttpMocker = None) -> None:
    campaigns = [b.campaign("camp_a", created="2026-01-01"), b.campaign("camp_late", created="2026-02-01")]
    http_mocker.get(b.campaigns_request(), b.campaigns_response(campaigns))
    http_mocker.get(b.export_request("camp_a", "2026-04-03", "2026-04-10"), b.jsonl_response([]))
    http_mocker.get(
        b.export_request("camp_late", "2026-02-01", "2026-04-10"),
        b.jsonl_response(b.daily_rows("camp_late", "2026-02-01", "2026-04-10")),
    )
    previous = {"camp_a": {"from": "2026-01-01", "through": "2026-04-10", "has_rows": True}}

    output = b.read_source(b.config(end_date="2026-04-10"), b.state(previous))

    assert not output.errors
    assert {
        r.record.data["report_date"] for r in output.records if r.record.data["campaign_id"] == "camp_late"
    } >= {
        "2026-02-01",
        "2026-04-10",
    }
    assert b.final_state(output)["campaigns"]["camp_late"]["from"] == "2026-02-01"


@HttpMocker()
def test_an_empty_campaign_does_not_reread_its_history(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(
        b.campaigns_request(), b.campaigns_response([b.campaign("camp_empty", created="2026-01-01")])
    )
    http_mocker.get(b.export_request("camp_empty", "2026-03-24", "2026-04-01"), b.jsonl_response([]))
    previous = {"camp_empty": {"from": "2026-01-01", "through": "2026-03-31"}}

    output = b.read_source(b.config(end_date="2026-04-01"), b.state(previous))

    assert not output.errors
    assert b.final_state(output)["campaigns"]["camp_empty"] == {"from": "2026-01-01", "through": "2026-04-01"}


@HttpMocker()
def test_a_settled_campaign_makes_no_request(http_mocker: HttpMocker = None) -> None:
    ended = b.campaign("camp_done", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    previous = {
        "camp_done": {
            "from": "2026-01-01",
            "through": "2026-04-30",
            "has_rows": True,
            "ended_on": "2026-02-01",
            "settled": True,
            "updated_at": ended["updatedAt"],
        }
    }

    output = b.read_source(b.config(end_date="2026-07-01"), b.state(previous))

    assert not output.errors
    assert output.records == []
    # A settled campaign is kept compact: [from, through, the updatedAt it settled with].
    assert b.final_state(output)["campaigns"]["camp_done"] == ["2026-01-01", "2026-04-30", ended["updatedAt"]]


@HttpMocker()
def test_ended_rows_settle_a_campaign_and_stop_its_windows(
    http_mocker: HttpMocker = None,
) -> None:
    ended = b.campaign("camp_e", created="2026-01-01", status="completed")
    http_mocker.get(b.campaigns_request(), b.campaigns_response([ended]))
    rows = b.daily_rows("camp_e", "2026-01-01", "2026-01-31") + b.daily_rows(
        "camp_e", "2026-02-01", "2026-03-02", status="ended"
    )
    http_mocker.get(b.export_request("camp_e", "2026-01-01", "2026-03-31"), b.jsonl_response(rows))

    output = b.read_source(b.config(end_date="2026-04-10"))

    state = CampaignState.from_json(b.final_state(output)["campaigns"]["camp_e"])
    assert state.settled  # its `ended` rows: 2026-02-01 + 38 days <= 2026-03-31
    assert state.updated_at == ended["updatedAt"]  # and past all its updatedAt could change (+ 38 days)
    assert state.through == date(2026, 3, 31)  # no request for 04-01..04-10: no row can follow


def test_a_non_terminal_campaign_with_ended_rows_is_never_settled() -> None:
    # camp_a is `active` (e.g. renewed under the same id): its `ended` rows do not settle it.
    rows = b.daily_rows("camp_a", "2026-03-01", "2026-03-05", status="ended")
    output, _ = b.read_with([{"content": b.jsonl(rows), "headers": {"X-Row-Count": str(len(rows))}}])
    assert not output.errors
    state = output.most_recent_state.stream_state.__dict__["campaigns"]["camp_a"]
    assert "settled" not in state and state["ended_on"] == "2026-03-01"


@HttpMocker()
def test_given_a_campaign_without_rows_when_rows_start_at_the_lookback_then_it_is_read_once_from_its_start(
    http_mocker: HttpMocker = None,
) -> None:
    # camp_a sat in `creating` (no rows) and now delivers rows back to its start, before the lookback.
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    late = b.daily_rows("camp_a", "2026-03-13", "2026-03-25")
    http_mocker.get(b.export_request("camp_a", "2026-03-13", "2026-03-25"), b.jsonl_response(late))
    everything = b.daily_rows("camp_a", "2026-03-01", "2026-03-25")
    http_mocker.get(b.export_request("camp_a", "2026-03-01", "2026-03-25"), b.jsonl_response(everything))
    never_had_rows = {"camp_a": {"from": "2026-03-01", "through": "2026-03-20"}}

    output = b.read_source(b.config(end_date="2026-03-25"), b.state(never_had_rows))

    assert not output.errors
    assert [r.record.data for r in output.records] == late + everything
    assert b.final_state(output)["campaigns"]["camp_a"] == {
        "from": "2026-03-01",
        "through": "2026-03-25",
        "has_rows": True,
        "report_date": "2026-03-25",
    }
    # The STATE of the late window came only after the re-read from the start: never ahead of it.
    assert [
        s.state.stream.stream_state.__dict__["campaigns"]["camp_a"]["from"] for s in output.state_messages
    ] == ["2026-03-01"] * len(output.state_messages)


@HttpMocker()
def test_wide_window_rejected_with_400_is_split(http_mocker: HttpMocker = None) -> None:
    http_mocker.get(b.campaigns_request(), b.campaigns_response([b.campaign("camp_a", created="2026-03-01")]))
    http_mocker.get(
        b.export_request("camp_a", "2026-03-01", "2026-03-20"),
        b.error_response(400, "invalid_query_parameter", "r1"),
    )
    for start, end in [("2026-03-01", "2026-03-10"), ("2026-03-11", "2026-03-20")]:
        http_mocker.get(
            b.export_request("camp_a", start, end), b.jsonl_response(b.daily_rows("camp_a", start, end))
        )

    output = b.read_source(b.config(end_date="2026-03-20"))

    assert not output.errors
    assert len(output.records) == 40


# -- the span reader alone, on a fake window reader ---------------------------------------------------


class Host:
    """The sync around a span reader: states handed in, checkpoints, tallies and logs recorded."""

    def __init__(self, states: dict[str, CampaignState]) -> None:
        self.states = states
        self.checkpoints: list[tuple[date | None, date | None, int]] = []
        self.tallies: list[str] = []
        self.logs: list[str] = []

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        return self.states.get(campaign_id)

    def checkpoint(self, campaign_id: str, state: CampaignState, rows: int) -> None:
        self.checkpoints.append((state.covered_from, state.through, rows))

    def stop_if_cancelled(self) -> None:
        pass

    def tally(self, counter: str) -> None:
        self.tallies.append(counter)

    def log(self, level: str, message: str) -> None:
        self.logs.append(message)


class Windows:
    """Stands for the window reader: every window read is recorded and holds one row a day."""

    def __init__(self) -> None:
        self.read: list[Window] = []

    def read_window(self, window: Window, resume: Any = None) -> WindowProgress:
        self.read.append(window)
        first, last = window.start.isoformat(), window.end.isoformat()
        return WindowProgress(first_date=first, last_date=last, rows_emitted=window.days)


def span_reader(host: Host, windows: Windows, today: date, **config: Any) -> CampaignSpanReader:
    parsed = SoundlinkConfig.from_mapping(b.config(**config), today=today)
    return CampaignSpanReader(parsed, DateSlicingPartitioner(parsed.window_size_days), windows, host)


CAMPAIGN = Campaign("camp_a", date(2026, 3, 1), "active")


def test_given_a_through_after_the_syncs_today_when_read_then_the_lookback_starts_from_today_saying_so() -> (
    None
):
    host = Host({"camp_a": CampaignState(date(2026, 3, 1), date(2026, 3, 25), has_rows=True)})
    windows = Windows()

    span_reader(host, windows, today=date(2026, 3, 20)).read(CAMPAIGN)

    assert windows.read == [Window("camp_a", date(2026, 3, 13), date(2026, 3, 20))]
    assert host.checkpoints == [(date(2026, 3, 1), date(2026, 3, 20), 8)]
    assert any("through 2026-03-25 is after today (2026-03-20, Soundlink's date)" in m for m in host.logs)


def test_given_a_settled_campaign_when_read_then_no_window_is_read_and_it_is_counted_as_settled() -> None:
    ended = Campaign("camp_a", date(2026, 1, 1), "completed", updated_at="2026-01-31T00:00:00Z")
    settled = CampaignState(
        date(2026, 1, 1), date(2026, 4, 30), has_rows=True, settled=True, updated_at=ended.updated_at
    )
    host, windows = Host({"camp_a": settled}), Windows()

    span_reader(host, windows, today=date(2026, 7, 1)).read(ended)

    assert windows.read == [] and host.checkpoints == [] and host.tallies == ["settled"]
