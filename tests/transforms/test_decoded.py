"""Decoded sources: a worker renders the later variants of a held source from its decoded
pixels (transforms/held.py), with the same sizes and a quality at least that of a render from
the bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.avatars.images import mean_abs_diff
from tests.transforms import tasks
from tests.transforms.images import animation, oriented_jpeg
from transforms import pipeline
from transforms.errors import CorruptImage, SourceTooLarge
from transforms.geometry import Plan, reusable
from transforms.held import HeldSources
from transforms.pipeline import render
from transforms.pool import TransformPool
from transforms.spec import Limits, TransformSpec

Read = Callable[[str], bytes]
LIMITS = Limits()
MIB = 1024 * 1024
SPECS = (
    TransformSpec(width=100),
    TransformSpec(width=240),
    TransformSpec(width=600),
    TransformSpec(width=160, height=160, fit="cover"),
    TransformSpec(width=200, height=120, fit="cover", gravity="attention"),
    TransformSpec(width=300, height=300, fit="contain"),
    TransformSpec(width=180, height=400, fit="fill"),
    TransformSpec(width=240, format="webp"),
    TransformSpec(width=120, blur=1.5),
)
# The error a render from kept pixels may add, against a lossless render from the bytes, over
# a render from the bytes (0-255 mean absolute difference): on average, and at worst. Measured
# -0.01..0.06 (the reference itself decodes with shrink-on-load, so it leans to the bytes).
MEAN_EXTRA_BOUND = 0.15
WORST_EXTRA_BOUND = 0.5


def held(data: bytes, budget: int = 32 * MIB, token: int = 1) -> HeldSources:
    sources = HeldSources(budget)
    sources.update([(token, data)], [])
    return sources


def lossless(spec: TransformSpec) -> TransformSpec:
    return TransformSpec(**{**spec.__dict__, "format": "png", "quality": None})


@pytest.mark.parametrize(
    ("name", "budget"),
    [("astronaut.jpg", 32 * MIB), ("hubble.jpg", 32 * MIB), ("large.jpg", 4 * MIB)],
)
def test_renders_from_kept_pixels_match_renders_from_the_bytes(
    sample_bytes: Read, name: str, budget: int
) -> None:
    """Same size, type and format; the extra error stays within the bound (large.jpg with a
    small budget is kept at a DCT shrink of 2, and renders it cannot serve use the bytes)."""
    data = sample_bytes(name)
    sources = held(data, budget)
    sources.render(data, TransformSpec(width=50), LIMITS)  # the first render: from the bytes
    extra: list[float] = []
    for spec in SPECS:
        kept = sources.render(data, spec, LIMITS)
        direct = render(data, spec, LIMITS)
        assert (kept.width, kept.height, kept.content_type) == (
            direct.width,
            direct.height,
            direct.content_type,
        )
        if spec.blur is None and spec.format != "webp" and spec.fit != "contain":
            ref = render(data, lossless(spec), LIMITS).body
            extra.append(mean_abs_diff(kept.body, ref) - mean_abs_diff(direct.body, ref))
    assert sources.pixels, "nothing was kept"
    assert sum(extra) / len(extra) <= MEAN_EXTRA_BOUND, extra
    assert max(extra) <= WORST_EXTRA_BOUND, extra


def test_pixels_are_decoded_on_the_second_render_and_used_after(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample_bytes("coffee.jpg")
    sources = held(data)
    decodes: list[int] = []
    decode = pipeline.decode

    def counted(data: bytes, shrink: int) -> pipeline.Decoded:
        decodes.append(shrink)
        return decode(data, shrink)

    monkeypatch.setattr(pipeline, "decode", counted)
    sources.render(data, TransformSpec(width=200), LIMITS)
    assert decodes == [] and not sources.pixels  # a one-off source costs nothing more
    sources.render(data, TransformSpec(width=210), LIMITS)
    assert decodes == [1] and sources.pixel_bytes == 1024 * 683 * 3
    rendered_from: list[object] = []
    thumbnail = pipeline.resize

    def watched(*args: object) -> object:
        rendered_from.append(args[-1])
        return thumbnail(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "resize", watched)
    for width in (220, 230, 600):
        sources.render(data, TransformSpec(width=width), LIMITS)
    assert decodes == [1] and rendered_from == [sources.pixels[1]] * 3


def test_bytes_that_are_not_held_are_rendered_as_always(sample_bytes: Read) -> None:
    data = sample_bytes("coffee.jpg")
    sources = held(data)
    copy = bytes(bytearray(data))  # equal bytes, another object: no token
    for _ in range(3):
        assert sources.render(copy, TransformSpec(width=200), LIMITS) == render(
            copy, TransformSpec(width=200), LIMITS
        )
    assert not sources.pixels and not sources.known


def test_a_zero_budget_never_decodes(sample_bytes: Read) -> None:
    data = sample_bytes("coffee.jpg")
    sources = held(data, budget=0)
    for _ in range(3):
        assert sources.render(data, TransformSpec(width=200), LIMITS) == render(
            data, TransformSpec(width=200), LIMITS
        )
    assert not sources.pixels


def test_the_budget_holds_least_recently_used_first_and_forgetting_drops_pixels(
    sample_bytes: Read,
) -> None:
    names = ("astronaut.jpg", "retina.jpg", "coffee.jpg")  # 3.0, 3.0 and 2.0 MiB of pixels
    datas = {token: sample_bytes(name) for token, name in enumerate(names, 1)}
    sources = HeldSources(7 * MIB)
    sources.update(list(datas.items()), [])
    for token in (1, 2, 1, 2):  # both kept: 6 MiB
        sources.render(datas[token], TransformSpec(width=200), LIMITS)
    sources.render(datas[1], TransformSpec(width=150), LIMITS)  # 1 is now the newest
    for _ in range(2):
        sources.render(datas[3], TransformSpec(width=200), LIMITS)
    assert list(sources.pixels) == [1, 3] and sources.pixel_bytes <= 7 * MIB
    sources.update([], [1])
    assert list(sources.pixels) == [3] and 1 not in sources.known and 1 not in sources.data
    assert sources.pixel_bytes == sources.pixels[3].nbytes


def test_a_source_larger_than_half_the_budget_is_kept_smaller_or_not_at_all(
    sample_bytes: Read,
) -> None:
    data = sample_bytes("large.jpg")  # 2000 x 1072: 6.1 MiB of pixels at full scale
    sources = held(data, budget=4 * MIB)
    for width in (100, 120):
        sources.render(data, TransformSpec(width=width), LIMITS)
    assert sources.pixels[1].shrink == 2 and sources.pixels[1].image.width == 1000
    tiny = held(data, budget=64 * 1024)  # not even 1/8 scale (250 x 134 x 3) fits 32 KiB
    for width in (100, 120, 140):
        tiny.render(data, TransformSpec(width=width), LIMITS)
    assert not tiny.pixels and tiny.known[1].shrink is None


def test_a_size_the_kept_scale_cannot_serve_waits_for_one_it_can(sample_bytes: Read) -> None:
    data = sample_bytes("large.jpg")
    sources = held(data, budget=4 * MIB)  # kept at 1/2: 1000 px wide, serves w <= 500
    for width in (900, 800):
        sources.render(data, TransformSpec(width=width), LIMITS)
    assert not sources.pixels  # not decoded for a render it would not serve
    sources.render(data, TransformSpec(width=400), LIMITS)
    assert sources.pixels[1].shrink == 2
    assert sources.render(data, TransformSpec(width=700), LIMITS).width == 700  # from the bytes


def test_limits_are_checked_on_every_render(sample_bytes: Read) -> None:
    data = sample_bytes("coffee.jpg")
    sources = held(data)
    for _ in range(2):
        sources.render(data, TransformSpec(width=200), LIMITS)
    assert sources.pixels
    with pytest.raises(SourceTooLarge, match="pixels"):
        sources.render(data, TransformSpec(width=200), Limits(max_src_pixels=500_000))
    with pytest.raises(SourceTooLarge, match="bytes"):
        sources.render(data, TransformSpec(width=200), Limits(max_src_bytes=1000))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_to_kept_pixels(orientation: int) -> None:
    data = oriented_jpeg(orientation)
    sources = held(data)
    outputs = [sources.render(data, TransformSpec(width=60), LIMITS) for _ in range(3)]
    assert sources.pixels
    direct = render(data, TransformSpec(width=60), LIMITS)
    for rendered in outputs:
        assert (rendered.width, rendered.height) == (direct.width, direct.height)
        assert mean_abs_diff(rendered.body, direct.body) < 3


def test_animations_are_never_kept() -> None:
    data = animation("gif", frames=4)
    sources = held(data)
    for _ in range(3):
        rendered = sources.render(data, TransformSpec(width=60), LIMITS)
        assert rendered == render(data, TransformSpec(width=60), LIMITS)
    assert not sources.pixels


def test_a_source_whose_pixels_cannot_be_kept_is_rendered_from_the_bytes(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(data: bytes, shrink: int) -> pipeline.Decoded:
        raise CorruptImage("the image cannot be decoded")

    monkeypatch.setattr(pipeline, "decode", failing)
    data = sample_bytes("coffee.jpg")
    sources = held(data)
    for _ in range(3):
        assert sources.render(data, TransformSpec(width=200), LIMITS) == render(
            data, TransformSpec(width=200), LIMITS
        )
    assert not sources.pixels and sources.known[1].shrink is None


def test_reusable_keeps_libvips_margin_of_two() -> None:
    assert reusable(1, 1000, 500, Plan(990, 495, 990, 495))  # full scale serves anything
    assert reusable(2, 1000, 500, Plan(250, 125, 250, 125))  # 1/2 scale: 500 px, 2x left
    assert not reusable(2, 1000, 500, Plan(251, 126, 251, 126))
    assert reusable(4, 2000, 1000, Plan(100, 100, 100, 100, crop=True))  # covers 200 x 100
    assert not reusable(4, 2000, 1000, Plan(300, 100, 300, 100, crop=True))


@pytest.fixture
async def pool() -> AsyncIterator[TransformPool]:
    pool = TransformPool(processes=1, max_queue=8, timeout_s=20, decoded_bytes=16 * MIB)
    await pool.start()
    yield pool
    await pool.close()


async def test_a_worker_keeps_the_pixels_of_a_held_source(
    pool: TransformPool, sample_bytes: Read
) -> None:
    data = sample_bytes("rocket.jpg")
    widths = (120, 240, 360)
    rendered = [await pool.render(data, TransformSpec(width=w), LIMITS) for w in widths]
    assert [r.width for r in rendered] == list(widths)
    assert await pool.run(tasks.kept_pixels) == [(1, 1024 * 683 * 3)]
    other = sample_bytes("coffee.jpg")
    await pool.render(other, TransformSpec(width=100), LIMITS)  # one use: not decoded
    assert len(await pool.run(tasks.kept_pixels)) == 1
