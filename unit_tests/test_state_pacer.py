"""When STATE goes out, on a fake clock: paced checkpoints, rare heartbeats, exact record counts."""

from __future__ import annotations

from source_soundlink.engagement.state_pacer import HEARTBEAT_S, LONG_WAIT_S, STATE_INTERVAL_S, StatePacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_checkpoints_every_10_s_when_paced_then_a_changed_state_goes_out_every_3_minutes() -> None:
    clock = FakeClock()
    pacer = StatePacer(clock=clock)
    sent_at = []
    for _ in range(90):  # fifteen minutes of windows completing every 10 s, records between them
        clock.now += 10
        pacer.records(100)
        pacer.checkpoint()
        if pacer.due():
            sent_at.append(clock.now - 1000)
            pacer.emitted()

    assert sent_at == [180, 360, 540, 720, 900]


def test_given_a_pending_checkpoint_when_nothing_arrives_then_it_is_due_when_its_interval_ends() -> None:
    clock = FakeClock()
    pacer = StatePacer(interval_s=60, heartbeat_s=90, clock=clock)
    clock.now += 20
    pacer.records(5)
    pacer.checkpoint()

    assert not pacer.due()
    assert pacer.seconds_until_due() == 40  # the consumer blocks this long at most
    clock.now += 40
    assert pacer.due() and pacer.emitted() == 5


def test_given_a_silent_hour_when_nothing_changed_then_a_heartbeat_goes_out_every_5_minutes() -> None:
    clock = FakeClock()
    pacer = StatePacer(clock=clock)
    counts = []
    for _ in range(360):  # an hour waiting for the request budget: nothing flows, nothing changes
        clock.now += 10
        if pacer.due():
            counts.append(pacer.emitted())

    assert counts == [0] * 12
    assert HEARTBEAT_S <= 1200 / 4, "well inside metadata.yaml's maxSecondsBetweenMessages"
    assert not pacer.changed


def test_given_records_flowing_when_no_window_completes_then_no_heartbeat_is_needed() -> None:
    clock = FakeClock()
    pacer = StatePacer(clock=clock)
    for _ in range(200):  # one long window streaming for 1,000 s: RECORD messages are heartbeats too
        clock.now += 5
        pacer.records(1000)
        assert not pacer.due()
    clock.now += HEARTBEAT_S

    assert pacer.due() and pacer.emitted() == 200_000  # the next STATE carries every record since


def test_given_waits_when_a_worker_starts_one_then_only_a_long_wait_after_a_change_forces_a_state() -> None:
    clock = FakeClock()
    pacer = StatePacer(clock=clock)

    assert not pacer.waiting(3600), "nothing changed: nothing to checkpoint before the wait"
    pacer.checkpoint()
    assert not pacer.waiting(59), "a per-minute budget wait forces nothing"
    assert pacer.waiting(LONG_WAIT_S) and pacer.waiting(3600)
    pacer.emitted()
    assert not pacer.waiting(3600), "a second worker starting the same wait forces nothing more"


def budget_bound_hours(hours: int) -> tuple[list[list[int]], int]:
    """A sync whose budget is 600 requests an hour, 60 a minute: each hour, ten minutes of windows (one
    a second, records with each), then a wait for the next hour. Returns each hour's STATE record counts
    and the final STATE's, the consumer asking the pacer as export.py does."""
    clock = FakeClock()
    pacer = StatePacer(clock=clock)
    per_hour: list[list[int]] = []
    for _ in range(hours):
        start, sent = clock.now, []
        for second in range(600):
            clock.now = start + second
            pacer.records(3)
            pacer.checkpoint()
            if second % 60 == 59 and pacer.waiting(1.0):  # a per-minute budget wait: forces nothing
                sent.append(pacer.emitted())
            if pacer.due():
                sent.append(pacer.emitted())
        clock.now = start + 600
        if pacer.waiting(3000):  # every worker starts the hour's wait; the first one forces a STATE
            sent.append(pacer.emitted())
        while clock.now < start + 3600 - 10:
            clock.now += 10
            if pacer.due():
                sent.append(pacer.emitted())
        clock.now = start + 3600
        per_hour.append(sent)
    return per_hour, pacer.emitted()


def test_given_a_budget_bound_sync_when_paced_for_a_day_then_at_most_20_states_an_hour_and_exact_counts() -> (
    None
):
    per_hour, final = budget_bound_hours(24)

    assert all(len(sent) <= 20 for sent in per_hour), [len(sent) for sent in per_hour]
    # 3 paced during the active ten minutes, 1 before the wait, then heartbeats every 5 minutes.
    assert len(per_hour[0]) == 600 // STATE_INTERVAL_S + 1 + (3000 - 10) // HEARTBEAT_S
    assert sum(map(sum, per_hour)) + final == 24 * 600 * 3


def test_given_states_at_any_moments_when_summed_then_record_counts_equal_the_records_emitted() -> None:
    clock = FakeClock()
    pacer = StatePacer(interval_s=60, heartbeat_s=60, clock=clock)
    emitted, counted = 0, 0
    for step in range(200):
        clock.now += 7
        pacer.records(step % 13)
        emitted += step % 13
        if step % 11 == 0:
            pacer.checkpoint()
        if pacer.due() or pacer.waiting(step % 37 * 100):  # paced ones, and forced ones (a long wait)
            counted += pacer.emitted()
    counted += pacer.emitted()  # the final STATE

    assert counted == emitted
