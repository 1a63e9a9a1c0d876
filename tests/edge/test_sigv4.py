"""The result store's S3 requests: SigV4 as botocore signs it, and sent exactly as signed."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge import sigv4
from edge.cache import Entry
from edge.remote_sources import S3Source
from edge.result_store import ResultStore
from edge.s3 import addressing
from imgcdn.config import ResultStoreConfig, SourceConfig
from transforms.errors import NotFound, OriginFailed

Handler = Callable[[web.Request], Awaitable[web.Response]]
KEYS = ["plain", "v1:img/astronaut.jpg:w=50 fm=png", "a~b/c%d", "ü/x=y&z+1", "dir//twice/"]
CREDENTIALS = [sigv4.Credentials("AKID", "secret/key+x"), sigv4.Credentials("AKID", "s", "tok==")]


def botocore_signature(
    method: str, url: str, headers: dict[str, str], credentials: sigv4.Credentials, region: str
) -> str:
    """botocore's S3 signature of a request with exactly these headers, at their x-amz-date."""
    request = AWSRequest(method=method, url=url, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(BotoCredentials(*credentials), "s3", region)
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_signatures_are_botocores(credentials: sigv4.Credentials, key: str, method: str) -> None:
    body = b"hello" if method == "PUT" else b""
    path = "/my-bucket/" + sigv4.quote_key(key)
    headers = sigv4.sign(
        method,
        "127.0.0.1:5055",
        path,
        hashlib.sha256(body).hexdigest(),
        credentials,
        "eu-west-1",
        sigv4.amz_date(1795565826.0),
    )
    assert headers["x-amz-date"] == "20261125T001706Z"
    assert ("x-amz-security-token" in headers) is (credentials.token is not None)
    signature = headers.pop("authorization").rpartition("Signature=")[2]
    expected = botocore_signature(
        method, "http://127.0.0.1:5055" + path, headers, credentials, "eu-west-1"
    )
    assert signature == expected


def test_keys_are_encoded_once_and_keep_their_slashes() -> None:
    assert sigv4.quote_key("a b/c:d~e") == "a%20b/c%3Ad~e"
    assert sigv4.quote_segment("a/b") == "a%2Fb"


@pytest.mark.parametrize(
    ("bucket", "endpoint", "expected"),
    [
        ("b", "http://127.0.0.1:9000", ("http://127.0.0.1:9000", "127.0.0.1:9000", "/b")),
        ("b", "https://minio.lan/s3/", ("https://minio.lan", "minio.lan", "/s3/b")),
        ("b", None, ("https://b.s3.eu-west-1.amazonaws.com", "b.s3.eu-west-1.amazonaws.com", "")),
        ("b.c", None, ("https://s3.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com", "/b.c")),
    ],
)
def test_bucket_addressing(
    bucket: str, endpoint: str | None, expected: tuple[str, str, str]
) -> None:
    assert addressing(bucket, endpoint, "eu-west-1") == expected


@dataclass
class CheckingS3:
    """A stand-in S3 that checks every request's SigV4 signature the way S3 does (over the
    headers the request says it signed, the path and Host as received) with botocore, and
    keeps the objects of the requests that pass."""

    credentials: sigv4.Credentials
    region: str = "us-east-1"
    objects: dict[str, bytes] = field(default_factory=dict)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        found = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=(.+?), SignedHeaders=(.+?), Signature=(\w+)", auth
        )
        signed: dict[str, str] = {}
        if found:
            signed = {name: request.headers.get(name, "") for name in found.group(2).split(";")}
        good = (
            found is not None
            # temporary keys: their token is sent, and signed
            and signed.get("x-amz-security-token") == self.credentials.token
            and signed.get("x-amz-content-sha256") == hashlib.sha256(body).hexdigest()
            and found.group(3)
            == botocore_signature(
                request.method,
                f"http://{request.host}{request.raw_path}",
                signed,
                self.credentials,
                self.region,
            )
        )
        if not good:
            self.refused += 1
            return web.Response(
                status=403, body=b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
            )
        if request.method == "PUT":
            self.objects[request.raw_path] = body
            return web.Response()
        if request.raw_path not in self.objects:
            return web.Response(status=404, body=b"<Error><Code>NoSuchKey</Code></Error>")
        return web.Response(body=self.objects[request.raw_path])


async def stand_in(aiohttp_server: Any, handle: Handler, **kwargs: Any) -> TestServer:
    """A server on 127.0.0.1 answering every path and method with `handle`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server: TestServer = await aiohttp_server(app, **kwargs)
    return server


async def fetch_once(config: SourceConfig, path: str) -> bytes:
    """`path` fetched by a fresh S3 source (credentials, proxy and CAs read as it starts)."""
    source = S3Source(config, max_bytes=1 << 20)
    await source.start()
    try:
        return (await source.fetch(path)).body
    finally:
        await source.close()


def with_keys(monkeypatch: pytest.MonkeyPatch, secret: str = "secret") -> None:
    """AWS credentials in the environment: AKIDEXAMPLE / `secret`, no token or profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("token", [None, "session-token=="])
