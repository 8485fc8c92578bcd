"""The real clock (waits a cancelled sync interrupts) and the scaled one tests and benchmarks run fast."""

from __future__ import annotations

import threading
import time

from source_soundlink.clock import Clock, ScaledClock


def test_given_a_set_interrupt_when_waiting_then_the_wait_returns_at_once_saying_so() -> None:
    interrupt = threading.Event()
    interrupt.set()
    started = time.monotonic()

    assert Clock().wait(60, interrupt) is True
    assert time.monotonic() - started < 5


def test_given_no_interrupt_when_waiting_then_the_clock_moves_by_the_wait() -> None:
    clock = Clock()
    before = clock.now()

    assert Clock().wait(0.05, threading.Event()) is False
    assert clock.now() - before >= 0.05
    assert clock.real_seconds(12.5) == 12.5


def test_given_a_clock_scaled_by_100_when_waiting_100_s_then_a_second_passes_and_it_reads_100_s() -> None:
    clock = ScaledClock(100)
    started_wall, started = time.monotonic(), clock.now()
    clock.wait(100)
    wall = time.monotonic() - started_wall
    assert 0.9 <= wall < 5
    assert clock.now() - started >= 100
    assert clock.real_seconds(300) == 3
