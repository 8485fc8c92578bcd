"""The console entrypoint's edges that the CDK's launch leaves to connectors."""

from __future__ import annotations

import sys

import pytest

from source_soundlink import run


def test_given_no_command_when_launched_then_a_usage_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the CDK's hook is installed on the way
    assert run.launch_cdk([]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: source-soundlink {spec,check,discover,read}")
    assert captured.out == ""
