"""Small avatar sizes rendered from a cached variant at least twice as large
(`transforms.avatar_from_larger`): what it saves, when it applies, and the quality bound."""

from __future__ import annotations

import pytest

from edge.appkeys import AVATARS
from edge.avatar_variants import can_derive
from tests.avatars.conftest import StartStack
from tests.avatars.images import (
    MEAN_EXTRA_BOUND,
    WORST_EXTRA_BOUND,
    is_photo,
    mean_abs_diff,
    size_of,
    square,
)
from transforms.pipeline import render
from transforms.spec import Limits, TransformSpec


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_rendering_from_a_larger_variant_stays_within_the_bound(sample_bytes, fmt):
    """Error against a lossless render of the original: derived vs rendered directly."""
    limits = Limits()
    extra: list[float] = []
    for name in ("astronaut.jpg", "coffee.jpg", "pendants.jpg"):
        original = sample_bytes(name)
        for big, small in ((256, 32), (256, 80), (256, 128), (160, 64), (128, 64)):
            larger = render(original, square(big, fmt), limits).body
            reference = render(original, square(small, "png"), limits).body
            direct = render(original, square(small, fmt), limits).body
            derived = render(larger, square(small, fmt), limits).body
            assert size_of(derived) == (small, small)
            extra.append(mean_abs_diff(derived, reference) - mean_abs_diff(direct, reference))
    assert sum(extra) / len(extra) <= MEAN_EXTRA_BOUND, extra
    assert max(extra) <= WORST_EXTRA_BOUND, extra


def test_which_variants_may_stand_in():
    assert can_derive(square(256), square(128))
    assert can_derive(square(256), square(32))
    assert not can_derive(square(200), square(128))  # less than twice as large
    assert not can_derive(square(256, "webp"), square(64))  # another format
    assert not can_derive(square(256, quality=50), square(64))  # other options
    assert not can_derive(square(256, gravity="attention"), square(64, gravity="attention"))
    wide = TransformSpec(width=256, height=128, fit="cover", enlarge=True, format="jpeg")
    assert not can_derive(wide, square(64))  # another box shape
    assert can_derive(
        wide, TransformSpec(width=64, height=32, fit="cover", enlarge=True, format="jpeg")
    )


async def test_a_smaller_size_needs_no_origin_fetch(start_stack: StartStack, sample_bytes):
    astronaut = sample_bytes("astronaut.jpg")
    stack = await start_stack(originals_bytes=0)  # every render from the original: a fetch
    user = await stack.active_user(astronaut)
    md5 = user["hash_md5"]
    big, _ = await stack.get(f"/avatar/{md5}?s=256")
    assert big.status == 200 and "origin;" in big.headers["Server-Timing"]
    assert stack.origin_calls["raw"] == 1
    for size in (128, 64, 32):
        response, body = await stack.get(f"/avatar/{md5}?s={size}")
        assert response.headers["X-Cache"] == "MISS"
        assert "origin;" not in response.headers["Server-Timing"]
        assert size_of(body) == (size, size) and is_photo(body, astronaut)
    assert stack.origin_calls["raw"] == 1  # every smaller size came from a cached variant
    response, body = await stack.get(f"/avatar/{md5}?s=200")  # not 2x smaller than 256
    assert size_of(body) == (200, 200)
    assert stack.origin_calls["raw"] == 2


async def test_switched_off_every_size_comes_from_the_original(
    start_stack: StartStack, sample_bytes
):
    stack = await start_stack(originals_bytes=0)  # every render from the original: a fetch
    stack.edge.app[AVATARS].from_larger = False
    user = await stack.active_user(sample_bytes("coffee.jpg"))
    for size in (256, 64):
        response, _ = await stack.get(f"/avatar/{user['hash_md5']}?s={size}")
        assert "origin;" in response.headers["Server-Timing"]
    assert stack.origin_calls["raw"] == 2
