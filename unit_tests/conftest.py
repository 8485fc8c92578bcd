from __future__ import annotations

import time
from types import SimpleNamespace

import pytest


class SleepRecorder:
    """Stands in for the client's and the export's waits: records each one instead of waiting. Its
    clock runs ahead of time.monotonic by every wait it skipped, so the export's request budget (a 429's
    key-wide pause) sees those waits as passed."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._skipped = 0.0

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._skipped += seconds

    def clock(self) -> float:
        return time.monotonic() + self._skipped


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    recorder = SleepRecorder()
    monkeypatch.setattr("source_soundlink.client.time.sleep", recorder)
    monkeypatch.setattr(
        "source_soundlink.engagement.export.EngagementExport._sleep", lambda self, seconds: recorder(seconds)
    )
    monkeypatch.setattr("source_soundlink.engagement.export.time", SimpleNamespace(monotonic=recorder.clock))
    return recorder
