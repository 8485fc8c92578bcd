from __future__ import annotations

import pytest

from unit_tests.builders import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock to hand to the code under test: its waits are recorded and take no time."""
    return FakeClock()
