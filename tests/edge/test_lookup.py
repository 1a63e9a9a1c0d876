"""The avatar lookup caches: `Expiring` (a bounded map whose entries expire), and what the
long-lived ones cost the cyclic GC."""

from __future__ import annotations

import gc

import pytest

from edge.lookup import AvatarLookups, Expiring
from edge.origin_client import Avatar
from tests.gc_walk import tracked_held
from transforms.errors import OriginFailed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_ttl_after_they_were_set_and_the_oldest_makes_room() -> None:
    clock = Clock()
    kept: Expiring[str] = Expiring(max_entries=3, ttl_s=10, clock=clock)
    kept.set("a", "1")
    clock.now += 4
    kept.set("b", "2")
    assert kept.get("a") == "1"
    clock.now += 6  # "a" is 10 s old
    assert kept.get("a") is None and kept.get("b") == "2"
    assert kept.pop("a") is None  # expired: nothing to report
    for key in "cde":
        kept.set(key, key)
    assert len(kept) == 3 and kept.get("b") is None  # full: the oldest went
    kept.set("c", "again")  # set again: now the newest
    kept.set("f", "f")
    assert kept.get("c") == "again" and kept.get("d") is None
    assert kept.pop("e") == "e" and kept.get("e") is None


def test_expired_entries_go_as_new_ones_come() -> None:
    clock = Clock()
    kept: Expiring[int] = Expiring(max_entries=100, ttl_s=1, clock=clock)
    for i in range(50):
        kept.set(str(i), i)
    clock.now += 1
    kept.set("new", 1)
    assert len(kept) == 1


def hashes(n: int) -> dict[str, Avatar | None]:
    """Every other hash has a photo."""
    return {f"{i:032x}": Avatar(f"photo{i}", i, "pg") if i % 2 else None for i in range(n)}


async def test_fresh_answers_cost_the_gc_nothing() -> None:
    """`fresh` is read on every avatar hit and holds every found hash for a minute."""
    answers = hashes(2000)

    async def ask(avatar_hash: str) -> Avatar | None:
        return answers[avatar_hash]

    lookups = AvatarLookups(ask, ttl_s=60, negative_ttl_s=60, keep_s=86_400)
    for avatar_hash in answers:
        await lookups.get(avatar_hash)
    gc.collect()
    gc.collect()  # a tuple is untracked once what it holds is: an outer one may need a second
    assert len(lookups.fresh) == 1000
    assert tracked_held(lookups.fresh._items.values()) == 0
    found = next(h for h, avatar in answers.items() if avatar is not None)
    cached = lookups.cached(found)
    assert cached is not None and cached.avatar == answers[found] and not cached.stale


async def test_known_and_absent_hashes_cost_the_gc_nothing_and_still_stand_in() -> None:
    answers = hashes(2000)
    failing = False

    async def ask(avatar_hash: str) -> Avatar | None:
        if failing:
            raise OriginFailed("origin: down")
        return answers[avatar_hash]

    # found hashes are fresh for 1 us, so only `known` (a day) and `negative` keep them
    lookups = AvatarLookups(ask, ttl_s=1e-6, negative_ttl_s=60, keep_s=86_400)
    gc.collect()
    before = len(gc.get_objects())
    for avatar_hash in answers:
        await lookups.get(avatar_hash)
    gc.collect()
    assert len(gc.get_objects()) - before < 200  # not a few per hash

    failing = True
    found = next(h for h, avatar in answers.items() if avatar is not None)
    stale = await lookups.get(found)
    assert stale.stale and stale.avatar == answers[found]
    absent = next(h for h, avatar in answers.items() if avatar is None)
    still = await lookups.get(absent)  # its 404 is fresh for a minute
    assert still.avatar is None and not still.stale
    assert lookups.drop([found, absent]) == 2
    with pytest.raises(OriginFailed):
        await lookups.get(found)  # forgotten: nothing to stand in
