"""The story over HTTP: a user uploads photos to the origin, the edge serves the active one."""

from __future__ import annotations

import asyncio
import time

from tests.avatars.conftest import Stack, StartStack
from tests.avatars.images import is_photo, loader_of, size_of


async def wait_for_photo(stack: Stack, path: str, sample: bytes, within_s: float) -> float:
    """Poll the edge until `path` shows `sample`; returns the seconds it took."""
    started = time.monotonic()
    while True:
        response, body = await stack.get(path)
        assert response.status == 200
        if is_photo(body, sample):
            return time.monotonic() - started
        assert time.monotonic() - started < within_s, f"{path} still shows the old photo"
        await asyncio.sleep(0.05)


async def test_active_photo_at_exact_sizes_then_a_switch_shows_within_a_second(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut, coffee = sample_bytes("astronaut.jpg"), sample_bytes("coffee.jpg")
    stack = await start_stack(lookup_ttl_s=60)
    user = await stack.active_user(astronaut, coffee)
    md5 = user["hash_md5"]
    for size in (32, 80, 512):
        response, body = await stack.get(f"/avatar/{md5}?s={size}")
        assert response.status == 200, body
        assert size_of(body) == (size, size)
        assert response.headers["Content-Type"] == "image/jpeg"
        assert is_photo(body, astronaut) and not is_photo(body, coffee)
    response, body = await stack.get(f"/avatar/{md5}")  # no s: Gravatar's 80
    assert size_of(body) == (80, 80)
    assert stack.origin_calls["lookup"] == 1  # one lookup served every size
    await stack.activate(user, 1)  # the origin purges the edge's lookup
    took = await wait_for_photo(stack, f"/avatar/{md5}?s=80", coffee, within_s=1.0)
    assert took < 1.0
    response, body = await stack.get(f"/{md5}?s=80")  # the short route: same cache entry
    assert is_photo(body, coffee) and response.headers["X-Cache"] == "HIT-MEMORY"


async def test_without_purges_a_switch_shows_within_lookup_ttl(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut, coffee = sample_bytes("astronaut.jpg"), sample_bytes("coffee.jpg")
    stack = await start_stack(purges=False, lookup_ttl_s=0.5)
    user = await stack.active_user(astronaut, coffee)
    path = f"/avatar/{user['hash_sha256']}?s=40"
    _, body = await stack.get(path)
    assert is_photo(body, astronaut)
    await stack.activate(user, 1)
    took = await wait_for_photo(stack, path, coffee, within_s=0.5 + 0.5)
    assert took <= 1.0
    assert stack.origin_calls["lookup"] >= 2


async def test_md5_sha256_and_upper_case_hashes_give_the_same_image(
    start_stack: StartStack, sample_bytes
) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("astronaut.jpg"))
    md5, sha = user["hash_md5"], user["hash_sha256"]
    etags = set()
    for path in (f"/avatar/{md5}", f"/avatar/{sha}", f"/avatar/{md5.upper()}", f"/{sha.upper()}"):
        response, body = await stack.get(path + "?s=64")
        assert response.status == 200 and size_of(body) == (64, 64), path
        etags.add(response.headers["ETag"])
    assert len(etags) == 1


async def test_extensions_and_accept_pick_the_format(start_stack: StartStack, sample_bytes) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("coffee.jpg"))
    md5 = user["hash_md5"]
    for extension, content_type, loader in [
        (".png", "image/png", "pngload_buffer"),
        (".webp", "image/webp", "webpload_buffer"),
        (".jpg", "image/jpeg", "jpegload_buffer"),
        (".JPEG", "image/jpeg", "jpegload_buffer"),
    ]:
        response, body = await stack.get(f"/avatar/{md5}{extension}?s=48", Accept="image/avif")
        assert response.status == 200, extension
        assert response.headers["Content-Type"] == content_type, extension
        assert loader_of(body) == loader and size_of(body) == (48, 48)
        assert "Vary" not in response.headers  # the extension decided, not Accept
    response, body = await stack.get(f"/avatar/{md5}?s=48", Accept="image/webp,*/*")
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Vary"] == "Accept"
    response, body = await stack.get(f"/avatar/{md5}?s=48", Accept="*/*")
    assert response.headers["Content-Type"] == "image/jpeg"  # the photo's own format
    assert response.headers["Vary"] == "Accept"
    response, body = await stack.get(f"/avatar/{md5}?s=48&fm=png")
    assert response.headers["Content-Type"] == "image/png" and "Vary" not in response.headers


