"""aiohttp's own log of malformed requests, made one line a second at most.

aiohttp answers a request its parser refuses (a line over 8 KiB, too many headers, bad
framing) with a 400 and logs it under `aiohttp.server` at ERROR with a full traceback, once
per request: anyone can write ~30 lines of log per request they send. Both servers install
this filter, which keeps the first such record of each second as one WARNING line with the
count since the last one, without the traceback, and drops the rest. Other records pass.
`LogThrottle` is the counting part, shared with the edge's log of 503s (edge/middleware.py).
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class LogThrottle:
    """Counts occurrences of something worth a log line; says, at most once every `every_s`,
    how many came since it last did, so a flood of them is one line a second."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.count = 0
        self.logged_at = -every_s

    def tick(self) -> int:
        """Count one; the number to report now (the count resets), or 0 to stay quiet."""
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at < self.every_s:
            return 0
        count, self.count, self.logged_at = self.count, 0, now
        return count


class MalformedRequests(logging.Filter):
    def __init__(self, every_s: float = 1.0) -> None:
        super().__init__()
        self.throttle = LogThrottle(every_s)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or error.code >= 500:
            return True
        count = self.throttle.tick()
        if not count:
            return False
        record.msg = "%d malformed request(s) answered %d since the last report; last: %s"
        record.args = (count, error.code, type(error).__name__)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger, once per process."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequests) for f in logger.filters):
        logger.addFilter(MalformedRequests())
