"""One S3 bucket's objects over plain HTTP: the edge's S3 source and its shared result store.

Requests go through an aiohttp session of the bucket's own and are signed by edge/sigv4.py,
with credentials from botocore's usual chain (environment, profile, instance or container
role; refreshed before they expire). aiobotocore's client cost ~0.6 ms of the serving
loop's CPU per call around the request itself (endpoint rules, event hooks, user agent,
parsers); here a call costs ~0.16 ms (`python -m benchmarks.s3cpu`: both clients in one
process against a stand-in S3 that keeps connections alive, as S3 does; GET 0.16 against
0.66 ms, PUT of 20 KB 0.20 against 0.83).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from botocore.exceptions import BotoCoreError
from yarl import URL

from edge import sigv4

log = logging.getLogger(__name__)

UNREACHABLE = (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError)
ERROR_BYTES = 4096  # of an S3 error document, read for its <Code>
CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


def addressing(bucket: str, endpoint_url: str | None, region: str) -> tuple[str, str, str]:
    """(scheme://host of the requests, their `Host`, the path before a key): path-style under
    `endpoint_url` (MinIO, moto, Ceph), else AWS's virtual-hosted style (path-style for a
    bucket with dots, which a virtual host's TLS certificate does not cover)."""
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        prefix = parts.path.rstrip("/") + "/" + sigv4.quote_segment(bucket)
        return f"{parts.scheme}://{parts.netloc}", parts.netloc, prefix
    if "." in bucket:
        host = f"s3.{region}.amazonaws.com"
        return f"https://{host}", host, "/" + sigv4.quote_segment(bucket)
    host = f"{bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}", host, ""


def tls_context() -> ssl.SSLContext:
    """The CAs botocore would trust: `AWS_CA_BUNDLE` (a private CA, e.g. for MinIO on site),
    else its default bundle (certifi's). An unreadable bundle is logged, and the default
    used: TLS to a private-CA endpoint then fails, and says so, request by request."""
    from botocore.httpsession import get_cert_path

    default = get_cert_path(True)
    bundle = os.environ.get("AWS_CA_BUNDLE") or default
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as err:
        log.error("AWS_CA_BUNDLE %s cannot be used (%s); trusting the default CAs", bundle, err)
        return ssl.create_default_context(cafile=default)


def env_proxy(origin: str) -> str | None:
    """The proxy `HTTPS_PROXY` / `HTTP_PROXY` name for `origin`, unless `NO_PROXY` exempts
    it, as botocore decides. Read once: aiohttp's `trust_env` reads the environment (and
    ~/.netrc) on every request, which cost 0.47 ms of CPU per call (`benchmarks.s3cpu`)."""
    parts = urlsplit(origin)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def error_code(resp: aiohttp.ClientResponse) -> str:
    """The `<Code>` of the S3 error document `resp` carries, else its HTTP status."""
    found = CODE.search(await resp.content.read(ERROR_BYTES))
    return found.group(1).decode("ascii", "replace") if found else str(resp.status)


class S3Bucket:
    """Signed requests for the objects of one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        connections: int,
        connect_timeout_s: float,
    ) -> None:
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.connections = connections
        self.connect_timeout_s = connect_timeout_s
        self._origin, self._host, self._path = addressing(bucket, endpoint_url, self.region)
        self._credentials: Any = None  # botocore's (refreshable) credentials; None: anonymous
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None

    @property
    def signed(self) -> bool:
        return self._credentials is not None

    async def start(self) -> None:
        """Open the session and find credentials (none: requests go out unsigned, which
        only a public bucket answers)."""
        from aiobotocore.session import get_session

        try:
            self._credentials = await get_session().get_credentials()
        except BotoCoreError as err:
            log.warning("s3://%s: no credentials (%s)", self.bucket, err)
        self._proxy = env_proxy(self._origin)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=tls_context()),
            timeout=aiohttp.ClientTimeout(sock_connect=self.connect_timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @contextlib.asynccontextmanager
    async def request(
        self, method: str, key: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """`method` on object `key` (`body` for a PUT); `headers` are sent unsigned."""
        assert self._session is not None, "S3Bucket.start() not called"
        path = self._path + "/" + sigv4.quote_key(key)
        sent = dict(headers or {})
        if self._credentials is not None:
            frozen = await self._credentials.get_frozen_credentials()
            sent |= sigv4.sign(
                method,
                self._host,
                path,
                hashlib.sha256(body).hexdigest() if body else sigv4.EMPTY_SHA256,
                sigv4.Credentials(frozen.access_key, frozen.secret_key, frozen.token),
                self.region,
                sigv4.amz_date(time.time()),
            )
        url = URL(self._origin + path, encoded=True)  # sent as signed, not quoted again
        # No redirects: S3 redirects a wrong region (PermanentRedirect, a 301), and a signed
        # request sent on to another host is refused there anyway; the code is the clue.
        async with self._session.request(
            method, url, data=body or None, headers=sent, allow_redirects=False, proxy=self._proxy
        ) as resp:
            yield resp
