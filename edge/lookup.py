"""hash -> (photo_id, version, rating): the one mutable thing about an avatar, cached briefly.

- A found hash is kept `lookup_ttl_s` (`fresh`); a 404 `negative_ttl_s` (`negative`).
- All three hold many hashes (`known` a day, up to 100k), so they keep plain tuples of
  atomics in an `Expiring` map: nothing per hash for the cyclic GC's full collections to walk
  (a TTLCache entry was a Lookup, an Avatar and a link object: ~300k tracked objects at
  capacity, ~300 ms of stopped loop per full collection).
- Concurrent lookups of one hash make one origin call (single-flight).
- The last good answer is also kept for `stale_if_error_s` (`known`): when the origin fails,
  known hashes keep being served (as stale) instead of failing.
- After an origin failure, lookups that miss the caches do not call the origin for
  `DOWN_BACKOFF_S`: they fall back (or fail) at once instead of each waiting for a timeout.
- A purge drops a hash from all three. A lookup already in flight when a purge arrives still
  answers its own waiters, but is not cached: its answer may predate the change.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, NamedTuple, TypeVar

from edge.origin_client import Avatar
from edge.singleflight import SingleFlight
from transforms.errors import OriginFailed, Timeout

MAX_ENTRIES = 100_000  # per cache; a lookup is ~300 bytes
DOWN_BACKOFF_S = 1.0
ORIGIN_DOWN = (OriginFailed, Timeout)

Ask = Callable[[str], Awaitable[Avatar | None]]
V = TypeVar("V")
KnownRow = tuple[str, int, str, float]  # photo_id, version, rating, checked_at


class Expiring(Generic[V]):
    """A map of at most `max_entries` whose entries expire `ttl_s` after they were set; when
    full, the oldest set makes room. cachetools' TTLCache keeps a link object per entry, each
    one more object for the cyclic GC to walk; this keeps (expiry, value) tuples in an
    OrderedDict, which cost the GC nothing when the values are atomic."""

    def __init__(
        self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        return self._live(self._items.get(key))

    def set(self, key: str, value: V) -> None:
        items, now = self._items, self.clock()
        items.pop(key, None)  # set again: it moves to the end, the order expiries come in
        while items:
            expires, _ = next(iter(items.values()))
            if expires > now and len(items) < self.max_entries:
                break
            items.popitem(last=False)
        items[key] = (now + self.ttl_s, value)

    def pop(self, key: str) -> V | None:
        """Remove `key`; its value if it had not expired."""
        return self._live(self._items.pop(key, None))

    def _live(self, found: tuple[float, V] | None) -> V | None:
        return None if found is None or found[0] <= self.clock() else found[1]

    def __len__(self) -> int:
        return len(self._items)


class Lookup(NamedTuple):
    """One answer about a hash, built from a kept row when asked for (`as_lookup`)."""

    avatar: Avatar | None  # None: no such user, or no active photo
    checked_at: float  # epoch seconds when the origin said so
    stale: bool = False  # the origin is failing; this is the last answer it gave


def as_lookup(row: KnownRow, stale: bool = False) -> Lookup:
    """The `Lookup` a kept row stands for. Rows are plain tuples because the cyclic GC stops
    tracking a tuple of atomics, but never a named tuple; `tuple.__new__` rebuilds the two
    named ones in ~0.3 us (an avatar hit reads `fresh`)."""
    avatar = tuple.__new__(Avatar, row[:3])
    return tuple.__new__(Lookup, (avatar, row[3], stale))


class AvatarLookups:
    def __init__(self, ask: Ask, *, ttl_s: float, negative_ttl_s: float, keep_s: float) -> None:
        self.ask = ask
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.fresh: Expiring[KnownRow] = Expiring(MAX_ENTRIES, max(ttl_s, 1e-6))
        self.negative: Expiring[float] = Expiring(MAX_ENTRIES, negative_ttl_s)  # -> checked_at
        self.known: Expiring[KnownRow] = Expiring(MAX_ENTRIES, max(keep_s, ttl_s))
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
        found = self.fresh.get(avatar_hash)
        if found is not None:
            return as_lookup(found)
        checked_at = self.negative.get(avatar_hash)
        return None if checked_at is None else Lookup(None, checked_at)

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
        avatar = lookup.avatar
        if avatar is None:
            self.negative.set(avatar_hash, lookup.checked_at)
            self.fresh.pop(avatar_hash)
            self.known.pop(avatar_hash)
        else:
            row = (avatar.photo_id, avatar.version, avatar.rating, lookup.checked_at)
            self.fresh.set(avatar_hash, row)
            self.known.set(avatar_hash, row)
            self.negative.pop(avatar_hash)

    def fallback(self, avatar_hash: str, err: OriginFailed | Timeout) -> Lookup:
        known = self.known.get(avatar_hash)
        if known is None:
            raise err
        return as_lookup(known, stale=True)

    def drop(self, hashes: Iterable[str]) -> int:
        """Forget these hashes (a purge); returns how many were cached."""
        self.purges += 1
        dropped = 0
        for avatar_hash in {h.strip().lower() for h in hashes}:
            found = [
                self.fresh.pop(avatar_hash),
                self.negative.pop(avatar_hash),
                self.known.pop(avatar_hash),
            ]
            dropped += any(entry is not None for entry in found)
        return dropped

    async def close(self) -> None:
        await self.flights.close()
