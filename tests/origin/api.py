"""A small client for the origin API used by the tests (speaks HTTP only, like the edge)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from imgcdn.config import OriginConfig


@dataclass
class Api:
    client: TestClient
    config: OriginConfig
    http: aiohttp.ClientSession  # for absolute URLs (upload URLs point at the origin or S3)

    async def create_user(self, email: str | None = None) -> dict[str, Any]:
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        response = await self.client.post("/v1/users", json={"email": email})
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def reserve(self, token: str, content_type: str, size: int) -> aiohttp.ClientResponse:
        return await self.client.post(
            "/v1/uploads", json={"content_type": content_type, "size": size}, headers=auth(token)
        )

    async def reserve_ok(self, token: str, content_type: str, size: int) -> dict[str, Any]:
        response = await self.reserve(token, content_type, size)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def send(
        self, upload: dict[str, Any], data: bytes, **headers: str
    ) -> aiohttp.ClientResponse:
        """PUT the bytes to the signed URL with the headers the reservation asked for."""
        sent = {**upload["headers"], **{k.replace("_", "-"): v for k, v in headers.items()}}
        async with self.http.request(
            upload["method"], upload["upload_url"], data=data, headers=sent
        ) as r:
            await r.read()
            return r

    async def register(self, token: str, photo_id: str, **extra: Any) -> aiohttp.ClientResponse:
        body = {"photo_id": photo_id, **extra}
        return await self.client.post("/v1/photos", json=body, headers=auth(token))

    async def add_photo(
        self, token: str, data: bytes, content_type: str = "image/jpeg"
    ) -> dict[str, Any]:
        """Reserve, upload and register; returns the photo object."""
        upload = await self.reserve_ok(token, content_type, len(data))
        sent = await self.send(upload, data)
        assert sent.status == 200, sent.status
        response = await self.register(token, upload["photo_id"])
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def set_active(self, token: str, photo_id: str | None) -> aiohttp.ClientResponse:
        return await self.client.put(
            "/v1/me/active-photo", json={"photo_id": photo_id}, headers=auth(token)
        )

    async def photos(self, token: str) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/photos", headers=auth(token))
        assert response.status == 200, await response.text()
        return list((await response.json())["photos"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    """The `{"error": {...}}` body every refusal carries."""
    body = await response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    return dict(body["error"])