async def test_requests_go_out_as_signed(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    s3 = CheckingS3(
        sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    )
    server = await stand_in(aiohttp_server, s3.handle)
    errors: list[str] = []
    config = ResultStoreConfig(
        bucket="results", prefix="variants/", endpoint_url=str(server.make_url("")).rstrip("/")
    )
    store = ResultStore(config, errors.append)
    await store.start()
    try:
        entry = Entry(b"\xff\xd8 an image", "image/jpeg", '"e"', 1.0, 2.0, "t")
        for key in KEYS:
            assert await store.get(key) is None  # a signed GET of a missing key: 404
            assert await store.set(key, entry)
            while store.uploading:
                await store._uploads.copy().pop()
            assert await store.get(key) == entry
        assert s3.refused == 0 and errors == []
        assert set(s3.objects) == {"/results/variants/" + sigv4.quote_key(k) for k in KEYS}

        s3.credentials = s3.credentials._replace(secret_key="another")  # S3 now refuses us
        assert await store.get(KEYS[0]) is None
        assert errors == ["shared-read"]  # counted, and S3 was reachable: no skipping
        assert store._usable()
    finally:
        await store.close()


async def test_the_s3_source_signs_its_gets_or_goes_anonymous(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_keys(monkeypatch)
    s3 = CheckingS3(sigv4.Credentials("AKIDEXAMPLE", "secret"))
    s3.objects["/images/pics/" + sigv4.quote_key("a b+ü.jpg")] = b"\xff\xd8 bytes"
    server = await stand_in(aiohttp_server, s3.handle)
    config = SourceConfig(
        type="s3", bucket="images", prefix="pics/", endpoint_url=str(server.make_url(""))
    )
    assert await fetch_once(config, "a b+ü.jpg") == b"\xff\xd8 bytes" and s3.refused == 0
    with pytest.raises(NotFound):
        await fetch_once(config, "absent.jpg")

    # No credentials anywhere: unsigned GETs, which this (private) bucket refuses by name.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(OriginFailed, match="403 SignatureDoesNotMatch"):
        await fetch_once(config, "a b+ü.jpg")


async def test_a_store_without_credentials_is_off_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    errors: list[str] = []
    config = ResultStoreConfig(bucket="results", endpoint_url="http://127.0.0.1:9")
    store = ResultStore(config, errors.append)
    await store.start()
    try:
        assert errors == ["shared-open"]
        assert "no AWS credentials" in caplog.text
        entry = Entry(b"x", "image/png", '"e"', 0.0, 0.0)
        assert await store.get("k") is None and not await store.set("k", entry)
        assert errors == ["shared-open"]  # asked nothing, so nothing more failed
    finally:
        await store.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgcdn test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_a_private_ca_is_trusted_through_aws_ca_bundle(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MinIO on site behind a private CA: botocore trusts `AWS_CA_BUNDLE`, so must we."""
    with_keys(monkeypatch)
    cert_file, key_file = self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert_file, key_file)
    s3 = CheckingS3(sigv4.Credentials("AKIDEXAMPLE", "secret"))
    s3.objects["/images/a.jpg"] = b"\xff\xd8 bytes"
    server = await stand_in(aiohttp_server, s3.handle, ssl=served)
    config = SourceConfig(
        type="s3", bucket="images", endpoint_url=f"https://127.0.0.1:{server.port}"
    )

    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    with pytest.raises(OriginFailed, match="unreachable"):  # the default CAs do not know it
        await fetch_once(config, "a.jpg")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert_file))
    assert await fetch_once(config, "a.jpg") == b"\xff\xd8 bytes"


async def test_redirects_are_errors_that_name_themselves(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket in another region answers 301 PermanentRedirect: the 502's message says so,
    and a signed request is never sent on to wherever a Location points."""
    with_keys(monkeypatch)
    followed: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith("/elsewhere"):
            followed.append(request.path)
            return web.Response(body=b"\xff\xd8 not yours")
        if request.path.endswith("moved.jpg"):
            return web.Response(status=307, headers={"Location": "/elsewhere/moved.jpg"})
        document = b"<Error><Code>PermanentRedirect</Code><Endpoint>b.s3-eu</Endpoint></Error>"
        return web.Response(status=301, body=document, content_type="application/xml")

    server = await stand_in(aiohttp_server, handle)
    config = SourceConfig(type="s3", bucket="b", endpoint_url=str(server.make_url("")))
    with pytest.raises(OriginFailed, match="301 PermanentRedirect"):
        await fetch_once(config, "a.jpg")
    with pytest.raises(OriginFailed, match="307"):
        await fetch_once(config, "moved.jpg")
    assert followed == []


async def test_the_environments_proxy_is_used_unless_no_proxy_says_otherwise(
    aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HTTP_PROXY` / `HTTPS_PROXY` and `NO_PROXY` as botocore reads them (once, at start)."""
    with_keys(monkeypatch)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxied: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        proxied.append(str(request.url))  # the absolute URL a client sends a proxy
        return web.Response(body=b"\xff\xd8 via the proxy")

    async def s3(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8 direct")

    proxy_server = await stand_in(aiohttp_server, proxy)
    s3_server = await stand_in(aiohttp_server, s3)
    # the endpoint by name: NO_PROXY is matched against it
    endpoint = f"http://localhost:{s3_server.port}"
    config = SourceConfig(type="s3", bucket="images", endpoint_url=endpoint)

    monkeypatch.setenv("HTTP_PROXY", str(proxy_server.make_url("")))
    assert await fetch_once(config, "a.jpg") == b"\xff\xd8 via the proxy"
    assert proxied == [f"{endpoint}/images/a.jpg"]
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert await fetch_once(config, "a.jpg") == b"\xff\xd8 direct"
    assert len(proxied) == 1
