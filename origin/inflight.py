"""Requests in progress, so a stopping server can let them finish.

aiohttp's own graceful shutdown stops reading from every connection at once, so a request
whose body is still arriving (an upload) could never finish; the server waits on this first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class InFlight:
    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()

    async def wait_idle(self, grace_s: float) -> bool:
        """True when no request is in progress, False if some still are after `grace_s`."""
        try:
            async with asyncio.timeout(grace_s):
                await self.idle.wait()
        except TimeoutError:
            return False
        return True
