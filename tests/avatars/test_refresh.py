"""Refresh ahead (edge/lookup.py): a lookup in use is asked again before it expires, in the
background, so no request waits for it; one past its TTL is still never served."""

from __future__ import annotations

import asyncio
import time

from edge.lookup import REFRESH_AFTER, AvatarLookups
from edge.origin_client import Avatar
from transforms.errors import OriginFailed

HASH = "0" * 32
TTL_S = 0.5
ORIGIN_S = 0.2  # how long the fake origin takes to answer


class Origin:
    """Answers each lookup after ORIGIN_S with the next of `answers` (the last one repeats)."""

    def __init__(self, *answers: Avatar | Exception | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def ask(self, avatar_hash: str) -> Avatar | None:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        await asyncio.sleep(ORIGIN_S)
        if isinstance(answer, Exception):
            raise answer
        return answer


def lookups(origin: Origin) -> AvatarLookups:
    return AvatarLookups(origin.ask, ttl_s=TTL_S, negative_ttl_s=TTL_S, keep_s=60)


async def timed_get(cache: AvatarLookups) -> tuple[Avatar | None, float]:
    started = time.monotonic()
    lookup = await cache.get(HASH)
    return lookup.avatar, time.monotonic() - started


async def test_a_lookup_used_near_its_expiry_is_refreshed_without_a_wait() -> None:
    old, new = Avatar("p1", 1, "g"), Avatar("p2", 1, "g")
    origin = Origin(old, new)
    cache = lookups(origin)
    assert (await timed_get(cache))[0] == old and origin.calls == 1
    await asyncio.sleep(REFRESH_AFTER * TTL_S / 2)
    avatar, took = await timed_get(cache)
    assert avatar == old and took < 0.05 and origin.calls == 1  # early in its TTL: no call
    await asyncio.sleep((REFRESH_AFTER / 2 + 0.05) * TTL_S)  # past REFRESH_AFTER of it
    avatar, took = await timed_get(cache)
    assert avatar == old and took < 0.05  # served at once ...
    await asyncio.sleep(0)
    assert origin.calls == 2  # ... while the origin is asked again
    for _ in range(3):  # one background call, however many ask meanwhile
        await cache.get(HASH)
    assert origin.calls == 2
    await asyncio.sleep(ORIGIN_S + 0.05)  # the first answer's TTL has run out by now
    avatar, took = await timed_get(cache)
    assert avatar == new and took < 0.05 and origin.calls == 2


async def test_a_lookup_nobody_used_before_it_expired_is_asked_for_and_waited_on() -> None:
    origin = Origin(None, Avatar("p1", 1, "g"))  # unknown, then registered
    cache = lookups(origin)
    assert (await timed_get(cache))[0] is None
    await asyncio.sleep(TTL_S + 0.05)
    avatar, took = await timed_get(cache)
    assert avatar == Avatar("p1", 1, "g") and took >= ORIGIN_S and origin.calls == 2


async def test_a_failing_refresh_keeps_the_answer_until_its_ttl_and_backs_off() -> None:
    old = Avatar("p1", 1, "g")
    origin = Origin(old, OriginFailed("origin: down"))
    cache = lookups(origin)
    await cache.get(HASH)
    await asyncio.sleep((REFRESH_AFTER + 0.05) * TTL_S)
    assert (await timed_get(cache))[0] == old
    await asyncio.sleep(0)
    assert origin.calls == 2
    await asyncio.sleep(ORIGIN_S + 0.02)  # the refresh failed: the origin is backed off
    assert cache.down_until > time.monotonic()
    await cache.get(HASH)
    assert origin.calls == 2  # no second refresh while backed off
    await asyncio.sleep(TTL_S)  # expired: the last known answer, served as stale
    lookup = await cache.get(HASH)
    assert lookup.avatar == old and lookup.stale


async def test_a_purge_during_a_refresh_wins() -> None:
    old, new = Avatar("p1", 1, "g"), Avatar("p2", 1, "g")
    origin = Origin(old, old, new)  # the refresh still sees the old photo, then the new one
    cache = lookups(origin)
    await cache.get(HASH)
    await asyncio.sleep((REFRESH_AFTER + 0.05) * TTL_S)
    await cache.get(HASH)  # starts the refresh
    assert cache.drop([HASH]) == 1  # the photo changed: purged while the refresh runs
    avatar, took = await timed_get(cache)
    assert avatar == new and took >= ORIGIN_S  # asked anew, not the refresh's older answer
    await asyncio.sleep(ORIGIN_S)  # the refresh ends; it must not overwrite the newer answer
    assert (await cache.get(HASH)).avatar == new and origin.calls == 3
    await cache.close()
