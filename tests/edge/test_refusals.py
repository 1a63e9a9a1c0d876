"""503s for a full queue are logged as a count at most once a second, not a line each."""

from __future__ import annotations

import logging

import pytest

from edge.middleware import Refusals


def test_a_flood_of_refusals_logs_one_line_a_second(caplog: pytest.LogCaptureFixture) -> None:
    refusals = Refusals(every_s=3600.0)
    with caplog.at_level(logging.WARNING, logger="edge.middleware"):
        for _ in range(1000):
            refusals.note("too many transforms waiting")
    assert len(caplog.records) == 1  # the first, at once
    assert "503 to 1 request(s)" in caplog.records[0].getMessage()
    assert refusals.count == 999  # the rest wait for the next report
    refusals.logged_at -= 3600.0
    with caplog.at_level(logging.WARNING, logger="edge.middleware"):
        refusals.note("too many transforms waiting")
    assert "503 to 1000 request(s)" in caplog.records[-1].getMessage()
    assert refusals.count == 0
