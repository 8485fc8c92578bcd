"""The real clock: waits that a cancelled sync interrupts."""

from __future__ import annotations

import threading
import time

from source_soundlink.clock import Clock


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
