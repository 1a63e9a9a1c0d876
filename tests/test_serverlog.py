"""The filter that turns aiohttp's per-request parser tracebacks into a line a second."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from imgcdn.serverlog import MalformedRequests


def record(error: BaseException | None, msg: str = "Error handling request") -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_one_short_warning_a_second_with_the_count(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("imgcdn.serverlog.time.monotonic", lambda: now[0])
    quiet = MalformedRequests(every_s=1.0)
    first = record(LineTooLong("x" * 9000, "8190"))
    assert quiet.filter(first)
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert (
        first.getMessage()
        == "1 malformed request(s) answered 400 since the last report; last: LineTooLong"
    )
    now[0] += 0.5
    assert not any(quiet.filter(record(BadStatusLine("GARBAGE"))) for _ in range(10))
    now[0] += 0.6
    later = record(LineTooLong("y", "8190"))
    assert quiet.filter(later) and later.getMessage().startswith("11 malformed request(s)")


def test_other_records_pass_untouched() -> None:
    quiet = MalformedRequests()
    crash = record(RuntimeError("a handler bug"))
    plain = record(None, "something else")
    assert quiet.filter(crash) and crash.levelno == logging.ERROR and crash.exc_info is not None
    assert quiet.filter(plain) and plain.getMessage() == "something else"
