"""Avatar lookups asked near the end of their TTL are refreshed in the background: answered
from the cache at once, never served past their TTL, one origin call however many ask."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge.lookup import REFRESH_AHEAD, AvatarLookups, Lookup
from edge.origin_client import Avatar
from transforms.errors import OriginFailed

TTL_S = 10.0
HASH = "0" * 32


class Origin:
    """`ask` for AvatarLookups: counts calls, answers version `version`, or fails."""

    def __init__(self) -> None:
        self.calls = 0
        self.version = 2
        self.failing = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def ask(self, avatar_hash: str) -> Avatar | None:
        self.calls += 1
        await self.gate.wait()
        if self.failing:
            raise OriginFailed("origin: down")
        return Avatar("p1", self.version, "g")


def lookups_with(origin: Origin, age_s: float) -> AvatarLookups:
    """Lookups holding version 1 of HASH, asked `age_s` seconds ago."""
    lookups = AvatarLookups(origin.ask, ttl_s=TTL_S, negative_ttl_s=5.0, keep_s=60.0)
    lookups.remember(HASH, Lookup(Avatar("p1", 1, "g"), time.time() - age_s))
    return lookups


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lookup_used_in_its_last_tenth_is_asked_again_in_the_background() -> None:
    origin = Origin()
    lookups = lookups_with(origin, TTL_S * (1 - REFRESH_AHEAD / 2))
    origin.gate.clear()  # the origin answers only when the test says so
    answers = [await lookups.get(HASH) for _ in range(5)]
    assert {a.avatar.version for a in answers if a.avatar} == {1}  # no one waited for it
    await settle()
    assert origin.calls == 1  # one flight for all five
    origin.gate.set()
    await settle()
    fresh = lookups.cached(HASH)
    assert fresh is not None and fresh.avatar == Avatar("p1", 2, "g")
    assert lookups.ttl_left(fresh, time.time()) > TTL_S * (1 - REFRESH_AHEAD)
    await settle()
    assert origin.calls == 1  # the refreshed answer is not in its last tenth
    await lookups.close()


async def test_a_lookup_used_earlier_in_its_ttl_is_not_asked_again() -> None:
    origin = Origin()
    lookups = lookups_with(origin, TTL_S * (1 - REFRESH_AHEAD * 2))
    found = await lookups.get(HASH)
    await settle()
    assert found.avatar == Avatar("p1", 1, "g") and origin.calls == 0
    await lookups.close()


async def test_a_failed_refresh_keeps_the_answer_until_its_ttl_and_backs_off() -> None:
    origin = Origin()
    origin.failing = True
    lookups = lookups_with(origin, TTL_S * (1 - REFRESH_AHEAD / 2))
    assert lookups.cached(HASH) is not None
    await settle()
    assert origin.calls == 1
    found = lookups.cached(HASH)  # still the cached answer, not a stale stand-in
    assert found is not None and not found.stale and found.avatar.version == 1
    await settle()
    assert origin.calls == 1  # backing off: no second call right away
    await lookups.close()


async def test_a_purge_during_a_refresh_keeps_its_answer_out_of_the_cache() -> None:
    origin = Origin()
    lookups = lookups_with(origin, TTL_S * (1 - REFRESH_AHEAD / 2))
    origin.gate.clear()
    lookups.cached(HASH)
    await settle()
    assert lookups.drop([HASH]) == 1  # the user changed their photo meanwhile
    origin.gate.set()
    await settle()
    assert lookups.cached(HASH) is None  # the next request asks the origin afresh
    await lookups.close()


def test_outside_an_event_loop_the_cache_is_only_read() -> None:
    lookups = AvatarLookups(origin_ask_never, ttl_s=TTL_S, negative_ttl_s=5.0, keep_s=60.0)
    lookups.remember(HASH, Lookup(Avatar("p1", 1, "g"), time.time() - TTL_S * 0.99))
    found = lookups.cached(HASH)
    assert found is not None and found.avatar.version == 1


async def origin_ask_never(avatar_hash: str) -> Avatar | None:
    pytest.fail("no origin call may start outside an event loop")
