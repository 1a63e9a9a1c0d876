"""/img and /raw against a real edge on 127.0.0.1 with a directory source of real photos."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import pyvips
from aiohttp.test_utils import TestClient

from edge.signing import sign_url
from imgcdn.config import SecurityConfig
from tests.edge.conftest import EdgeFactory, edge_config, with_cache

IMAGE_HEADERS = ("Content-Type", "Content-Length", "ETag", "Cache-Control", "Last-Modified")


def image(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


async def raw_get(client: TestClient, target: str) -> tuple[int, bytes]:
    """Send `target` byte for byte (no client-side normalisation); return (status, body)."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_miss_then_hit_memory_with_every_header(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    first = await client.get("/img/astronaut.jpg?w=120&fm=webp")
    assert first.status == 200
    body = await first.read()
    assert image(body).width == 120 and first.headers["Content-Type"] == "image/webp"
    for name in IMAGE_HEADERS:
        assert name in first.headers
    assert first.headers["Content-Length"] == str(len(body))
    assert first.headers["ETag"].startswith('"') and not first.headers["ETag"].startswith("W/")
    assert first.headers["Cache-Control"].startswith("public, max-age=86400")
    assert first.headers["X-Cache"] == "MISS"
    assert first.headers["Cache-Status"] == "imgcdn; fwd=miss; stored"
    timing = first.headers["Server-Timing"]
    assert "origin;dur=" in timing and "transform;dur=" in timing
    assert "Age" not in first.headers

    second = await client.get("/img/astronaut.jpg?w=120&fm=webp")
    assert await second.read() == body
    assert second.headers["X-Cache"] == "HIT-MEMORY"
    assert second.headers["Cache-Status"].startswith("imgcdn; hit; ttl=")
    assert second.headers["ETag"] == first.headers["ETag"]
    assert int(second.headers["Age"]) >= 0
    assert "Server-Timing" not in second.headers

    # Same variant, other spelling (alias, default quality): the same cache entry.
    third = await client.get("/img/astronaut.jpg?width=120&q=80&fm=webp&v=123")
    assert third.headers["X-Cache"] == "HIT-MEMORY"


async def test_restart_on_the_same_cache_dir_hits_disk(make_edge: EdgeFactory, tmp_path, images):
    config = edge_config(tmp_path, images)
    first = await make_edge(config)
    miss = await first.get("/img/photos/coffee.jpg?w=64")
    assert miss.headers["X-Cache"] == "MISS"
    miss_body = await miss.read()
    await first.close()
    second = await make_edge(config)
    hit = await second.get("/img/photos/coffee.jpg?w=64")
    assert hit.headers["X-Cache"] == "HIT-DISK"
    assert hit.headers["Cache-Status"].endswith("detail=disk")
    assert await hit.read() == miss_body
    assert (await second.get("/img/photos/coffee.jpg?w=64")).headers["X-Cache"] == "HIT-MEMORY"


async def test_memory_budget_evicts_lru_and_holds(make_edge: EdgeFactory, tmp_path, images):
    budget = 40_000
    client = await make_edge(with_cache(edge_config(tmp_path, images), memory_bytes=budget))
    sizes = []
    for width in (200, 210, 220, 230, 240, 250):
        r = await client.get(f"/img/astronaut.jpg?w={width}&fm=jpeg")
        sizes.append(len(await r.read()))
    assert sum(sizes) > budget  # the test only means something if the budget overflowed
    metrics = await (await client.get("/metrics")).text()
    [line] = [
        ln for ln in metrics.splitlines() if ln.startswith('imgcdn_edge_cache_bytes{tier="memory"}')
    ]
    assert 0 < float(line.split()[-1]) <= budget
    oldest = await client.get("/img/astronaut.jpg?w=200&fm=jpeg")
    assert oldest.headers["X-Cache"] == "HIT-DISK"  # evicted from memory, still on disk
    newest = await client.get("/img/astronaut.jpg?w=250&fm=jpeg")
    assert newest.headers["X-Cache"] == "HIT-MEMORY"