async def test_headers_hits_304_and_head(start_stack: StartStack, sample_bytes) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("astronaut.jpg"))
    path = f"/avatar/{user['hash_md5']}?s=100"
    first, body = await stack.get(path)
    assert first.headers["X-Cache"] == "MISS"
    assert first.headers["Cache-Status"] == "imgcdn; fwd=miss; stored"
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert "transform;dur=" in first.headers["Server-Timing"]
    assert "origin;dur=" in first.headers["Server-Timing"]
    assert "lookup;dur=" in first.headers["Server-Timing"]
    assert int(first.headers["Content-Length"]) == len(body)
    assert first.headers["Last-Modified"].endswith("GMT")
    assert "Age" not in first.headers
    etag = first.headers["ETag"]
    assert etag.startswith('"') and len(etag) == 34
    second, again = await stack.get(path)
    assert again == body and second.headers["ETag"] == etag
    assert second.headers["X-Cache"] == "HIT-MEMORY"
    assert second.headers["Cache-Status"].startswith("imgcdn; hit; ttl=")
    assert 0 <= int(second.headers["Age"]) <= 60
    assert "Server-Timing" not in second.headers
    not_modified, empty = await stack.get(path, **{"If-None-Match": f'W/"x", {etag}'})
    assert not_modified.status == 304 and empty == b""
    assert not_modified.headers["ETag"] == etag
    assert not_modified.headers["Cache-Control"] == "public, max-age=300"
    head = await stack.edge.head(path)
    assert head.status == 200 and await head.read() == b""
    assert int(head.headers["Content-Length"]) == len(body)
    assert head.headers["Content-Type"] == "image/jpeg"


async def test_unknown_parameters_keep_the_same_etag_and_cache_entry(
    start_stack: StartStack, sample_bytes
) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("astronaut.jpg"))
    base = f"/avatar/{user['hash_md5']}?s=60"
    first, _ = await stack.get(base)
    for extra in ("&v=123", "&foo=bar&v=9", "&_=1700000000"):
        response, _ = await stack.get(base + extra)
        assert response.headers["ETag"] == first.headers["ETag"], extra
        assert response.headers["X-Cache"] == "HIT-MEMORY", extra
    size_alias, _ = await stack.get(f"/avatar/{user['hash_md5']}?size=60&v=2")
    assert size_alias.headers["ETag"] == first.headers["ETag"]


async def test_size_out_of_range_is_a_400_naming_it(start_stack: StartStack, sample_bytes) -> None:
    stack = await start_stack()
    user = await stack.active_user(sample_bytes("astronaut.jpg"))
    md5 = user["hash_md5"]
    for query, named in [
        ("s=0", "s:"),
        ("s=2049", "s:"),
        ("s=abc", "s:"),
        ("s=-5", "s:"),
        ("s=1.5", "s:"),
        ("size=0", "size:"),
        ("w=9999", "w:"),
        ("s=10&size=20", "size:"),
        ("r=nc17", "r:"),
        ("d=mp&default=identicon", "default:"),
    ]:
        response, body = await stack.get(f"/avatar/{md5}?{query}")
        assert response.status == 400, query
        assert body.decode().startswith(named), (query, body)
        assert response.headers["Cache-Control"] == "no-store"
    edge_sizes = [(1, (1, 1)), (2048, (2048, 2048))]
    for size, expected in edge_sizes:
        response, body = await stack.get(f"/avatar/{md5}?s={size}")
        assert response.status == 200 and size_of(body) == expected
    response, body = await stack.get(f"/avatar/{md5}?w=40&h=20")
    assert size_of(body) == (40, 20)
    response, body = await stack.get(f"/avatar/{md5}?w=32")  # the seed's ?w=32: a square
    assert size_of(body) == (32, 32)


async def test_rating_above_the_requested_one_is_treated_as_absent(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack()
    user = await stack.active_user(astronaut, ratings=("r",))
    md5 = user["hash_md5"]
    for query, shows_photo in [
        ("", False),  # default rating g
        ("r=g", False),
        ("rating=pg", False),
        ("r=r", True),
        ("r=X", True),
    ]:
        response, body = await stack.get(f"/avatar/{md5}?s=50&{query}")
        assert response.status == 200, query
        assert is_photo(body, astronaut) is shows_photo, query
    response, _ = await stack.get(f"/avatar/{md5}?s=50&r=pg&d=404")
    assert response.status == 404


async def test_paths_that_are_not_hashes_are_404s_that_never_reach_the_origin(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    for path in (
        "/avatar/xyz",
        "/avatar/" + "a" * 31,
        "/avatar/" + "a" * 33,
        "/avatar/" + "a" * 48,
        "/" + "g" * 32,
        "/avatar/" + "a" * 32 + ".gif",
        "/avatar/" + "a" * 32 + "/x",
        "/avatar/",
        "/favicon.ico",
        "/" + "a" * 32 + ".png.png",
    ):
        response, _ = await stack.get(path)
        assert response.status == 404, path
    assert stack.origin_calls["lookup"] == 0
