"""Seed users with photos through the origin's public HTTP API (DESIGN.md section 7).

Per user: `POST /v1/users` -> `POST /v1/uploads` -> send the bytes to the signed URL ->
`POST /v1/photos` -> `PUT /v1/me/active-photo`. Photos cycle over the six ~1024 px sample
JPEGs; each user gets its own upload, so each has its own photo id and its own variants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benchmarks.scenarios import MID_SOURCES
from benchmarks.stack import SAMPLES


class SeedError(RuntimeError):
    pass


async def seed_users(
    origin_url: str,
    count: int,
    *,
    photos: Sequence[Path] | None = None,
    concurrency: int = 8,
    email_prefix: str = "bench-user",
) -> list[str]:
    """Create `count` users, each with an active photo; return their MD5 hashes in order."""
    files = photos or [SAMPLES / name for name in MID_SOURCES]
    blobs = [f.read_bytes() for f in files]
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(base_url=origin_url) as session:

        async def one(i: int) -> str:
            async with gate:
                return await seed_user(
                    session, origin_url, f"{email_prefix}-{i}@example.com", blobs[i % len(blobs)]
                )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def seed_user(
    session: aiohttp.ClientSession, origin_url: str, email: str, photo: bytes
) -> str:
    user = await call(session, "POST", "/v1/users", {"email": email}, expect=201)
    auth = {"Authorization": f"Bearer {user['token']}"}
    upload = await call(
        session,
        "POST",
        "/v1/uploads",
        {"content_type": "image/jpeg", "size": len(photo)},
        headers=auth,
        expect=201,
    )
    target = URL(upload["upload_url"])
    if not target.is_absolute():
        target = URL(origin_url).join(target)
    async with session.request(
        upload.get("method", "PUT"), target, data=photo, headers=upload.get("headers") or {}
    ) as resp:
        if resp.status >= 300:
            raise SeedError(f"upload -> {resp.status}: {(await resp.text())[:200]}")
    photo_id = upload["photo_id"]
    await call(session, "POST", "/v1/photos", {"photo_id": photo_id}, headers=auth, expect=201)
    await call(
        session, "PUT", "/v1/me/active-photo", {"photo_id": photo_id}, headers=auth, expect=200
    )
    return str(user["hash_md5"])


async def call(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    expect: int,
) -> dict[str, Any]:
    async with session.request(method, path, json=body, headers=headers) as resp:
        if resp.status != expect:
            raise SeedError(f"{method} {path} -> {resp.status}: {(await resp.text())[:200]}")
        data: dict[str, Any] = await resp.json()
        return data
