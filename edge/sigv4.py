"""AWS Signature Version 4 for the edge's S3 requests (edge/s3.py), as pure functions.

The edge sends its S3 GETs and PUTs through its own aiohttp session instead of aiobotocore's
client, whose machinery around each request (endpoint rules, event hooks, user agent,
parsers) cost ~0.6 ms of the serving loop's CPU per call. Signing is the part of that which
is needed; it is this module, checked against botocore's own signer in
tests/edge/test_sigv4.py.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from typing import NamedTuple
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None  # temporary credentials (STS, instance roles)


def quote_key(key: str) -> str:
    """An object key as SigV4 signs it in a path: every byte URI-encoded but unreserved
    characters and the key's slashes."""
    return quote(key, safe="/~")


def quote_segment(name: str) -> str:
    """One path segment (a bucket name) encoded the same way, slashes included."""
    return quote(name, safe="~")


def amz_date(now: float) -> str:
    """`now` (epoch seconds) as SigV4's `x-amz-date`, e.g. 20261125T001706Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


@functools.lru_cache(maxsize=8)  # one per (secret, day, region): a new key once a day
def signing_key(secret_key: str, day: str, region: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode(), day)
    for part in (region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign(
    method: str,
    host: str,
    path: str,
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    date: str,
) -> dict[str, str]:
    """The headers that authenticate `method host path` (no query string) with a body whose
    SHA-256 is `payload_sha256`, at `date` (`amz_date`): send them as they are, `Host`
    included, so what is sent is what was signed."""
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": date}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [method, path, "", *(f"{n}:{headers[n].strip()}" for n in names), "", signed]
    )
    scope = f"{date[:8]}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join(
        [
            ALGORITHM,
            date,
            scope,
            hashlib.sha256((canonical + "\n" + payload_sha256).encode()).hexdigest(),
        ]
    )
    key = signing_key(credentials.secret_key, date[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
