"""A real HTTP source for edge tests: serves bytes from a dict and counts every request."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

from aiohttp import web


class FakeSource:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()  # requests carrying If-None-Match
        self.delay_s = 0.0
        self.status: int | None = None  # force this status
        self.cache_control: str | None = None
        self.chunked = False  # stream without Content-Length

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/img/{path:.+}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.hits[path] += 1
        if request.headers.get("If-None-Match"):
            self.conditional[path] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return web.Response(status=self.status, text="forced")
        body = self.files.get(path)
        if body is None:
            return web.Response(status=404, text="no such file")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {"ETag": etag}
        if self.cache_control:
            headers["Cache-Control"] = self.cache_control
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        if self.chunked:
            response = web.StreamResponse(headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(body), 8192):
                await response.write(body[start : start + 8192])
            await response.write_eof()
            return response
        return web.Response(body=body, headers=headers, content_type="image/jpeg")
