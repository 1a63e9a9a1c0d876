"""What the edge keeps for a long time is kept where CPython's cyclic GC does not walk it:
a full collection stops the loop for ~1 us per tracked object (170-240 ms with the caches
full, before these), so the memory tier's entries are plain tuples, memoized routes share
their spec and hold their headers themselves, and start-up's objects are frozen."""

from __future__ import annotations

import gc
import shutil
import weakref

from prometheus_client.parser import text_string_to_metric_families

from edge.appkeys import IMG_ROUTES
from edge.cache import Entry, MemoryTier
from edge.memo import Interner
from edge.server import settle_heap
from tests.edge.conftest import EdgeFactory, edge_config
from tests.gc_walk import tracked_held


def entry(i: int) -> Entry:
    return Entry(b"body %d" % i, "image/jpeg", f'"{i}"', 1.0, 2.0, "tag")


async def test_a_full_memory_tier_gives_the_gc_nothing_to_walk() -> None:
    tier = MemoryTier(1 << 30)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        assert await tier.set(f"k{i}", entry(i))
    gc.collect()  # untracks tuples of atomics
    assert len(gc.get_objects()) - before < 100  # not one per entry
    assert tier.get_now("k7") == entry(7)
    assert (await tier.get("k7")).etag == '"7"'
    assert tier.get_now("nope") is None


def test_the_interner_hands_out_the_first_equal_value_and_stays_bounded() -> None:
    def width(w: int) -> tuple[str, int]:
        return ("w", w)  # a new tuple each call

    shared = Interner(max_entries=2)
    first = width(80)
    assert shared(first) is first
    assert shared(width(80)) is first
    assert shared(width(40)) == width(40)
    later = width(20)
    assert shared(later) is later  # full: started over
    assert len(shared) == 1
    assert shared(width(80)) is not first  # forgotten, so no longer shared


async def test_img_routes_share_their_spec_and_are_their_own_header_slot(
    make_edge: EdgeFactory, tmp_path, images
) -> None:
    names = [f"copy{i}.jpg" for i in range(12)]
    for name in names:
        shutil.copy(images / "astronaut.jpg", images / name)
    client = await make_edge(edge_config(tmp_path, images))
    for name in names:
        for expected in ("MISS", "HIT-MEMORY"):  # the hit fills the route's headers
            r = await client.get(f"/img/{name}?w=40")
            assert r.status == 200
            assert r.headers["X-Cache"] == expected
    routes = list(client.app[IMG_ROUTES]._items.values())
    assert len(routes) == len(names)
    assert len({id(route.spec) for route in routes}) == 1
    # each route + the headers it keeps; the spec and the outcome are shared
    assert tracked_held(routes) <= 2 * len(routes) + 2


async def test_a_route_that_never_hit_holds_no_headers_of_its_own(
    make_edge: EdgeFactory, tmp_path, images
) -> None:
    """Most memoized routes are misses that never hit: they share one empty mapping until
    their first hit keeps headers."""
    for i in range(12):
        shutil.copy(images / "astronaut.jpg", images / f"copy{i}.jpg")
    client = await make_edge(edge_config(tmp_path, images))
    for i in range(12):
        r = await client.get(f"/img/copy{i}.jpg?w=40")
        assert r.status == 200 and r.headers["X-Cache"] == "MISS"
    routes = list(client.app[IMG_ROUTES]._items.values())
    assert len(routes) == 12
    assert tracked_held(routes) <= len(routes) + 2  # each route; the spec, the empty mapping


def gc_counts(text: str) -> dict[str, float]:
    return {
        s.labels["generation"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "imgcdn_edge_gc_seconds_count"
    }


async def test_gc_collections_are_timed_in_the_metrics(
    make_edge: EdgeFactory, tmp_path, images
) -> None:
    client = await make_edge(edge_config(tmp_path, images))
    before = gc_counts(await (await client.get("/metrics")).text())
    gc.collect()
    gc.collect()
    after = gc_counts(await (await client.get("/metrics")).text())
    assert after["2"] - before.get("2", 0.0) >= 2


class Node:
    other: object = None


def test_settle_heap_freezes_what_start_up_left_but_not_its_garbage() -> None:
    leftover = Node()
    leftover.other = leftover  # start-up garbage: a cycle nobody holds
    gone = weakref.ref(leftover)
    del leftover
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000
        assert gone() is None  # collected first: frozen, it would never be freed
    finally:
        gc.unfreeze()
