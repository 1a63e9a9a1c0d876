"""Hostile request lines, parameters, headers and paths against a running `imgcdn edge`.

Each refusal is a 4xx with one short text/plain line (the edge's own) or aiohttp's parser
refusal (over its line/field/header limits), and the process answers /healthz afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.hardening.conftest import HostileEdge
from tests.hardening.servers import RawResponse, http_status, raw_get, raw_request


def assert_healthy(edge: HostileEdge) -> None:
    assert edge.service.alive(), edge.service.log_text()[-2000:]
    assert http_status(edge.service.url + "/healthz") == 200


def assert_one_line(r: RawResponse, status: int, says: str) -> None:
    assert r.status == status, (r.head, r.body)
    assert (r.header("Content-Type") or "").startswith("text/plain")
    assert r.header("Cache-Control") == "no-store"
    text = r.body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert says in text and "Traceback" not in text


PARAMETERS = [
    ("w=0", "w:"),
    ("w=-5", "w:"),
    ("h=-0", "h:"),
    ("w=99999999999999999999", "w:"),
    ("w=4097", "w:"),
    ("w=abc", "w:"),
    ("w=1&w=2", "w: given more than once"),
    ("w=10&width=10", "width: given more than once"),
    ("w=", "w:"),
    ("h=", "h:"),
    ("w=%D9%A1%D9%A2", "w:"),  # Arabic-Indic digits
    ("w=%EF%BC%91%EF%BC%90", "w:"),  # full-width digits
    ("w=%C2%B2", "w:"),  # superscript two
    ("w=NaN", "w:"),
    ("dpr=NaN", "dpr:"),
    ("dpr=inf", "dpr:"),
    ("dpr=1e3", "dpr:"),
    ("w=1e3", "w:"),
    ("q=1e1", "q:"),
    ("w=0x10", "w:"),
    ("w=%2B5", "w:"),
    ("w=5%20", "w:"),
    ("w=%00", "w:"),
    ("w=%FF", "w:"),  # not UTF-8
    ("fit=zoom", "fit:"),
    ("fit=", "fit:"),
    ("fm=svg", "fm:"),
    ("fm=bmp", "fm:"),
    ("format=", "format:"),
    ("q=0", "q:"),
    ("q=101", "q:"),
    ("dpr=0", "dpr:"),
    ("dpr=-1", "dpr:"),
    ("blur=-1", "blur:"),
    ("blur=1e9", "blur:"),
    ("sharpen=inf", "sharpen:"),
    ("gravity=north", "gravity:"),
    ("enlarge=yes", "enlarge:"),
]


@pytest.mark.parametrize(("query", "says"), PARAMETERS, ids=[p[0] for p in PARAMETERS])
def test_bad_parameters_are_one_line_400s(hostile_edge: HostileEdge, query: str, says: str) -> None:
    r = raw_get(hostile_edge.service.port, f"/img/astronaut.jpg?{query}".encode())
    assert_one_line(r, 400, says)
    assert_healthy(hostile_edge)


def test_unknown_parameters_are_ignored(hostile_edge: HostileEdge) -> None:
    r = raw_get(hostile_edge.service.port, b"/img/astronaut.jpg?w=20&zz=%00%FF&v=%E2%82%AC&=&&")
    assert r.status == 200


OVERSIZED = [
    ("16 KB query", b"/img/astronaut.jpg?w=10&x=" + b"a" * 16_384, b""),
    ("8 KB path", b"/img/" + b"a/" * 4096 + b"x.jpg", b""),
    ("1500 parameters", b"/img/astronaut.jpg?" + b"&".join(b"p%d=1" % i for i in range(1500)), b""),
    ("9 KB header value", b"/healthz", b"X-Big: " + b"a" * 9000 + b"\r\n"),
    ("9 KB header name", b"/healthz", b"X" * 9000 + b": 1\r\n"),
    ("200 header lines", b"/healthz", b"".join(b"X-H%d: 1\r\n" % i for i in range(200))),
    ("folded header", b"/healthz", b"X-A: 1\r\n  folded\r\n"),
    ("NUL in the request line", b"/img/astronaut.jpg\x00.png", b""),
    ("space in the path", b"/img/a b.jpg", b""),
]


@pytest.mark.parametrize(
    ("target", "headers"), [o[1:] for o in OVERSIZED], ids=[o[0] for o in OVERSIZED]
)
def test_over_aiohttp_limits_is_4xx_and_no_crash(
    hostile_edge: HostileEdge, target: bytes, headers: bytes
) -> None:
    r = raw_get(hostile_edge.service.port, target, headers)
    assert r.status in (400, 414, 431), r.head
    assert b"Traceback" not in r.body and len(r.body) < 1000
    assert_healthy(hostile_edge)


def test_a_flood_of_malformed_requests_is_a_line_a_second_in_the_log(
    hostile_edge: HostileEdge,
) -> None:
    """aiohttp logs each parser refusal with a traceback at ERROR; the edge keeps one short
    WARNING a second with a count (imgcdn/serverlog.py)."""
    time.sleep(1.1)  # past the second in which earlier tests' refusals were reported
    before = len(hostile_edge.service.log_text())
    for _ in range(40):
        assert raw_get(hostile_edge.service.port, OVERSIZED[0][1]).status == 400
    assert_healthy(hostile_edge)
    logged = hostile_edge.service.log_text()[before:]
    assert "Traceback" not in logged and "LineTooLong" in logged
    assert 1 <= logged.count("malformed request(s) answered 400") <= 3, logged[-2000:]


def test_a_long_path_within_the_line_limit_is_a_one_line_400(hostile_edge: HostileEdge) -> None:
    r = raw_get(hostile_edge.service.port, b"/img/" + b"a/" * 3000 + b"x.jpg")
    assert_one_line(r, 400, "path: longer than")


@pytest.mark.parametrize(
    "body",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST /_purge HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # CL + TE: smuggling
        b"POST /_purge HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\r\n",
    ],
    ids=["tls", "cl+te", "negative length", "http 9.9", "blank lines"],
)
def test_garbage_and_smuggling_are_refused(hostile_edge: HostileEdge, body: bytes) -> None:
    r = raw_request(hostile_edge.service.port, body)
    assert r.status in (0, 400, 505), r.head  # 0: the server closed without a reply
    assert_healthy(hostile_edge)


PATHS = [
    b"/img/../outside.jpg",
    b"/img/%2e%2e/outside.jpg",
    b"/img/%2E%2E%2Foutside.jpg",
    b"/img/..%2foutside.jpg",
    b"/img/%252e%252e/outside.jpg",  # double-encoded: a literal '%2e%2e' name, not a parent
    b"/img/%252e%252e%252foutside.jpg",
    b"/img/%c0%ae%c0%ae/outside.jpg",  # overlong UTF-8 dots
    b"/img/..\\outside.jpg",
    b"/img/%5c..%5coutside.jpg",
    b"/img//etc/passwd",
    b"/img/%2fetc/passwd",
    b"/img/astronaut.jpg%00.png",
    b"/img/./astronaut.jpg",
    b"/img/escape.jpg",  # a symlink in the source folder pointing outside it
    b"/img/escape-dir/outside.jpg",  # a symlinked folder pointing outside
    b"/raw/../outside.jpg",
    b"/raw/escape.jpg",
    b"/raw/%2e%2e/outside.jpg",
]


@pytest.mark.parametrize("target", PATHS, ids=[p.decode("latin-1") for p in PATHS])
def test_paths_never_leave_the_source_folder(hostile_edge: HostileEdge, target: bytes) -> None:
    r = raw_get(hostile_edge.service.port, target)
    assert r.status in (400, 404), r.head
    assert b"SECRET" not in r.body
    text = r.body.decode()
    assert text.count("\n") == 1 and "Traceback" not in text
    assert_healthy(hostile_edge)


def test_an_absolute_form_target_is_served_from_the_local_path(hostile_edge: HostileEdge) -> None:
    """`GET http://other-host/img/...` (RFC 9112 absolute-form) names the edge's own path."""
    r = raw_get(hostile_edge.service.port, b"http://169.254.169.254/img/astronaut.jpg?w=12")
    assert r.status == 200 and r.header("Content-Type") == "image/jpeg"
    assert_one_line(raw_get(hostile_edge.service.port, b"http://x/img/../outside.jpg"), 400, "path")


