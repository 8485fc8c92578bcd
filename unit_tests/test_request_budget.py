"""The request budget: Soundlink's per-minute and per-hour limits, and the key-wide pause a 429 asks for,
on a fake clock."""

from __future__ import annotations

import threading
import time

from source_soundlink.request_budget import RequestBudget
from unit_tests.builders import FakeClock, in_thread


def test_given_3_a_minute_when_7_requests_ask_then_the_4th_waits_a_minute_and_all_take_two() -> None:
    clock = FakeClock()
    budget = RequestBudget(per_minute=3, per_hour=100, clock=clock)
    waits = [budget.acquire() for _ in range(7)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == 60  # the 4th request waits for the 1st to leave the minute window
    assert clock.time == 120  # 7 requests at 3/minute need two full minutes


def test_given_3_a_minute_and_7_an_hour_when_10_ask_then_both_windows_slide_and_waits_are_exact() -> None:
    clock = FakeClock()
    clock.time = 1000.0
    budget = RequestBudget(per_minute=3, per_hour=7, clock=clock)

    sent = []
    for _ in range(10):
        budget.acquire()
        sent.append(clock.time - 1000.0)

    assert sent[:7] == [0, 0, 0, 60, 60, 60, 120]
    assert sent[7:] == [3600, 3600, 3600]  # the hour is full after 7; it frees when the first 3 leave it
    for i in range(len(sent) - 3):
        assert sent[i + 3] - sent[i] >= 60
    for i in range(len(sent) - 7):
        assert sent[i + 7] - sent[i] >= 3600


def test_given_a_budget_of_5_an_hour_when_a_6th_request_asks_then_it_waits_an_hour() -> None:
    budget = RequestBudget(per_minute=1000, per_hour=5, clock=FakeClock())
    for _ in range(5):
        budget.acquire()
    assert budget.acquire() == 3600


def test_given_a_429_when_others_ask_then_none_leaves_before_retry_after_and_one_probe_goes_first() -> None:
    clock = FakeClock()
    budget = RequestBudget(per_minute=1000, per_hour=10_000, clock=clock)

    budget.acquire()  # this thread's request goes out at 0 ...
    clock.time = 1.0
    assert budget.refused(30).streak == 1  # ... and is answered 429, Retry-After 30, at 1

    sent: dict[str, float] = {}
    probe_answered, polled = threading.Event(), threading.Event()

    def probe() -> None:  # another worker's request: held for the whole Retry-After, then it goes alone
        budget.acquire()
        sent["probe"] = clock.time
        probe_answered.wait(5)
        budget.settle()  # answered 200: the key works again

    def third() -> None:  # polls (a real, tiny sleep: the fake clock stays put) until the probe's answer
        budget.acquire(sleep=lambda seconds: (polled.set(), time.sleep(0.001)))
        sent["third"] = clock.time

    workers = [threading.Thread(target=probe)]
    workers[0].start()
    while "probe" not in sent:
        time.sleep(0.001)
    assert sent["probe"] == 31.0
    workers.append(threading.Thread(target=third))
    workers[1].start()
    assert polled.wait(5)
    time.sleep(0.05)
    assert "third" not in sent, "a second request left while the probe was unanswered"
    clock.time = 32.0
    probe_answered.set()
    for worker in workers:
        worker.join(5)
    assert sent == {"probe": 31.0, "third": 32.0}


def test_given_requests_in_flight_when_all_are_refused_then_one_refusal_counts_and_a_success_resets() -> None:
    budget = RequestBudget(per_minute=1000, per_hour=10_000, clock=FakeClock())
    barrier = threading.Barrier(3)

    def refused_after_all_sent() -> int:
        budget.acquire()
        barrier.wait(5)  # three requests in flight at once
        return budget.refused(60).streak

    streaks = []
    workers = [threading.Thread(target=lambda: streaks.append(refused_after_all_sent())) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(5)
    assert sorted(streaks) == [1, 1, 1]  # sent before the key was known to be refused: one refusal

    def probe(answer: str) -> int:
        budget.acquire()
        if answer == "429":
            return budget.refused(60).streak
        budget.settle()
        return 0

    assert in_thread(lambda: probe("429")) == 2  # the probe after the pause, refused again
    assert in_thread(lambda: probe("200")) == 0
    assert in_thread(lambda: probe("429")) == 1  # a new streak after the key worked
