"""Avatar variants through the shared tiers: photos and default images, immutable by key.

A variant's key names everything that makes its bytes (photo id + version, or default kind +
hash + initials; then size and format), so nothing here ever goes stale or needs a purge: the
only mutable part of an avatar is the lookup (edge/lookup.py). Concurrent misses for one key
run one transform; concurrent misses for different sizes of one photo share one origin fetch.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edge.avatar_render import render_default
from edge.cache import Entry, TieredCache
from edge.headers import COALESCED, Outcome, hit_outcome, strong_etag
from edge.metrics import Metrics
from edge.origin_client import Avatar, OriginClient, PhotoBytes
from edge.singleflight import SingleFlight
from transforms.pipeline import Rendered
from transforms.pool import TransformPool
from transforms.spec import Limits, TransformSpec

STORED = Outcome("MISS", fwd="miss", stored=True)
NOT_STORED = Outcome("MISS", fwd="miss")


@dataclass(frozen=True)
class Made:
    entry: Entry
    stored: bool
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class AvatarServed:
    entry: Entry
    outcome: Outcome
    timings_ms: dict[str, float] = field(default_factory=dict)
    from_cache: bool = True


class AvatarVariants:
    def __init__(
        self,
        tiers: TieredCache,
        pool: TransformPool,
        limits: Limits,
        origin: OriginClient,
        metrics: Metrics,
    ) -> None:
        self.tiers = tiers
        self.pool = pool
        self.limits = limits
        self.origin = origin
        self.metrics = metrics
        self.misses: SingleFlight[str, Made] = SingleFlight()
        self.photos: SingleFlight[str, PhotoBytes] = SingleFlight()

    async def photo(self, key: str, avatar: Avatar, spec: TransformSpec) -> AvatarServed:
        """The variant `key` of the avatar's photo: cached, or fetched and rendered once."""
        return await self._serve(key, lambda: self._make_photo(avatar, spec))

    async def default(
        self, key: str, kind: str, avatar_hash: str, initials: str, spec: TransformSpec
    ) -> AvatarServed:
        """The variant `key` of a default image (`d=` kind), drawn and rendered once."""

        async def make() -> Made:
            work = self.pool.run(render_default, kind, avatar_hash, initials, spec, self.limits)
            return await self._render(work, {}, last_modified=None)

        return await self._serve(key, make)

    async def _serve(self, key: str, make: Callable[[], Awaitable[Made]]) -> AvatarServed:
        hit = await self.tiers.get(key)
        if hit is not None:
            entry, tier = hit
            self.metrics.cache_hits.labels(tier=tier).inc()
            return AvatarServed(entry, hit_outcome(tier))
        self.metrics.cache_misses.inc()
        made, shared = await self.misses.run(key, lambda: self._store(key, make))
        if shared:
            self.metrics.coalesced.inc()
            return AvatarServed(made.entry, COALESCED, from_cache=False)
        outcome = STORED if made.stored else NOT_STORED
        return AvatarServed(made.entry, outcome, made.timings_ms, from_cache=False)

    async def _store(self, key: str, make: Callable[[], Awaitable[Made]]) -> Made:
        made = await make()
        return Made(made.entry, await self.tiers.set(key, made.entry), made.timings_ms)

    async def _make_photo(self, avatar: Avatar, spec: TransformSpec) -> Made:
        started = time.perf_counter()
        photo, _ = await self.photos.run(
            avatar.photo_id, lambda: self.origin.photo(avatar.photo_id)
        )
        timings = {"origin": (time.perf_counter() - started) * 1000}
        work = self.pool.render(photo.body, spec, self.limits)
        return await self._render(work, timings, last_modified=photo.last_modified)

    async def _render(
        self, work: Awaitable[Rendered], timings: dict[str, float], last_modified: float | None
    ) -> Made:
        started = time.perf_counter()
        try:
            rendered = await work
        finally:
            self.metrics.transform_queue.set(self.pool.queued)
        elapsed = time.perf_counter() - started
        self.metrics.transform_seconds.observe(elapsed)
        now = time.time()
        entry = Entry(
            body=rendered.body,
            content_type=rendered.content_type,
            etag=strong_etag(rendered.body),
            last_modified=last_modified or now,
            stored_at=now,
        )
        return Made(entry, stored=False, timings_ms={**timings, "transform": elapsed * 1000})

    async def close(self) -> None:
        await self.misses.close()
        await self.photos.close()