def test_symlinks_that_stay_inside_work(hostile_edge: HostileEdge) -> None:
    assert raw_get(hostile_edge.service.port, b"/img/inside-link.jpg?w=16").status == 200


HASH = "0" * 31 + "1"
AVATAR_PARAMETERS = [
    (f"/avatar/{HASH}?s=0", "s:"),
    (f"/avatar/{HASH}?s=2049", "s:"),
    (f"/avatar/{HASH}?s=abc", "s:"),
    (f"/avatar/{HASH}?size=1e3", "size:"),
    (f"/avatar/{HASH}?s=%D9%A1", "s:"),
    (f"/avatar/{HASH}?s=10&size=20", "given more than once"),
    (f"/avatar/{HASH}?r=nc17", "r:"),
    (f"/avatar/{HASH}?d=" + "a" * 3000, "d: value too long"),
]


@pytest.mark.parametrize(
    ("target", "says"),
    AVATAR_PARAMETERS,
    ids=[t[len("/avatar/") + 32 :][:40] for t, _ in AVATAR_PARAMETERS],
)
def test_bad_avatar_parameters_are_one_line_400s(
    hostile_edge: HostileEdge, target: str, says: str
) -> None:
    assert_one_line(raw_get(hostile_edge.service.port, target.encode()), 400, says)
    assert_healthy(hostile_edge)


@pytest.mark.parametrize(
    "target",
    [
        b"/avatar/%2e%2e/%2e%2e/etc/passwd",
        b"/avatar/" + HASH.encode() + b".svg",
        b"/avatar/" + HASH.encode() + b"/x",
        b"/avatar/" + HASH[:31].encode(),
        b"/avatar/" + b"g" * 32,
        b"/avatar/" + HASH.encode() + b"%00.png",
    ],
)
def test_avatar_paths_that_are_not_hashes_are_404(hostile_edge: HostileEdge, target: bytes) -> None:
    r = raw_get(hostile_edge.service.port, target)
    assert r.status == 404 and b"Traceback" not in r.body


def test_no_refusal_above_was_a_500(hostile_edge: HostileEdge) -> None:
    """The metrics of every request the shared hostile edge has had so far (this module's and
    test_images'): each was answered below 500."""
    r = raw_get(hostile_edge.service.port, b"/metrics")
    lines = [
        ln for ln in r.body.decode().splitlines() if ln.startswith("imgcdn_edge_requests_total")
    ]
    assert lines, r.body[:500]
    assert not [ln for ln in lines if 'status="5' in ln], lines
