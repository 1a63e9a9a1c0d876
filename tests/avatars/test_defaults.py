"""`d=`, `f=y` and what an unknown hash shows, through the real edge and origin."""

from __future__ import annotations

import hashlib

import pytest

from tests.avatars.conftest import StartStack
from tests.avatars.images import decode, is_photo, loader_of, size_of


def email_md5(email: str) -> str:
    return hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()


NOBODY = email_md5("nobody@example.com")
SOMEONE = email_md5("someone-else@example.com")


@pytest.mark.parametrize(
    ("d", "bands", "alpha"),
    [
        ("mp", 3, False),
        ("identicon", 3, False),
        ("retro", 3, False),
        ("initials&name=Jane+Doe", 3, False),
        ("color", 3, False),
        ("blank", 4, True),
    ],
)
async def test_each_drawn_default_at_the_requested_size(
    start_stack: StartStack, d: str, bands: int, alpha: bool
) -> None:
    stack = await start_stack()
    response, body = await stack.get(f"/avatar/{NOBODY}?s=120&d={d}")
    assert response.status == 200, body
    assert response.headers["Content-Type"] == "image/png"  # drawn as PNG, kept without fm
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["X-Cache"] == "MISS"
    image = decode(body)
    assert (image.width, image.height, image.bands) == (120, 120, bands)
    if alpha:
        assert image.extract_band(3).max() == 0  # fully transparent
    again, same = await stack.get(f"/avatar/{NOBODY}?s=120&d={d}")
    assert again.headers["X-Cache"] == "HIT-MEMORY" and same == body
    _, body = await stack.get(f"/avatar/{NOBODY}.webp?s=30&d={d}")
    assert loader_of(body) == "webpload_buffer" and size_of(body) == (30, 30)


async def test_default_values_follow_gravatars_rules(start_stack: StartStack) -> None:
    stack = await start_stack()

    async def etag(query: str, avatar_hash: str = NOBODY) -> str:
        response, body = await stack.get(f"/avatar/{avatar_hash}?s=64&{query}")
        assert response.status == 200, (query, body)
        return response.headers["ETag"]

    mp = await etag("d=mp")
    assert await etag("") == mp  # no d: mp
    assert await etag("d=unheard-of") == mp
    assert await etag("default=mp") == mp
    assert await etag("d=ftp://example.com/x.png") == mp  # not http(s): not a redirect
    assert await etag("d=mp", SOMEONE) == mp  # the same silhouette for everyone
    identicon = await etag("d=identicon")
    for artwork in ("monsterid", "wavatar", "robohash"):
        assert await etag(f"d={artwork}") == identicon
    assert await etag("d=identicon", SOMEONE) != identicon  # derived from the hash
    assert await etag("d=retro", SOMEONE) != await etag("d=retro")
    assert await etag("d=color", SOMEONE) != await etag("d=color")
    jane = await etag("d=initials&name=Jane+Doe")
    assert await etag("d=initials&initials=JD") == jane
    assert await etag("d=initials&initials=AB") != jane
    assert await etag("d=initials&name=Jane+Doe&v=7") == jane  # unknown params: same entry


async def test_d_404_and_a_redirect_url(start_stack: StartStack) -> None:
    stack = await start_stack()
    response, _ = await stack.get(f"/avatar/{NOBODY}?d=404")
    assert response.status == 404 and response.headers["Content-Type"].startswith("text/plain")
    url = "https://example.com/default.png?x=1&y=2"
    response = await stack.edge.get(
        f"/avatar/{NOBODY}", params={"s": "64", "d": url}, allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == url
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert stack.origin_calls["lookup"] == 1  # the 404 answer was cached (negative_ttl_s)


async def test_forcedefault_shows_the_default_even_with_a_photo(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack()
    user = await stack.active_user(astronaut)
    md5 = user["hash_md5"]
    _, photo = await stack.get(f"/avatar/{md5}?s=64&d=identicon")
    assert is_photo(photo, astronaut)
    lookups = stack.origin_calls["lookup"]
    for query in ("f=y", "forcedefault=y", "f=Y"):
        response, body = await stack.get(f"/avatar/{md5}?s=64&d=identicon&{query}")
        assert response.status == 200 and not is_photo(body, astronaut), query
        assert response.headers["Content-Type"] == "image/png"
    _, unforced = await stack.get(f"/avatar/{md5}?s=64&d=identicon&f=n")
    assert is_photo(unforced, astronaut)
    assert stack.origin_calls["lookup"] == lookups  # f=y needs no lookup
    response, _ = await stack.get(f"/avatar/{md5}?f=y&d=404")
    assert response.status == 404


async def test_a_user_without_an_active_photo_gets_the_default(
    start_stack: StartStack, sample_bytes
) -> None:
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack()
    user = await stack.user(astronaut)
    response, _ = await stack.get(f"/avatar/{user['hash_md5']}?d=404")
    assert response.status == 404
    await stack.activate(user, 0)  # purged: the negative answer goes too
    body = await stack.status_soon(f"/avatar/{user['hash_md5']}?d=404&s=40", 200)
    assert is_photo(body, astronaut)
    await stack.activate(user, None)
    await stack.status_soon(f"/avatar/{user['hash_md5']}?d=404&s=40", 404)
