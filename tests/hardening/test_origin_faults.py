"""Faults behind the origin: a locked or slow database, a failing blob store (local and S3),
and SIGTERM mid-load. Each: a clear 503/502, and never a photo row without its blob or an
upload marked written without its bytes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from imgcdn.config import StorageConfig
from tests.hardening.servers import (
    free_port,
    start_service,
    stop_service,
    write_config,
)
from tests.origin.api import Api, auth, error_of
from tests.origin.conftest import MakeConfig, StartOrigin

Read = Callable[[str], bytes]


class DatabaseLock:
    """Hold SQLite's exclusive lock on a database file from another connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._release = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        connection = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            self._held.set()
            self._release.wait(30)  # bounded, whatever the test does
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def __enter__(self) -> DatabaseLock:
        self._thread.start()
        assert self._held.wait(5), "could not lock the database"
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._thread.join(10)


def db_path(api: Api) -> Path:
    return Path(api.config.database_url.removeprefix("sqlite:///"))


def consistency(api: Api) -> tuple[list[str], list[str]]:
    """(photo rows whose blob is missing, blob files nothing points at)."""
    root = Path(api.config.storage.path)
    with contextlib.closing(sqlite3.connect(db_path(api))) as connection:
        photos = [row[0] for row in connection.execute("SELECT storage_key FROM photos")]
        reserved = [
            row[0]
            for row in connection.execute(
                "SELECT storage_key FROM uploads WHERE state != 'registered'"
            )
        ]
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    missing = [key for key in photos if key not in files]
    orphans = [f for f in files if f not in photos and f not in reserved]
    return missing, orphans


async def test_a_slow_then_locked_database(
    make_config: MakeConfig, start_origin: StartOrigin, sample_bytes: Read
) -> None:
    api = await start_origin(make_config(max_upload_bytes=300_000))
    user = await api.create_user()
    token = user["token"]
    data = sample_bytes("static10k.jpg")
    first = await api.reserve_ok(token, "image/jpeg", len(data))
    assert (await api.send(first, data)).status == 200
    second = await api.reserve_ok(token, "image/jpeg", len(data))

    # slow: a lock held for 1 s only delays the request (busy timeout 5 s)
    with DatabaseLock(db_path(api)):
        started = time.monotonic()
        pending = asyncio.ensure_future(api.client.post("/v1/users", json={"email": "s@x.io"}))
        await asyncio.sleep(1.0)
    slow = await pending
    assert slow.status == 201 and time.monotonic() - started >= 0.9

    # locked past the 5 s busy timeout: registering is a clear 503 that changed nothing
    with DatabaseLock(db_path(api)):
        registered = await api.register(token, first["photo_id"])
        assert registered.status == 503
        assert (await error_of(registered))["code"] == "database_unavailable"
    assert await api.photos(token) == []
    assert consistency(api) == ([], [])
    # and it goes through once the database answers again
    assert (await api.register(token, first["photo_id"])).status == 201
    assert (await api.send(second, data)).status == 200
    assert (await api.register(token, second["photo_id"])).status == 201
    assert len(await api.photos(token)) == 2
    assert consistency(api) == ([], [])


def immutable(directory: Path, on: bool) -> None:
    """`chattr +i` / `-i`: root ignores permission bits, not the immutable flag."""
    directory.mkdir(parents=True, exist_ok=True)
    flag = "+i" if on else "-i"
    done = subprocess.run(["chattr", flag, str(directory)], capture_output=True, check=False)
    if done.returncode != 0 and on:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")


async def test_an_unwritable_blob_directory_is_502_and_keeps_the_url(
    make_config: MakeConfig, start_origin: StartOrigin, sample_bytes: Read, tmp_path: Path
) -> None:
    api = await start_origin(make_config(max_upload_bytes=300_000))
    user = await api.create_user()
    data = sample_bytes("static10k.jpg")
    upload = await api.reserve_ok(user["token"], "image/jpeg", len(data))
    blobs = Path(api.config.storage.path)
    immutable(blobs, True)
    try:
        async with api.http.put(upload["upload_url"], data=data, headers=upload["headers"]) as r:
            assert r.status == 502
            assert (await error_of(r))["code"] == "storage_failed"
        health = await api.client.get("/healthz")
        assert health.status == 503 and "storage" in (await health.json())["storage"]
    finally:
        immutable(blobs, False)
    assert consistency(api) == ([], [])
    assert (await api.register(user["token"], upload["photo_id"])).status == 409  # no bytes yet
    assert (await api.send(upload, data)).status == 200  # the URL was given back
    assert (await api.register(user["token"], upload["photo_id"])).status == 201


