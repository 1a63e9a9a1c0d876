"""The origin SIGKILLed under avatar load and restarted on the same port and database, with
edge and origin both real processes: cached avatars keep answering 200, uncached ones fail
fast (502, or the `d` default), everything recovers by itself, and nothing stored is lost."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.seed import seed_users
from tests.hardening.conftest import copy_samples
from tests.hardening.servers import (
    free_port,
    kill_service,
    start_service,
    stop_service,
    write_config,
)

LOOKUP_TTL_S = 1.0  # lookups expire during the outage: the last good answer must stand in


def stack_config(root: Path, edge_port: int, origin_port: int) -> dict[str, Any]:
    origin_url = f"http://127.0.0.1:{origin_port}"
    return {
        "edge": {
            "host": "127.0.0.1",
            "port": edge_port,
            "origin_url": origin_url,
            "origin_timeout_s": 2,
            "source": {"type": "dir", "path": str(root / "images")},
            "cache": {
                "disk_path": str(root / "edge-cache"),
                "lookup_ttl_s": LOOKUP_TTL_S,
                "negative_ttl_s": LOOKUP_TTL_S,
            },
            "transforms": {"processes": 2},
            "security": {"purge_token": "t"},
        },
        "origin": {
            "host": "127.0.0.1",
            "port": origin_port,
            "public_url": origin_url,
            "database_url": f"sqlite:///{root / 'origin.db'}",
            "storage": {"type": "local", "path": str(root / "blobs")},
            "edges": [f"http://127.0.0.1:{edge_port}"],
            "purge_token": "t",
            "shutdown_grace_s": 2,
        },
    }


class Tally:
    """Statuses and slowest answer per request class, during one phase."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = {}
        self.slowest: dict[str, float] = {}

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.statuses.setdefault(kind, Counter())[status] += 1
        self.slowest[kind] = max(self.slowest.get(kind, 0.0), seconds)


async def load(
    session: aiohttp.ClientSession, base: str, targets: dict[str, Iterator[str]], tally: Tally,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    """Cycle through every class of request until `stop` (bounded by the caller's timeout)."""
    while not stop.is_set():
        for kind, paths in targets.items():
            path = next(paths)
            started = time.monotonic()
            async with session.get(base + path) as r:
                await r.read()
                tally.add(kind, r.status, time.monotonic() - started)
        await asyncio.sleep(0.01)


async def phase(
    session: aiohttp.ClientSession, base: str, targets: dict[str, Iterator[str]], seconds: float
) -> Tally:
    tally, stop = Tally(), asyncio.Event()
    workers = [asyncio.ensure_future(load(session, base, targets, tally, stop)) for _ in range(4)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), 15)
    return tally


async def test_origin_killed_and_restarted_under_load(tmp_path: Path, samples: Path) -> None:
    copy_samples(tmp_path / "images", samples)
    edge_port, origin_port = free_port(), free_port()
    config = write_config(tmp_path / "config.yaml", stack_config(tmp_path, edge_port, origin_port))
    origin = start_service("origin", config, origin_port)
    edge = start_service("edge", config, edge_port)
    try:
        hashes = await seed_users(origin.url, 3, email_prefix="hardening")
        cached = [f"/avatar/{h}?s=64" for h in hashes]

        def targets(phase_name: str, first_size: int) -> dict[str, Iterator[str]]:
            """Cached paths, and paths no earlier request asked for (hashes nobody has, sizes
            never rendered from `first_size` up): those need the origin, or a photo's master."""

            def unseen(i: int) -> str:
                return hashlib.md5(f"{phase_name}-{i}@x.invalid".encode()).hexdigest()

            count = itertools.count
            return {
                "cached": itertools.cycle(cached),
                "new size": (
                    f"/avatar/{hashes[i % 3]}?s={first_size + (i // 3) % 256}" for i in count()
                ),
                "unknown, no d": (f"/avatar/{unseen(i)}" for i in count()),
                "unknown, d=identicon": (f"/avatar/{unseen(i)}?d=identicon&s=32" for i in count()),
            }

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for path in cached:  # warm: the variants and the lookups
                async with session.get(edge.url + path) as r:
                    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
            before = await phase(session, edge.url, targets("before", 300), 1.0)
            assert set(before.statuses["cached"]) == {200}

            kill_service(origin)  # SIGKILL: no graceful anything
            down = await phase(session, edge.url, targets("down", 1), 2.5)
            assert set(down.statuses["cached"]) == {200}, down.statuses
            assert set(down.statuses["unknown, d=identicon"]) == {200}, down.statuses
            assert set(down.statuses["unknown, no d"]) <= {502, 504}, down.statuses
            # sizes never rendered (1..256 px) still answer: each photo's master is kept in
            # memory (edge.cache.originals_bytes), so only the lookup had to be cached
            assert set(down.statuses["new size"]) == {200}, down.statuses
            assert down.slowest["unknown, no d"] < 2.5  # fails fast (2 s origin timeout at most)

            origin = start_service("origin", config, origin_port)  # same port, same database
            recovered_at = None
            deadline = time.monotonic() + 10
            probes = targets("recovery", 1)["unknown, no d"]  # a lookup the origin must answer
            while time.monotonic() < deadline:  # bounded: recovery must come by itself
                async with session.get(edge.url + next(probes)) as r:
                    await r.read()
                    if r.status == 200:
                        recovered_at = time.monotonic()
                        break
                await asyncio.sleep(0.1)
            assert recovered_at is not None, "the edge did not recover by itself"
            print(f"down: {dict(down.statuses)} slowest {down.slowest}")
            after = await phase(session, edge.url, targets("after", 1200), 1.0)
            assert set(after.statuses["cached"]) == {200}
            assert set(after.statuses["new size"]) == {200}, after.statuses
            assert set(after.statuses["unknown, no d"]) == {200}, after.statuses  # mp default
        # nothing already stored is lost: every user still has the same active photo
        async with aiohttp.ClientSession() as session:
            for avatar_hash in hashes:
                async with session.get(f"{origin.url}/v1/avatars/{avatar_hash}") as r:
                    assert r.status == 200
                    lookup = await r.json()
                async with session.get(f"{origin.url}/v1/photos/{lookup['photo_id']}/raw") as r:
                    assert r.status == 200 and len(await r.read()) > 1000
    finally:
        stop_service(edge)
        stop_service(origin)
