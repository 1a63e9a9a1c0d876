"""Background purge notifications to the edges when a user's active photo changes.

Never awaited by an API call: `notify()` schedules and returns. Each (edge, user) pair has at
most one sender at a time; changes that arrive while it sends make it send once more, so the
last change is always followed by a purge and a burst of changes costs two requests, not N.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiohttp

log = logging.getLogger(__name__)

Key = tuple[str, tuple[str, ...]]


class Purger:
    """Sends `POST {edge}/_purge {"hashes": [...]}` with retries, off the request path."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        edges: Sequence[str],
        token: str | None,
        *,
        timeout_s: float = 2.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.edges = tuple(edge.rstrip("/") for edge in edges)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.on_result = on_result or (lambda _result: None)
        self.running: dict[Key, asyncio.Task[None]] = {}
        self.again: set[Key] = set()

    def notify(self, hashes: Sequence[str]) -> None:
        """Schedule a purge of `hashes` at every edge; returns at once."""
        for edge in self.edges:
            key = (edge, tuple(hashes))
            if key in self.running:
                self.again.add(key)
            else:
                self.running[key] = asyncio.create_task(self.run(key))

    async def run(self, key: Key) -> None:
        try:
            while True:
                self.again.discard(key)
                await self.send(*key)
                if key not in self.again:
                    return
        finally:
            del self.running[key]

    async def send(self, edge: str, hashes: tuple[str, ...]) -> None:
        """One purge with retries and backoff; failures are logged and counted, never raised."""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with self.session.post(
                    f"{edge}/_purge",
                    json={"hashes": list(hashes)},
                    headers=self.headers,
                    timeout=self.timeout,
                ) as response:
                    if response.status < 300:
                        self.on_result("ok")
                        return
                    if response.status in (401, 403, 404):  # retrying cannot fix these
                        log.warning("purge refused by %s: %s", edge, response.status)
                        self.on_result("refused")
                        return
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                log.info("purge to %s failed (attempt %d): %r", edge, attempt + 1, err)
        log.warning("purge to %s gave up after %d attempts", edge, self.attempts)
        self.on_result("failed")

    async def close(self, grace_s: float = 2.0) -> None:
        """Let pending purges finish within `grace_s`, then cancel the rest."""
        tasks = list(self.running.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
