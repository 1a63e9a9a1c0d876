"""The hit path's shortcuts (memoized request resolution, reused headers, on-loop disk reads,
handler wrappers instead of middlewares) change nothing a client or an operator can see."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import sys
import time
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from edge import front
from edge.appkeys import IMG_ROUTES, TIERS
from edge.cache import DiskTier, Entry, MemoryTier
from edge.freshness import SourceRecord
from edge.memo import MAX_KEY_CHARS, Memo, request_memo
from edge.records import RecordStore
from imgcdn.config import SecurityConfig
from tests.edge.conftest import EdgeFactory, edge_config, with_cache

TOKEN = "purge-me"
URL = "/img/astronaut.jpg?w=40"


async def test_a_purge_reaches_a_memoized_request(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(
        edge_config(tmp_path, images, security=SecurityConfig(purge_token=TOKEN))
    )
    first = await client.get(URL)
    assert first.headers["X-Cache"] == "MISS"
    assert (await client.get(URL)).headers["X-Cache"] == "HIT-MEMORY"
    assert len(client.app[IMG_ROUTES]) == 1
    r = await client.post(
        "/_purge", json={"paths": ["astronaut.jpg"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status == 200
    again = await client.get(URL)
    assert again.headers["X-Cache"] == "MISS"
    assert again.headers["ETag"] == first.headers["ETag"]


async def test_a_changed_source_is_not_served_from_the_memo(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(with_cache(edge_config(tmp_path, images), max_age_s=1))
    first = await client.get(URL)
    assert (await client.get(URL)).headers["X-Cache"] == "HIT-MEMORY"
    (images / "astronaut.jpg").write_bytes((images / "photos" / "coffee.jpg").read_bytes())
    await asyncio.sleep(1.1)  # past max-age: the memoized route must not answer HIT-MEMORY
    stale = await client.get(URL)
    assert stale.headers["X-Cache"] == "STALE"
    assert stale.headers["ETag"] == first.headers["ETag"]
    for _ in range(50):  # the background revalidation sees the new file
        fresh = await client.get(URL)
        if fresh.headers["X-Cache"] == "MISS":
            break
        await asyncio.sleep(0.05)
    assert fresh.headers["ETag"] != first.headers["ETag"]
    assert (await client.get(URL)).headers["X-Cache"] == "HIT-MEMORY"


async def test_accept_is_part_of_the_memo_key(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    for _ in range(2):
        webp = await client.get(URL, headers={"Accept": "image/webp,*/*"})
        plain = await client.get(URL)
        assert webp.headers["Content-Type"] == "image/webp"
        assert plain.headers["Content-Type"] == "image/jpeg"
        assert webp.headers["Vary"] == plain.headers["Vary"] == "Accept"
        assert webp.headers["ETag"] != plain.headers["ETag"]
    explicit = await client.get(URL + "&fm=png", headers={"Accept": "image/webp"})
    assert explicit.headers["Content-Type"] == "image/png"
    assert "Vary" not in explicit.headers


async def test_reused_headers_follow_age_and_ttl(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    await client.get(URL)
    hit = await client.get(URL)
    assert hit.headers["Age"] == "0"
    ttl = int(hit.headers["Cache-Status"].split("ttl=")[1].split(";")[0])
    await asyncio.sleep(1.05)
    later = await client.get(URL)
    assert later.headers["Age"] == "1"
    assert int(later.headers["Cache-Status"].split("ttl=")[1].split(";")[0]) == ttl - 1


async def test_304_and_head_leave_the_reused_headers_intact(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(edge_config(tmp_path, images))
    body = await (await client.get(URL)).read()
    etag = (await client.get(URL)).headers["ETag"]
    not_modified = await client.get(URL, headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert "Content-Type" not in not_modified.headers
    head = await client.head(URL)
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(body)
    assert await head.read() == b""
    again = await client.get(URL)
    assert again.headers["Content-Type"] == "image/jpeg"
    assert await again.read() == body


async def test_a_bad_request_is_refused_every_time(make_edge: EdgeFactory, tmp_path, images):
    client = await make_edge(edge_config(tmp_path, images))
    for _ in range(2):
        r = await client.get("/img/astronaut.jpg?w=0")
        assert r.status == 400
        assert (await r.text()).startswith("w:")
    assert len(client.app[IMG_ROUTES]) == 0


async def test_only_requests_that_were_answered_keep_a_route(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(edge_config(tmp_path, images))
    for _ in range(2):
        assert (await client.get("/img/missing.jpg?w=40")).status == 404
    assert len(client.app[IMG_ROUTES]) == 0
    assert (await client.get(URL)).status == 200
    assert len(client.app[IMG_ROUTES]) == 1
    assert (await client.get(URL)).headers["X-Cache"] == "HIT-MEMORY"


async def test_unknown_paths_and_methods_are_answered_and_counted(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(edge_config(tmp_path, images))
    missing = await client.get("/nope/here")
    assert missing.status == 404
    assert missing.headers["Content-Type"].startswith("text/plain")
    assert missing.headers["Cache-Control"] == "no-store"
    assert await missing.text() == "not found\n"
    wrong = await client.post("/img/astronaut.jpg")
    assert wrong.status == 405
    assert set(wrong.headers["Allow"].split(",")) == {"GET", "HEAD"}
    assert await wrong.text() == "method not allowed\n"
    assert (await client.head("/healthz")).status == 200
    text = await (await client.get("/metrics")).text()
    counts = {
        (s.labels.get("route"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "imgcdn_edge_requests_total"
    }
    assert counts[("other", "404")] == 1
    assert counts[("other", "405")] == 1
    assert counts[("healthz", "200")] == 1


def test_memo_is_bounded_and_forgets_the_oldest_first():
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("a", 3)  # an update makes no room
    assert len(memo) == 2
    memo.put("c", 4)
    assert memo.get("a") is None
    assert (memo.get("b"), memo.get("c")) == (2, 4)
    requests = request_memo(8)
    requests.put(("/img/x.jpg?w=1", "image/webp"), 1)
    requests.put(("/img/" + "x" * MAX_KEY_CHARS, None), 2)  # too long to keep
    assert len(requests) == 1
    assert requests.get(("/img/x.jpg?w=1", "image/webp")) == 1


async def test_record_renewals_are_not_rewritten_every_time(tmp_path):
    errors: list[str] = []
    disk = DiskTier(str(tmp_path / "c"), 1 << 20, errors.append)
    await disk.open()
    store = RecordStore(disk)
    now = time.time()
    first = SourceRecord("v1", now - 5, max_age=3600)
    await store.put("s", first)
    await store.put("s", SourceRecord("v1", now, max_age=3600))  # only checked_at moved
    assert SourceRecord.decode(await disk.get_bytes("r1:" + _digest("s")) or b"") == first
    changed = SourceRecord("v2", now, max_age=3600)
    await store.put("s", changed)
    assert SourceRecord.decode(await disk.get_bytes("r1:" + _digest("s")) or b"") == changed
    assert await store.get("s") == changed
    await disk.close()
    assert errors == []


async def test_a_locked_disk_read_waits_in_a_thread(tmp_path):
    """The loop's read gives up after READ_WAIT_S on a locked database and retries in a
    thread, which gets the entry once the lock is released."""
    disk = DiskTier(str(tmp_path / "c"), 1 << 20, lambda kind: None)
    await disk.open()
    entry = Entry(b"bytes", "image/jpeg", '"e"', 0.0, 0.0)
    assert await disk.set("k", entry)
    locker = sqlite3.connect(os.path.join(tmp_path, "c", "cache.db"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, locker.execute, "COMMIT")
    started = time.monotonic()
    read = asyncio.ensure_future(disk.get("k"))
    await asyncio.sleep(0.1)
    assert not read.done()  # waiting in a thread; the loop is free meanwhile
    assert await read == entry
    assert time.monotonic() - started >= 0.25
    locker.close()
    await disk.close()


async def test_memory_hits_answer_from_the_memo_with_disk_and_memory_in_step(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(edge_config(tmp_path, images))
    await client.get(URL)
    tiers = client.app[TIERS]
    assert len(tiers.memory) == 1
    tiers.memory.evict_now(only_entry(tiers.memory).tag)
    disk_hit = await client.get(URL)
    assert disk_hit.headers["X-Cache"] == "HIT-DISK"
    assert (await client.get(URL)).headers["X-Cache"] == "HIT-MEMORY"


def _digest(source_id: str) -> str:
    from edge.keys import digest

    return digest(source_id)


async def test_memoized_headers_do_not_keep_purged_bodies_alive(
    make_edge: EdgeFactory, tmp_path, images
):
    client = await make_edge(
        edge_config(tmp_path, images, security=SecurityConfig(purge_token=TOKEN))
    )
    await client.get(URL)
    await client.get(URL)  # the route's HeaderSlot now describes this entry
    body = only_entry(client.app[TIERS].memory).body
    held = sys.getrefcount(body)  # ours (2: the name and the call's argument) + the tier's
    r = await client.post(
        "/_purge", json={"paths": ["astronaut.jpg"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status == 200
    gc.collect()
    assert held > 2
    assert sys.getrefcount(body) == 2  # nothing but us: no slot, memo or tier keeps it


def only_entry(memory: MemoryTier) -> Entry:
    assert len(memory) == 1
    entry = memory.get_now(next(iter(memory._lru)))
    assert entry is not None
    return entry


def request_counts(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "imgcdn_edge_requests_total"
    }


def memory_hits(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "imgcdn_edge_cache_hits_total" and s.labels["tier"] == "memory"
    )


async def test_fresh_memory_hits_are_answered_before_routing(
    make_edge: EdgeFactory, tmp_path, images, monkeypatch: pytest.MonkeyPatch
):
    """edge/front.py: a memoized fresh hit never reaches aiohttp's router, and it is answered
    and counted exactly as the `img` route answers and counts the hits it routes."""
    client = await make_edge(edge_config(tmp_path, images))
    router = client.app.router
    resolve = router.resolve
    routed: list[str] = []

    async def counting(request: web.Request) -> Any:
        routed.append(request.method)
        return await resolve(request)

    monkeypatch.setattr(router, "resolve", counting)
    miss = await client.get(URL)
    body = await miss.read()
    assert miss.headers["X-Cache"] == "MISS" and routed == ["GET"]
    hits = [await client.get(URL) for _ in range(3)]
    assert routed == ["GET"]  # answered in front of the router
    assert all(h.headers["X-Cache"] == "HIT-MEMORY" for h in hits)
    assert [await h.read() for h in hits] == [body] * 3
    conditional = await client.get(URL, headers={"If-None-Match": miss.headers["ETag"]})
    assert conditional.status == 304 and routed == ["GET"]  # a fresh hit too
    head = await client.head(URL)  # HEAD and request lines not resolved yet are routed
    assert (await client.get("/img/astronaut.jpg?w=41")).headers["X-Cache"] == "MISS"
    assert routed == ["GET", "HEAD", "GET"]
    same = {k: v for k, v in hits[-1].headers.items() if k not in ("Date", "Server")}
    assert same == {k: v for k, v in head.headers.items() if k not in ("Date", "Server")}
    text = await (await client.get("/metrics")).text()
    counts = request_counts(text)
    assert counts[("img", "200")] == 1 + 3 + 1 + 1  # miss, front hits, HEAD, the new width
    assert counts[("img", "304")] == 1
    assert memory_hits(text) == 3 + 1 + 1  # each hit counted once: front, HEAD, 304


async def test_a_failure_in_front_of_the_router_is_a_counted_500_without_a_trace(
    make_edge: EdgeFactory, tmp_path, images, monkeypatch: pytest.MonkeyPatch
):
    client = await make_edge(edge_config(tmp_path, images))
    assert (await client.get(URL)).status == 200  # memoized now

    def broken(*args: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(front, "fresh_hit", broken)
    r = await client.get(URL)
    assert r.status == 500
    assert await r.text() == "internal error\n"
    counts = request_counts(await (await client.get("/metrics")).text())
    assert counts[("img", "500")] == 1


async def read_responses(reader: asyncio.StreamReader, heads: list[bool]) -> list[tuple]:
    """(status, headers, body) for each response on the stream; `heads`: which answer a
    HEAD (no body follows its Content-Length)."""
    answers = []
    for head in heads:
        status_line = await reader.readuntil(b"\r\n")
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers, await reader.readexactly(length)))
    return answers


async def test_pipelined_requests_are_answered_in_order(make_edge: EdgeFactory, tmp_path, images):
    """HTTP/1.1 pipelining (wrk's `--pipeline`, some proxies): the front's answers and the
    application's interleave on one connection in the order asked."""
    client = await make_edge(edge_config(tmp_path, images))
    direct = await client.get(URL)
    expected_body = await direct.read()
    asks = [
        ("GET", "/img/astronaut.jpg?w=41"),  # a miss, rendered
        ("GET", URL),  # a memoized hit: the front answers it
        ("GET", "/img/nope.jpg?w=40"),
        ("HEAD", URL),
        ("GET", "/img/astronaut.jpg?w=abc"),
        ("GET", "/img/astronaut.jpg?w=41"),  # now a hit
        ("GET", "/healthz"),
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"".join(f"{m} {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for m, p in asks))
    await writer.drain()
    answers = await asyncio.wait_for(read_responses(reader, [m == "HEAD" for m, _ in asks]), 20)
    writer.close()
    assert [status for status, _, _ in answers] == [200, 200, 404, 200, 400, 200, 200]
    caches = [headers.get("x-cache") for _, headers, _ in answers]
    assert caches == ["MISS", "HIT-MEMORY", None, "HIT-MEMORY", None, "HIT-MEMORY", None]
    assert answers[1][2] == expected_body and answers[1][1]["etag"] == direct.headers["ETag"]
    assert answers[0][2] == answers[5][2] and answers[0][2][:2] == b"\xff\xd8"
    assert answers[3][1]["content-length"] == str(len(expected_body))
    assert answers[4][2].startswith(b"w:")  # the error names the parameter
