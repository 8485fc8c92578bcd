"""When STATE goes out, on a fake clock: throttled checkpoints, heartbeats, exact record counts."""

from __future__ import annotations

from source_soundlink.engagement.state_emitter import StateEmitter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_checkpoints_every_10_s_when_paced_then_a_changed_state_goes_out_once_a_minute() -> None:
    clock = FakeClock()
    emitter = StateEmitter(interval_s=60, heartbeat_s=60, clock=clock)
    sent_at = []
    for _ in range(30):  # five minutes of windows completing every 10 s, records between them
        clock.now += 10
        emitter.records(100)
        emitter.checkpoint()
        if emitter.due():
            sent_at.append(clock.now - 1000)
            emitter.emitted()

    assert sent_at == [60, 120, 180, 240, 300]


def test_given_a_pending_checkpoint_when_nothing_arrives_then_it_is_due_when_its_interval_ends() -> None:
    clock = FakeClock()
    emitter = StateEmitter(interval_s=60, heartbeat_s=90, clock=clock)
    clock.now += 20
    emitter.records(5)
    emitter.checkpoint()

    assert not emitter.due()
    assert emitter.seconds_until_due() == 40  # the consumer blocks this long at most
    clock.now += 40
    assert emitter.due() and emitter.emitted() == 5


def test_given_a_silent_minute_when_nothing_changed_then_a_heartbeat_state_with_zero_records_is_due() -> None:
    clock = FakeClock()
    emitter = StateEmitter(interval_s=60, heartbeat_s=60, clock=clock)
    counts = []
    for _ in range(60):  # ten minutes waiting for the request budget: nothing flows, nothing changes
        clock.now += 10
        if emitter.due():
            counts.append(emitter.emitted())

    assert counts == [0] * 10
    assert not emitter.changed


def test_given_records_flowing_when_no_window_completes_then_no_heartbeat_is_needed() -> None:
    clock = FakeClock()
    emitter = StateEmitter(interval_s=60, heartbeat_s=60, clock=clock)
    for _ in range(100):  # one long window streaming for 500 s: RECORD messages are heartbeats too
        clock.now += 5
        emitter.records(1000)
        assert not emitter.due()
    clock.now += 60

    assert emitter.due() and emitter.emitted() == 100_000  # the next STATE carries every record since


def test_given_states_at_any_moments_when_summed_then_record_counts_equal_the_records_emitted() -> None:
    clock = FakeClock()
    emitter = StateEmitter(interval_s=60, heartbeat_s=60, clock=clock)
    emitted, counted = 0, 0
    for step in range(200):
        clock.now += 7
        emitter.records(step % 13)
        emitted += step % 13
        if step % 11 == 0:
            emitter.checkpoint()
        if emitter.due() or step % 37 == 0:  # paced ones, and forced ones (a long wait, the end)
            counted += emitter.emitted()
    counted += emitter.emitted()  # the final STATE

    assert counted == emitted