class FlakyS3:
    """A pass-through proxy in front of moto's S3 that answers 500 while `failing` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.failing = False
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if self.failing:
            error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            return web.Response(status=500, body=error, content_type="application/xml")
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=False)
        skip = {"host", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self.session.request(
            request.method, url, data=await request.read(), headers=headers
        ) as upstream:
            body = await upstream.read()
            drop = {"transfer-encoding", "connection", "date", "server"}
            if request.method != "HEAD":  # HEAD keeps the object's length, with no body
                drop.add("content-length")
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in drop}
            return web.Response(status=upstream.status, body=body or None, headers=kept)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def test_a_failing_s3_store_is_502_and_never_half_registers(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    aiohttp_server: Any,
    moto_endpoint: str,
    bucket: str,
    s3: Any,
    sample_bytes: Read,
) -> None:
    flaky = FlakyS3(moto_endpoint)
    proxy = await aiohttp_server(flaky.app())
    storage = StorageConfig(
        type="s3", bucket=bucket, endpoint_url=str(proxy.make_url("")), region="us-east-1"
    )
    try:
        api = await start_origin(make_config(storage=storage, max_upload_bytes=300_000))
        user = await api.create_user()
        token = user["token"]
        data = sample_bytes("static10k.jpg")
        upload = await api.reserve_ok(token, "image/jpeg", len(data))
        assert (await api.send(upload, data)).status == 200

        flaky.failing = True
        registered = await api.register(token, upload["photo_id"])
        assert registered.status == 502
        assert (await error_of(registered))["code"] == "storage_failed"
        flaky.failing = False
        assert await api.photos(token) == []  # no photo without its (sealed) blob

        assert (await api.register(token, upload["photo_id"])).status == 201
        raw = await api.client.get(f"/v1/photos/{upload['photo_id']}/raw")
        assert await raw.read() == data

        flaky.failing = True
        failing_read = await api.client.get(f"/v1/photos/{upload['photo_id']}/raw")
        assert failing_read.status == 502
        # a delete while the store fails: the row goes first, the blob is left as garbage
        deleted = await api.client.delete(f"/v1/photos/{upload['photo_id']}", headers=auth(token))
        assert deleted.status == 204
        flaky.failing = False
        assert await api.photos(token) == []
        assert (await api.client.get(f"/v1/photos/{upload['photo_id']}/raw")).status == 404
    finally:
        await flaky.close()


# ---- the origin as a process ----


def origin_config(root: Path, port: int) -> dict[str, Any]:
    return {
        "origin": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "database_url": f"sqlite:///{root / 'origin.db'}",
            "storage": {"type": "local", "path": str(root / "blobs")},
            "edges": [],
            "keepalive_timeout_s": 1,
            "shutdown_grace_s": 5,
            "upload_timeout_s": 10,
        }
    }


async def test_slow_headers_are_dropped_and_sigterm_mid_load_loses_nothing(
    tmp_path: Path, sample_bytes: Read
) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yaml", origin_config(tmp_path, port))
    origin = start_service("origin", config, port)
    base = origin.url
    data = sample_bytes("static10k.jpg")
    try:
        # a client sending its headers one byte at a time is dropped after keepalive_timeout_s
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started, dropped = time.monotonic(), None
        for byte in b"POST /v1/users HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20:
            writer.write(bytes([byte]))
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(100), 0.25) == b"":
                    dropped = time.monotonic() - started
                    break
        writer.close()
        assert dropped is not None and dropped < 3.0, dropped

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

            async def user_with_photo(i: int) -> dict[str, Any]:
                """Create a user and upload a photo whose body is still arriving at SIGTERM."""
                async with http.post(f"{base}/v1/users", json={"email": f"u{i}@x.io"}) as r:
                    assert r.status == 201
                    user = await r.json()
                async with http.post(
                    f"{base}/v1/uploads",
                    json={"content_type": "image/jpeg", "size": len(data)},
                    headers=auth(user["token"]),
                ) as r:
                    upload = await r.json()

                async def slow_body() -> Any:
                    yield data[:5000]
                    await asyncio.sleep(1.0)
                    yield data[5000:]

                async with http.put(
                    upload["upload_url"], data=slow_body(), headers={"Content-Type": "image/jpeg"}
                ) as r:
                    assert r.status == 200, await r.text()
                return {**user, "photo_id": upload["photo_id"]}

            tasks = [asyncio.ensure_future(user_with_photo(i)) for i in range(8)]
            await asyncio.sleep(0.6)  # every upload is mid-body now
            origin.process.send_signal(signal.SIGTERM)
            users = await asyncio.gather(*tasks)  # each in-flight upload finished: 200
        code = await asyncio.to_thread(origin.process.wait, 10)
        assert code == 0
    finally:
        stop_service(origin)

    origin = start_service("origin", config, port)  # the same database and blob directory
    try:
        async with aiohttp.ClientSession(base_url=origin.url) as http:
            for user in users:
                async with http.post(
                    "/v1/photos", json={"photo_id": user["photo_id"]}, headers=auth(user["token"])
                ) as r:
                    assert r.status == 201, await r.text()
                async with http.get(f"/v1/photos/{user['photo_id']}/raw") as r:
                    assert await r.read() == data
    finally:
        stop_service(origin)
    with contextlib.closing(sqlite3.connect(tmp_path / "origin.db")) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT count(*) FROM photos").fetchone() == (8,)