async def test_if_none_match_gets_304_and_head_has_no_body(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(edge_config(tmp_path, images))
    first = await client.get("/img/astronaut.jpg?w=50")
    etag = first.headers["ETag"]
    not_modified = await client.get("/img/astronaut.jpg?w=50", headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert await not_modified.read() == b""
    assert not_modified.headers["ETag"] == etag
    assert not_modified.headers["Vary"] == "Accept"
    other = await client.get("/img/astronaut.jpg?w=50", headers={"If-None-Match": '"nope"'})
    assert other.status == 200
    head = await client.head("/img/astronaut.jpg?w=50")
    assert head.status == 200
    assert head.headers["Content-Length"] == first.headers["Content-Length"]
    assert await head.read() == b""
    head_miss = await client.head("/img/astronaut.jpg?w=51")  # HEAD on a miss renders too
    assert head_miss.headers["X-Cache"] == "MISS" and int(head_miss.headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    ("query", "accept", "content_type", "vary"),
    [
        ("w=40", "image/avif,image/webp,*/*", "image/avif", True),
        ("w=40", "image/webp,*/*", "image/webp", True),
        ("w=40", "*/*", "image/jpeg", True),  # auto fell back to the source's format: still varies
        ("w=40", None, "image/jpeg", True),
        ("w=40&fm=auto", "image/webp", "image/webp", True),
        ("w=40&fm=png", "image/webp", "image/png", False),
        ("w=40&fm=jpeg", None, "image/jpeg", False),
    ],
)
async def test_vary_accept_exactly_when_fm_auto_applies(
    make_edge: EdgeFactory, tmp_path, images, query, accept, content_type, vary
):
    client = await make_edge(edge_config(tmp_path, images))
    headers = {"Accept": accept} if accept else {}
    r = await client.get(f"/img/astronaut.jpg?{query}", headers=headers)
    assert r.status == 200
    assert r.headers["Content-Type"] == content_type
    assert image(await r.read()).width == 40
    assert ("Vary" in r.headers) is vary
    if vary:
        assert r.headers["Vary"] == "Accept"


async def test_raw_serves_the_original_bytes(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    r = await client.get("/raw/alpha.png", headers={"Accept": "image/webp"})
    assert r.status == 200
    assert await r.read() == (images / "alpha.png").read_bytes()
    assert r.headers["Content-Type"] == "image/png"
    assert "Vary" not in r.headers
    assert (await client.get("/raw/alpha.png")).headers["X-Cache"] == "HIT-MEMORY"
    assert (await client.get("/raw/notes.txt")).status == 415
    assert (await client.get("/raw/missing.png")).status == 404


@pytest.mark.parametrize(
    ("target", "status", "says"),
    [
        ("/img/astronaut.jpg?w=0", 400, "w:"),
        ("/img/astronaut.jpg?w=abc", 400, "w:"),
        ("/img/astronaut.jpg?w=99999", 400, "w:"),
        ("/img/astronaut.jpg?fit=squash", 400, "fit:"),
        ("/img/astronaut.jpg?fm=bmp", 400, "fm:"),
        ("/img/astronaut.jpg?q=101", 400, "q:"),
        ("/img/astronaut.jpg?dpr=9", 400, "dpr:"),
        ("/img/astronaut.jpg?blur=0", 400, "blur:"),
        ("/img/astronaut.jpg?w=10&width=20", 400, "more than once"),
        ("/img/nope.jpg", 404, "not found"),
        ("/img/photos", 404, "not found"),
        ("/img/notes.txt", 415, "not an image"),
        ("/nothing-here", 404, "not found"),
    ],
)
async def test_refusals_are_one_plain_line(
    make_edge: EdgeFactory, tmp_path, images, target, status, says
):
    client = await make_edge(edge_config(tmp_path, images))
    r = await client.get(target)
    assert r.status == status
    assert r.headers["Content-Type"].startswith("text/plain")
    text = await r.text()
    assert says in text and text.count("\n") == 1 and "Traceback" not in text


async def test_corrupt_image_is_422(make_edge: EdgeFactory, tmp_path, images):
    (images / "broken.jpg").write_bytes((images / "astronaut.jpg").read_bytes()[:3000])
    client = await make_edge(edge_config(tmp_path, images))
    assert (await client.get("/img/broken.jpg?w=10")).status == 422


async def test_source_over_max_src_bytes_is_413(make_edge: EdgeFactory, tmp_path, images):
    config = edge_config(tmp_path, images)
    config = config.__class__(
        **{
            **config.__dict__,
            "transforms": config.transforms.__class__(processes=2, max_src_bytes=10_000),
        }
    )
    client = await make_edge(config)
    r = await client.get("/img/astronaut.jpg?w=10")
    assert r.status == 413 and "max_src_bytes" in await r.text()


@pytest.mark.parametrize(
    "target",
    [
        "/img/../astronaut.jpg",
        "/img/photos/../../outside.jpg",
        "/img/%2e%2e/outside.jpg",
        "/img/photos/%2E%2E/%2E%2E/outside.jpg",
        "/img/..%2foutside.jpg",
        "/img/%2foutside.jpg",
        "/img//etc/passwd",
        "/img/photos%5c..%5c..%5coutside.jpg",
        "/img/astronaut.jpg%00.png",
        "/img/./astronaut.jpg",
        "/img/escape.jpg",  # a symlink inside the folder pointing outside it
        "/img/escape-dir/outside.jpg",  # a symlinked directory pointing outside
        "/raw/../outside.jpg",
        "/raw/escape.jpg",
    ],
)
async def test_traversal_is_400_and_never_reads_outside(
    make_edge: EdgeFactory, tmp_path: Path, images: Path, target: str
):
    (tmp_path / "outside.jpg").write_bytes((images / "astronaut.jpg").read_bytes())
    os.symlink(tmp_path / "outside.jpg", images / "escape.jpg")
    os.symlink(tmp_path, images / "escape-dir")
    client = await make_edge(edge_config(tmp_path, images))
    status, body = await raw_get(client, target)
    assert status == 400, body
    assert b"path" in body


async def test_symlink_inside_the_folder_is_fine(make_edge: EdgeFactory, tmp_path, images):
    os.symlink(images / "photos" / "coffee.jpg", images / "alias.jpg")
    client = await make_edge(edge_config(tmp_path, images))
    assert (await client.get("/img/alias.jpg?w=20")).status == 200


async def test_signed_urls(make_edge: EdgeFactory, tmp_path, images):
    key = "k3y"
    config = edge_config(tmp_path, images, security=SecurityConfig(signing_key=key))
    client = await make_edge(config)
    good = sign_url("/img/astronaut.jpg?w=30&fm=png", key)
    r = await client.get(good)
    assert r.status == 200 and image(await r.read()).width == 30
    sig = good.rsplit("sig=", 1)[1]
    refused = [
        "/img/astronaut.jpg?w=30&fm=png",  # missing
        good.replace(sig, sig[:-2]),  # truncated
        good.replace(sig, "A" * len(sig)),  # wrong
        good.replace("w=30", "w=31"),  # other parameters
        good + "&blur=5",  # a parameter added
        sign_url("/img/astronaut.jpg?w=30", "other-key"),  # another key
    ]
    for target in refused:
        r = await client.get(target)
        assert r.status == 403, target
        assert (await r.text()).startswith("sig:")
    # Parameter order does not matter; the path stays open to /raw (not a transform).
    reordered = f"/img/astronaut.jpg?fm=png&sig={sig}&w=30"
    assert (await client.get(reordered)).status == 200
    assert (await client.get("/raw/astronaut.jpg")).status == 200


async def test_full_transform_queue_is_503_with_retry_after(aiohttp_client, tmp_path, images):
    from edge.app import create_app
    from transforms.pool import TransformPool

    pool = TransformPool(processes=1, max_queue=1, timeout_s=30)
    await pool.start()
    try:
        client = await aiohttp_client(create_app(edge_config(tmp_path, images), pool=pool))
        responses = await asyncio.gather(
            *(client.get(f"/img/astronaut.jpg?w={900 + i}&fm=png") for i in range(8))
        )
        refused = [r for r in responses if r.status == 503]
        assert refused and any(r.status == 200 for r in responses)
        assert refused[0].headers["Retry-After"].isdigit()
        assert (await refused[0].text()).count("\n") == 1
    finally:
        await pool.close()
