"""Pure parts of the edge, table-driven: signing, paths, keys, headers, freshness."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from edge.freshness import Freshness, SourceRecord, classify, parse_max_age
from edge.headers import (
    COALESCED,
    HIT_DISK,
    HIT_MEMORY,
    STALE_REVALIDATING,
    Outcome,
    cache_control,
    cache_status,
    etag_matches,
    revalidated,
    server_timing,
    stale_if_error,
)
from edge.keys import flight_key, path_tag, record_key, variant_key
from edge.paths import clean_path
from edge.signing import sign_path, sign_url, signing_message, verify
from transforms.errors import BadSignature, InvalidParam

KEY = "secret-key"


def reference_sig(message: str, key: str = KEY) -> str:
    """DESIGN.md section 5, written out independently of edge.signing."""
    mac = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/img/cat.jpg", "/img/cat.jpg"),
        ("/img/cat.jpg?sig=zzz", "/img/cat.jpg"),
        ("/img/cat.jpg?w=100&fm=webp", "/img/cat.jpg?fm=webp&w=100"),
        ("/img/cat.jpg?w=2&w=10", "/img/cat.jpg?w=10&w=2"),  # sorted by key, then value
        ("/img/a%20b.jpg?name=J%C3%BCrgen", "/img/a%20b.jpg?name=Jürgen"),  # path as sent
        ("/img/x.jpg?flag", "/img/x.jpg?flag="),
        ("/img/x.jpg?a=1+2", "/img/x.jpg?a=1+2"),  # percent-decoding only: '+' stays
    ],
)
def test_sign_path_follows_the_design_rule(target: str, message: str) -> None:
    assert sign_path(target, KEY) == reference_sig(message)


def test_sign_url_appends_sig_and_verifies() -> None:
    signed = sign_url("http://edge.example/img/cat.jpg?w=100", KEY)
    assert signed.startswith("http://edge.example/img/cat.jpg?w=100&sig=")
    verify(signed.removeprefix("http://edge.example"), KEY)
    again = sign_url(signed, KEY)  # re-signing replaces, never stacks
    assert again == signed
    assert sign_url("/img/cat.jpg", KEY) == "/img/cat.jpg?sig=" + reference_sig("/img/cat.jpg")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.split("?")[0],  # sig missing
        lambda t: t[:-3],  # truncated
        lambda t: t.replace("w=100", "w=101"),  # other parameters
        lambda t: t + "&q=5",  # an added parameter
        lambda t: t.replace("/img/cat.jpg", "/img/dog.jpg"),  # other path
        lambda t: t + "&sig=" + t.rsplit("sig=", 1)[1],  # two sigs
    ],
)
def test_verify_refuses(mangle) -> None:  # type: ignore[no-untyped-def]
    target = sign_url("/img/cat.jpg?w=100", KEY)
    with pytest.raises(BadSignature):
        verify(mangle(target), KEY)
    with pytest.raises(BadSignature):
        verify(target, "another key")


def test_signing_message_ignores_sig_only() -> None:
    assert signing_message("/img/a", [("sig", "x")]) == "/img/a"


@pytest.mark.parametrize("path", ["cat.jpg", "a/b/c.png", "caf\u00e9.jpg", "a%2e.jpg", "x..y.jpg"])
def test_clean_path_accepts(path: str) -> None:
    assert clean_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "../etc/passwd",
        "a/../../b",
        "..",
        "./a",
        "a/./b",
        "/etc/passwd",
        "a//b",
        "a\\..\\b",
        "a\x00b",
        "a\nb",
        "x" * 2000,
    ],
)
def test_clean_path_refuses(path: str) -> None:
    with pytest.raises(InvalidParam):
        clean_path(path)


def test_keys_change_with_every_part() -> None:
    base = variant_key("dir:/s|a.jpg", "v1", "w=10", "webp")
    others = [
        variant_key("dir:/s|b.jpg", "v1", "w=10", "webp"),
        variant_key("dir:/s|a.jpg", "v2", "w=10", "webp"),
        variant_key("dir:/s|a.jpg", "v1", "w=11", "webp"),
        variant_key("dir:/s|a.jpg", "v1", "w=10", "avif"),
    ]
    assert len({base, *others}) == 5
    assert base == variant_key("dir:/s|a.jpg", "v1", "w=10", "webp")
    assert len({flight_key("s", "t", "f"), record_key("s"), path_tag("s")}) == 3


@pytest.mark.parametrize(
    ("outcome", "ttl", "expected"),
    [
        (HIT_MEMORY, 99.5, "imgcdn; hit; ttl=99; detail=memory"),
        (HIT_DISK, 10, "imgcdn; hit; ttl=10; detail=disk"),
        (Outcome("MISS", fwd="miss", stored=True), 100, "imgcdn; fwd=miss; stored"),
        (COALESCED, 100, "imgcdn; fwd=miss; collapsed"),
        (STALE_REVALIDATING, -5, "imgcdn; fwd=stale; ttl=-5; detail=stale-while-revalidate"),
        (
            stale_if_error(502),
            -9,
            "imgcdn; fwd=stale; fwd-status=502; ttl=-9; detail=stale-if-error",
        ),
        (revalidated("disk"), 60, "imgcdn; fwd=stale; fwd-status=304; ttl=60; detail=disk"),
    ],
)
def test_cache_status(outcome: Outcome, ttl: float, expected: str) -> None:
    assert cache_status(outcome, ttl) == expected


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_etag_matches(header: str | None, match: bool) -> None:
    assert etag_matches(header, '"abc"') is match


def test_cache_control_and_server_timing() -> None:
    assert cache_control(60, 60, 600) == (
        "public, max-age=60, stale-while-revalidate=60, stale-if-error=600"
    )
    assert cache_control(60, 0, 0) == "public, max-age=60"
    assert server_timing({"origin": 3.14, "transform": 12}) == "origin;dur=3.1, transform;dur=12.0"


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, Freshness.FRESH),
        (9.9, Freshness.FRESH),
        (10, Freshness.STALE),
        (19.9, Freshness.STALE),
        (20, Freshness.EXPIRED),
        (109.9, Freshness.EXPIRED),
        (110, Freshness.DEAD),
    ],
)
def test_classify(age: float, expected: Freshness) -> None:
    record = SourceRecord(validator="v", checked_at=1000.0, max_age=10)
    assert classify(record, 1000.0 + age, stale_if_error_s=100) is expected


def test_record_round_trip_and_refusal() -> None:
    record = SourceRecord('etag:"x"', 12.5, 60, last_modified=3.0, etag='"x"')
    assert SourceRecord.decode(record.encode()) == record
    for bad in (b"[]", b"{}", b'{"validator": 1}', b"not json"):
        with pytest.raises(ValueError):
            SourceRecord.decode(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("public, max-age=60", 60),
        ("max-age=60, s-maxage=5", 5),
        ("no-cache", 0),
        ("private, max-age=60", 0),
        ("max-age=abc", None),
        ('max-age="30"', 30),
    ],
)
def test_parse_max_age(header: str | None, expected: float | None) -> None:
    assert parse_max_age(header) == expected
