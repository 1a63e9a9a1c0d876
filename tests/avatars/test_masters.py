"""Per-photo masters at the edge: the first small square of a photo keeps a master, and the
other small sizes come from it, without the original (transforms/master.py)."""

from __future__ import annotations

import asyncio
import dataclasses

from edge.app import create_app as create_edge
from edge.appkeys import AVATARS, ORIGINALS
from edge.avatar_variants import KeptMaster, kept_master, master_entry
from edge.cache import Entry
from edge.diskkeys import SYNC_S
from edge.origin_client import PhotoBytes
from tests.avatars.conftest import StartStack
from tests.avatars.images import is_photo, size_of
from tests.transforms.test_held import Frames
from transforms.master import Master


async def test_small_sizes_come_from_the_master_not_the_original(
    start_stack: StartStack, sample_bytes, monkeypatch
) -> None:
    frames = Frames(monkeypatch)
    coffee = sample_bytes("coffee.jpg")
    stack = await start_stack()
    user = await stack.active_user(coffee)
    md5, photo_id = user["hash_md5"], user["photo_ids"][0]
    response, body = await stack.get(f"/avatar/{md5}?s=64")
    assert response.status == 200 and stack.origin_calls["raw"] == 1
    originals = stack.edge.app[ORIGINALS]
    version = originals._entries[("master", photo_id)][0]
    assert originals.get(("master", photo_id), version, KeptMaster) is not None
    # the original is only demoted (kept while there is room): drop it to see who serves
    assert originals.get(("photo", photo_id), version, PhotoBytes) is not None
    originals.discard(("photo", photo_id))
    for size in (256, 128, 80, 32):
        response, body = await stack.get(f"/avatar/{md5}?s={size}")
        assert response.headers["X-Cache"] == "MISS"
        assert "origin;" not in response.headers["Server-Timing"]
        assert size_of(body) == (size, size) and is_photo(body, coffee)
    assert stack.origin_calls["raw"] == 1  # no size after the first needed the original
    carried = [size for size in frames.last(4) if size > 16 * 1024]
    assert len(carried) == 1  # the master crossed to a worker once, then was held there
    response, body = await stack.get(f"/avatar/{md5}?s=300")  # larger than the master
    assert size_of(body) == (300, 300) and stack.origin_calls["raw"] == 2


async def test_sizes_asked_together_share_one_master(start_stack: StartStack, sample_bytes) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("astronaut.jpg"))
    sizes = (32, 48, 64, 80, 100, 128, 200, 256)
    avatars = stack.edge.app[AVATARS]
    made: list[int] = []
    make_master = avatars._make_master

    async def counting(*args: object) -> object:
        made.append(1)
        return await make_master(*args)  # type: ignore[arg-type]

    avatars._make_master = counting  # type: ignore[method-assign]
    answers = await asyncio.gather(
        *(stack.get(f"/avatar/{user['hash_md5']}?s={size}") for size in sizes)
    )
    assert [size_of(body) for _, body in answers] == [(s, s) for s in sizes]
    assert made == [1]  # one render from the original; the other sizes waited for its master


async def test_no_master_when_switched_off_or_for_other_formats(
    start_stack: StartStack, sample_bytes
) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("rocket.jpg"))
    md5 = user["hash_md5"]
    await stack.get(f"/avatar/{md5}?s=64&fm=webp")  # WebP: libvips from the original
    originals = stack.edge.app[ORIGINALS]
    assert not any(key[0] == "master" for key in originals._entries)
    stack.edge.app[AVATARS].from_larger = False
    await stack.get(f"/avatar/{md5}?s=64")
    assert not any(key[0] == "master" for key in originals._entries)


async def test_another_edge_process_uses_the_master_from_the_shared_disk(
    start_stack: StartStack, sample_bytes, aiohttp_client, avatar_pool
) -> None:
    """Two edges on one cache directory, as `edge.workers` processes are: a master one of
    them made serves the other's new sizes, without the original."""
    pendants = sample_bytes("pendants.jpg")
    stack = await start_stack()
    config = dataclasses.replace(stack.edge_config, port=0)
    other = await aiohttp_client(create_edge(config, pool=avatar_pool))
    user = await stack.active_user(pendants)
    md5 = user["hash_md5"]
    response, _ = await stack.get(f"/avatar/{md5}?s=128")
    assert response.status == 200 and stack.origin_calls["raw"] == 1
    await asyncio.sleep(SYNC_S)  # until `other` trusts its filter of the disk's keys no longer
    for size in (64, 40):
        response = await other.get(f"/avatar/{md5}?s={size}")
        body = await response.read()
        assert (
            response.headers["X-Cache"] == "MISS"
            and "origin;" not in response.headers["Server-Timing"]
        )
        assert size_of(body) == (size, size) and is_photo(body, pendants)
    assert stack.origin_calls["raw"] == 1  # the other process fetched no original


def test_a_master_survives_the_disk_entry_round_trip() -> None:
    kept = KeptMaster(Master(b"\xff\xd8jpeg", 200, "png"), last_modified=1234.5)
    entry = Entry.decode(master_entry(kept).encode())
    assert kept_master(entry) == kept
    variant = Entry(b"\xff\xd8", "image/jpeg", '"e"', 1.0, 2.0)
    assert kept_master(variant) is None  # a variant is not a master
    odd = Entry(b"x", "image/jpeg; imgcdn-master; side=big; auto=jpeg", "", 1.0, 2.0)
    assert kept_master(odd) is None
