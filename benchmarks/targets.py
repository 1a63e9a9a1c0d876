"""What a scenario runs against: a stack we start, or an edge (and origin) given by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.scenarios import jpeg_size
from benchmarks.stack import Stack, StackOptions, total_transform_processes


@dataclass(frozen=True)
class Settings:
    """Everything the CLI decides for one scenario."""

    scenario: str
    duration_s: float = 10.0
    connections: int = 32
    runs: int = 1
    url: str | None = None  # benchmark this running edge instead of starting a stack
    origin_url: str | None = None  # with --url: seed avatar users through this origin
    workers: int = 1
    transform_processes: int = 0
    baseline: bool = True
    warmup_s: float | None = None  # None: the scenario's default
    users: int = 200
    generator: str = "auto"
    progressive: bool | None = None  # with --url: the edge's edge.transforms.jpeg_progressive
    overrides: dict[str, Any] = field(default_factory=dict)
    keep: bool = False
    paced: str | None = None  # "half" (of the closed-loop peak) or requests/s: a paced phase
    quiet_wait_s: float = 20.0  # before each measurement, wait this long at most for a quiet box
    pipeline: int = 1  # hit with wrk: requests each connection sends at once (HTTP/1.1)


@dataclass
class Target:
    edge_url: str
    origin_url: str | None
    workers: int
    transform_processes: int
    progressive: bool
    stack: Stack | None = None

    def pids(self) -> dict[str, int]:
        return self.stack.pids() if self.stack else {}


@asynccontextmanager
async def open_target(settings: Settings) -> AsyncIterator[Target]:
    """Start a fresh stack (or wrap `settings.url`) and stop it afterwards."""
    if settings.url:
        yield Target(
            settings.url.rstrip("/"),
            settings.origin_url.rstrip("/") if settings.origin_url else None,
            settings.workers,
            total_transform_processes(settings.transform_processes, settings.workers),
            bool(settings.progressive),
        )
        return
    stack = Stack(
        StackOptions(
            workers=settings.workers,
            transform_processes=settings.transform_processes,
            overrides=settings.overrides,
            keep_dir=settings.keep,
        )
    )
    await stack.start()
    try:
        yield Target(
            stack.edge_url,
            stack.origin_url,
            stack.workers,
            stack.transform_processes,
            stack.progressive,
            stack,
        )
    finally:
        stack.stop()


async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def check_jpeg(url: str, width: int, height: int | None = None) -> bytes:
    """GET `url` and insist on a 200 JPEG of that size: proof the edge really transformed."""
    status, headers, body = await fetch(url)
    if status != 200:
        raise RuntimeError(f"{url} -> {status}: {body[:200]!r}")
    size = jpeg_size(body)
    if size is None or size[0] != width or (height is not None and size[1] != height):
        raise RuntimeError(
            f"{url}: expected a {width}x{height or '?'} JPEG, got {size} "
            f"({headers.get('Content-Type')})"
        )
    return body


async def check_image(url: str, content_type: str | None = None) -> bytes:
    """GET `url` and insist on a 200 image (of `content_type` when given)."""
    status, headers, body = await fetch(url)
    got = headers.get("Content-Type", "")
    if status != 200 or not got.startswith(content_type or "image/"):
        raise RuntimeError(
            f"{url} -> {status} {got}: expected {content_type or 'an image'}; {body[:120]!r}"
        )
    return body
