"""Health, metrics, and the origin as a real process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from sqlalchemy.engine import make_url

from tests.origin.api import auth, error_of
from tests.origin.conftest import MakeConfig, StartOrigin


async def test_metrics_count_requests_by_route_and_status(
    make_config: MakeConfig, start_origin: StartOrigin
) -> None:
    api = await start_origin(make_config())
    await api.create_user("m@example.com")
    await api.client.post("/v1/users", json={"email": "m@example.com"})
    await api.client.get(f"/v1/avatars/{'0' * 32}")
    await api.client.get("/no/such/route")
    text = await (await api.client.get("/metrics")).text()
    for line in (
        'imgcdn_origin_requests_total{route="/v1/users",status="201"} 1.0',
        'imgcdn_origin_requests_total{route="/v1/users",status="409"} 1.0',
        'imgcdn_origin_requests_total{route="/v1/avatars/{hash}",status="404"} 1.0',
        'imgcdn_origin_requests_total{route="unmatched",status="404"} 1.0',
        'imgcdn_origin_request_seconds_count{route="/v1/users"} 2.0',
    ):
        assert line in text, line


async def test_healthz_is_503_when_the_bucket_is_gone(
    make_config: MakeConfig,
    start_origin: StartOrigin,
    storage_for: Any,
    bucket: str,
    s3: Any,
) -> None:
    api = await start_origin(make_config(storage=storage_for("s3", bucket)))
    assert (await api.client.get("/healthz")).status == 200
    await s3.delete_bucket(Bucket=bucket)
    response = await api.client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["database"] == "ok" and "bucket" in body["storage"]


async def test_sigterm_lets_an_upload_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    port = unused_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "origin:\n"
        f"  port: {port}\n"
        f"  public_url: http://127.0.0.1:{port}\n"
        f"  database_url: sqlite:///{tmp_path}/origin.db\n"
        f"  storage: {{type: local, path: {tmp_path}/blobs}}\n"
        "  edges: []\n"
        "  shutdown_grace_s: 5\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imgcdn.cli", "origin", "--config", str(config)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            user = await (
                await http.post(f"{base}/v1/users", json={"email": "t@example.com"})
            ).json()
            upload = await (
                await http.post(
                    f"{base}/v1/uploads",
                    json={"content_type": "image/jpeg", "size": 2000},
                    headers=auth(user["token"]),
                )
            ).json()

            async def slow_body() -> Any:
                yield b"a" * 1000
                process.send_signal(signal.SIGTERM)  # mid-body
                await asyncio.sleep(0.5)
                yield b"b" * 1000

            async with http.put(
                upload["upload_url"], data=slow_body(), headers={"Content-Type": "image/jpeg"}
            ) as r:
                assert r.status == 200
        started = time.monotonic()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
        assert time.monotonic() - started < 5
        stored = list((tmp_path / "blobs").rglob("*"))
        assert [p.stat().st_size for p in stored if p.is_file()] == [2000]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            async with http.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "the origin did not start"
        await asyncio.sleep(0.1)


async def test_an_unreachable_database_stops_the_start_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "IMGCDN_ORIGIN__DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    env["IMGCDN_ORIGIN__PORT"] = str(unused_port())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imgcdn.cli",
        "origin",
        "--config",
        str(tmp_path / "none.yaml"),
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 1
    assert "origin cannot start: database: not available" in stderr.decode()
    assert "Traceback" not in stderr.decode()


@pytest.mark.postgres
async def test_a_lost_database_is_a_503_and_an_unhealthy_origin(
    make_config: MakeConfig, start_origin: StartOrigin, pg_url: str
) -> None:
    api = await start_origin(make_config(database_url=pg_url))
    await api.create_user()
    admin = await asyncpg.connect(os.environ["IMGCDN_TEST_POSTGRES_URL"])
    try:
        await admin.execute(f'DROP DATABASE "{make_url(pg_url).database}" WITH (FORCE)')
    finally:
        await admin.close()
    response = await api.client.post("/v1/users", json={"email": "late@example.com"})
    assert response.status == 503
    assert (await error_of(response))["code"] == "database_unavailable"
    health = await api.client.get("/healthz")
    assert health.status == 503
    assert (await health.json())["storage"] == "ok"
