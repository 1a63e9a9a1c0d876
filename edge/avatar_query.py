"""Gravatar's URL API (DESIGN.md section 4) as pure data: the route, `d`, `f`, `r`, names, keys.

Size and format come from `transforms.spec.parse_spec(..., avatar=True)`; this module holds the
rest: which hash and extension a path names, which default and rating a query asks for, whether
a photo's rating allows it, and the cache keys of avatar variants.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from edge.defaults import DefaultKind, Redirect, initials_from, resolve_default
from edge.keys import digest
from transforms.errors import InvalidParam

# The router only lets through /avatar/{hash}[.ext] and /{hash}[.ext]: anything else is a 404
# that never reaches a handler, let alone the origin.
ROUTE = (
    r"/{tail:(?:avatar/)?(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{64})"
    r"(?i:\.(?:jpg|jpeg|png|webp|avif))?}"
)
EXTENSION_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "avif": "avif"}

Rating = Literal["g", "pg", "r", "x"]
RATINGS: tuple[Rating, ...] = ("g", "pg", "r", "x")  # mildest first

# query key -> the field it sets; aliases share one field (giving both is a 400)
AVATAR_KEYS = {
    "d": "default",
    "default": "default",
    "f": "force",
    "forcedefault": "force",
    "r": "rating",
    "rating": "rating",
    "initials": "initials",
    "name": "name",
}
MAX_TEXT_CHARS = 2048  # the longest d= URL accepted; initials/name are cut far shorter anyway


@dataclass(frozen=True)
class AvatarTarget:
    """What the path names: a lower-cased hash, and the format its extension asks for."""

    hash: str
    format: str | None  # jpeg | png | webp | avif, None without an extension


@dataclass(frozen=True)
class AvatarQuery:
    """The avatar-only parameters (size and format are the TransformSpec's)."""

    default: DefaultKind | Redirect = "mp"
    default_given: bool = False  # `d` was sent: with the origin down, serve it instead of a 502
    force_default: bool = False
    rating: Rating = "g"
    initials: str = ""  # letters for d=initials, from `initials=` or `name=`


def parse_target(tail: str) -> AvatarTarget:
    """`avatar/ABC….png` or `abc…` (already shape-checked by ROUTE) -> hash and format."""
    name = tail.removeprefix("avatar/")
    stem, dot, extension = name.partition(".")
    return AvatarTarget(stem.lower(), EXTENSION_FORMATS[extension.lower()] if dot else None)


def parse_avatar_query(params: Iterable[tuple[str, str]]) -> AvatarQuery:
    """`d`/`default`, `f`/`forcedefault`, `r`/`rating`, `initials`, `name`; others are ignored."""
    values: dict[str, str] = {}
    sent_as: dict[str, str] = {}
    for key, value in params:
        field = AVATAR_KEYS.get(key)
        if field is None:
            continue
        if field in values:
            raise InvalidParam(f"{key}: given more than once (also as {sent_as[field]})")
        if len(value) > MAX_TEXT_CHARS:
            raise InvalidParam(f"{key}: value too long")
        values[field] = value
        sent_as[field] = key
    return AvatarQuery(
        default=resolve_default(values.get("default")),
        default_given="default" in values,
        force_default=values.get("force", "").strip().lower() in ("y", "yes"),
        rating=parse_rating(sent_as.get("rating", "r"), values.get("rating", "g")),
        initials=initials_from(values.get("initials"), values.get("name")),
    )


def parse_rating(key: str, value: str) -> Rating:
    name = value.strip().lower()
    for rating in RATINGS:
        if name == rating:
            return rating
    raise InvalidParam(f"{key}: must be one of {', '.join(RATINGS)}")


def rating_allows(requested: str, photo_rating: str) -> bool:
    """A photo rated above the requested rating is treated as absent; an unknown rating as x."""
    rank: dict[str, int] = {rating: i for i, rating in enumerate(RATINGS)}
    return rank.get(photo_rating, len(RATINGS)) <= rank[requested]


@functools.lru_cache(maxsize=16384)  # pure; asked on every avatar request
def photo_variant_key(photo_id: str, version: int, token: str, fmt: str) -> str:
    """A photo's variant: photo ids never change their bytes, so the key needs no validator."""
    return "a1:" + digest("photo", photo_id, str(version), token, fmt)


def photo_master_key(photo_id: str, version: int, side: int, quality: int) -> str:
    """A photo's master (transforms/master.py), shared by the edge processes on one disk."""
    return "a1:" + digest("master", photo_id, str(version), str(side), str(quality))


@functools.lru_cache(maxsize=16384)
def default_variant_key(kind: str, avatar_hash: str, initials: str, token: str, fmt: str) -> str:
    """A default image's variant. `mp` and `blank` look the same for every hash, so they share
    one entry; the others are drawn from the hash (and `initials` from its letters)."""
    seed = "" if kind in ("mp", "blank") else avatar_hash
    letters = initials if kind == "initials" else ""
    return "a1:" + digest("default", kind, seed, letters, token, fmt)
