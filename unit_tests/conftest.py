from __future__ import annotations

import pytest


class SleepRecorder:
    """Stands in for the client's and the export's waits: records each one instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    recorder = SleepRecorder()
    monkeypatch.setattr("source_soundlink.client.time.sleep", recorder)
    monkeypatch.setattr(
        "source_soundlink.engagement.export.EngagementExport._wait", lambda self, seconds: recorder(seconds)
    )
    return recorder
