"""The pure part: path -> hash + format, Gravatar's query keys, ratings, variant keys."""

from __future__ import annotations

import pytest

from edge.avatar_query import (
    AvatarQuery,
    AvatarTarget,
    default_variant_key,
    parse_avatar_query,
    parse_target,
    photo_variant_key,
    rating_allows,
)
from edge.defaults import Redirect
from transforms.errors import InvalidParam

MD5 = "0bc83cb571cd1c50ba6f3e8a78ef1346"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (f"avatar/{MD5}", AvatarTarget(MD5, None)),
        (f"avatar/{MD5.upper()}.PNG", AvatarTarget(MD5, "png")),
        (f"{MD5}.jpg", AvatarTarget(MD5, "jpeg")),
        (f"{MD5}.jpeg", AvatarTarget(MD5, "jpeg")),
        (f"{MD5}.webp", AvatarTarget(MD5, "webp")),
        (f"{MD5}.avif", AvatarTarget(MD5, "avif")),
    ],
)
def test_parse_target(tail: str, expected: AvatarTarget) -> None:
    assert parse_target(tail) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], AvatarQuery()),
        ([("v", "1"), ("s", "64")], AvatarQuery()),
        ([("d", "identicon")], AvatarQuery("identicon", default_given=True)),
        ([("default", "robohash")], AvatarQuery("identicon", default_given=True)),
        ([("d", "nope")], AvatarQuery("mp", default_given=True)),
        ([("d", "http://x.test/a.png")], AvatarQuery(Redirect("http://x.test/a.png"), True)),
        ([("f", "y")], AvatarQuery(force_default=True)),
        ([("forcedefault", "Y")], AvatarQuery(force_default=True)),
        ([("f", "n")], AvatarQuery()),
        ([("r", "PG")], AvatarQuery(rating="pg")),
        ([("rating", "x")], AvatarQuery(rating="x")),
        ([("name", "Ada Lovelace")], AvatarQuery(initials="AL")),
        ([("initials", "zq"), ("name", "Ada")], AvatarQuery(initials="ZQ")),
    ],
)
def test_parse_avatar_query(params: list[tuple[str, str]], expected: AvatarQuery) -> None:
    assert parse_avatar_query(params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("r", "nc17")], "r: must be one of g, pg, r, x"),
        ([("rating", "")], "rating: must be one of g, pg, r, x"),
        ([("d", "mp"), ("default", "mp")], "default: given more than once (also as d)"),
        ([("f", "y"), ("f", "y")], "f: given more than once (also as f)"),
        ([("d", "x" * 3000)], "d: value too long"),
    ],
)
def test_parse_avatar_query_refusals(params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidParam) as caught:
        parse_avatar_query(params)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("requested", "photo", "allowed"),
    [
        ("g", "g", True),
        ("g", "pg", False),
        ("pg", "g", True),
        ("r", "x", False),
        ("x", "x", True),
        ("x", "weird", False),  # an unknown rating counts as the strictest
    ],
)
def test_rating_allows(requested: str, photo: str, allowed: bool) -> None:
    assert rating_allows(requested, photo) is allowed


def test_variant_keys_separate_what_changes_the_bytes() -> None:
    key = photo_variant_key("p1", 1, "h=80&w=80", "jpeg")
    assert key != photo_variant_key("p1", 2, "h=80&w=80", "jpeg")
    assert key != photo_variant_key("p2", 1, "h=80&w=80", "jpeg")
    assert key != photo_variant_key("p1", 1, "h=80&w=80", "webp")
    identicon = default_variant_key("identicon", MD5, "", "h=80&w=80", "source")
    assert identicon != default_variant_key("identicon", "f" * 32, "", "h=80&w=80", "source")
    assert identicon == default_variant_key("identicon", MD5, "AB", "h=80&w=80", "source")
    assert default_variant_key("mp", MD5, "", "t", "png") == default_variant_key(
        "mp", "f" * 32, "", "t", "png"
    )
    assert default_variant_key("initials", MD5, "AB", "t", "png") != default_variant_key(
        "initials", MD5, "CD", "t", "png"
    )
