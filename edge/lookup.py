"""hash -> (photo_id, version, rating): the one mutable thing about an avatar, cached briefly.

- A found hash is kept `lookup_ttl_s` (`fresh`); a 404 `negative_ttl_s` (`negative`).
- Concurrent lookups of one hash make one origin call (single-flight).
- The last good answer is also kept for `stale_if_error_s` (`known`): when the origin fails,
  known hashes keep being served (as stale) instead of failing.
- After an origin failure, lookups that miss the caches do not call the origin for
  `DOWN_BACKOFF_S`: they fall back (or fail) at once instead of each waiting for a timeout.
- A purge drops a hash from all three. A lookup already in flight when a purge arrives still
  answers its own waiters, but is not cached: its answer may predate the change.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from cachetools import TTLCache

from edge.origin_client import Avatar
from edge.singleflight import SingleFlight
from transforms.errors import OriginFailed, Timeout

MAX_ENTRIES = 100_000  # per cache; a lookup is ~300 bytes
DOWN_BACKOFF_S = 1.0
ORIGIN_DOWN = (OriginFailed, Timeout)

Ask = Callable[[str], Awaitable[Avatar | None]]


@dataclass(frozen=True)
class Lookup:
    avatar: Avatar | None  # None: no such user, or no active photo
    checked_at: float  # epoch seconds when the origin said so
    stale: bool = False  # the origin is failing; this is the last answer it gave


class AvatarLookups:
    def __init__(self, ask: Ask, *, ttl_s: float, negative_ttl_s: float, keep_s: float) -> None:
        self.ask = ask
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.fresh: TTLCache[str, Lookup] = TTLCache(MAX_ENTRIES, ttl=max(ttl_s, 1e-6))
        self.negative: TTLCache[str, Lookup] = TTLCache(MAX_ENTRIES, max(negative_ttl_s, 1e-6))
        self.known: TTLCache[str, Lookup] = TTLCache(MAX_ENTRIES, ttl=max(keep_s, ttl_s, 1e-6))
        self.flights: SingleFlight[tuple[str, int], Lookup] = SingleFlight()
        self.purges = 0  # bumped by every purge: flights started before one are not cached
        self.down_until = 0.0  # monotonic

    async def get(self, avatar_hash: str) -> Lookup:
        """The cached answer, or the origin's (one call however many ask); raises 502/504
        when the origin fails and this hash has no last known answer."""
        cached = self.cached(avatar_hash)
        if cached is not None:
            return cached
        if time.monotonic() < self.down_until:
            return self.fallback(avatar_hash, OriginFailed("origin: failing, retried shortly"))
        lookup, _ = await self.flights.run(
            (avatar_hash, self.purges), lambda: self._ask(avatar_hash)
        )
        return lookup

    def cached(self, avatar_hash: str) -> Lookup | None:
        """The origin's answer while it is fresh (never a stale one: those are not kept)."""
        return self.fresh.get(avatar_hash) or self.negative.get(avatar_hash)

    def ttl_left(self, lookup: Lookup, now: float) -> float:
        """Seconds until the edge asks the origin again (negative once stale)."""
        ttl = self.ttl_s if lookup.avatar is not None else self.negative_ttl_s
        return ttl - (now - lookup.checked_at)

    async def _ask(self, avatar_hash: str) -> Lookup:
        purges = self.purges
        try:
            avatar = await self.ask(avatar_hash)
        except ORIGIN_DOWN as err:
            self.down_until = time.monotonic() + DOWN_BACKOFF_S
            return self.fallback(avatar_hash, err)
        lookup = Lookup(avatar, time.time())
        if purges == self.purges:
            self.remember(avatar_hash, lookup)
        return lookup

    def remember(self, avatar_hash: str, lookup: Lookup) -> None:
        if lookup.avatar is None:
            self.negative[avatar_hash] = lookup
            self.fresh.pop(avatar_hash, None)
            self.known.pop(avatar_hash, None)
        else:
            self.fresh[avatar_hash] = lookup
            self.known[avatar_hash] = lookup
            self.negative.pop(avatar_hash, None)

    def fallback(self, avatar_hash: str, err: OriginFailed | Timeout) -> Lookup:
        known = self.known.get(avatar_hash)
        if known is None:
            raise err
        return dataclasses.replace(known, stale=True)

    def drop(self, hashes: Iterable[str]) -> int:
        """Forget these hashes (a purge); returns how many were cached."""
        self.purges += 1
        dropped = 0
        for avatar_hash in {h.strip().lower() for h in hashes}:
            found = [c.pop(avatar_hash, None) for c in (self.fresh, self.negative, self.known)]
            dropped += any(entry is not None for entry in found)
        return dropped

    async def close(self) -> None:
        await self.flights.close()
