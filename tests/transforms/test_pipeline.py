"""The libvips pipeline on real and generated images: properties, never exact bytes.

These run in the test process without `configure_vips()` (which blocks loaders process-wide
and would change other test packages' libvips); the worker policy is tested in test_pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import pyvips

from tests.transforms import images
from transforms.errors import CorruptImage, ImgcdnError, SourceTooLarge, UnsupportedImage
from transforms.pipeline import ImageInfo, probe, render
from transforms.spec import FITS, FORMATS, Limits, TransformSpec

LIMITS = Limits()
Read = Callable[[str], bytes]


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_fit_and_format(sample_bytes: Read, fit: str, fmt: str) -> None:
    spec = TransformSpec(width=120, height=90, fit=fit, format=fmt)  # type: ignore[arg-type]
    out = render(sample_bytes("coffee.jpg"), spec, LIMITS)  # 1024x683
    expected = {
        "cover": (120, 90),
        "contain": (120, 90),
        "fill": (120, 90),
        "inside": (120, 80),
        "outside": (135, 90),
    }[fit]
    image = images.load(out.body)
    assert (out.width, out.height) == expected
    assert (image.width, image.height) == expected
    assert images.magic_format(out.body) == fmt
    assert out.format == fmt
    assert out.content_type == f"image/{fmt}"


@pytest.mark.parametrize(
    ("name", "info"),
    [
        ("astronaut.jpg", ImageInfo("jpeg", 1024, 1024, 1, False)),
        ("large.jpg", ImageInfo("jpeg", 2000, 1072, 1, False)),
        ("alpha.png", ImageInfo("png", 512, 512, 1, True)),
    ],
)
def test_probe(sample_bytes: Read, name: str, info: ImageInfo) -> None:
    assert probe(sample_bytes(name), LIMITS) == info


@pytest.mark.parametrize("fmt", ["png", "webp", "gif", "avif", "tiff"])
def test_every_allowed_input_format(fmt: str) -> None:
    body = bytes(images.marker_image(200, 100).write_to_buffer(f".{fmt}"))
    info = probe(body, LIMITS)
    assert (info.width, info.height) == (200, 100)
    out = render(body, TransformSpec(width=50, format="jpeg"), LIMITS)
    assert (images.load(out.body).width, images.load(out.body).height) == (50, 25)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("jpeg", "jpeg"),
        ("png", "png"),
        ("webp", "webp"),
        ("gif", "gif"),
        ("tiff", "jpeg"),
        ("avif", "jpeg"),
    ],
)
def test_auto_keeps_the_source_format(source: str, expected: str) -> None:
    body = bytes(images.marker_image().write_to_buffer(f".{source}"))
    out = render(body, TransformSpec(width=40), LIMITS)
    assert out.format == expected
    assert images.magic_format(out.body) == expected


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_comes_out_upright(orientation: int) -> None:
    body = images.oriented_jpeg(orientation)
    assert probe(body, LIMITS).width == 200  # the header reports upright dimensions too
    for spec in (TransformSpec(), TransformSpec(width=100)):
        out = images.load(render(body, spec, LIMITS).body)
        assert out.width == 2 * out.height
        top_left = out(out.width // 8, out.height // 8)
        bottom_right = out(out.width * 7 // 8, out.height * 7 // 8)
        assert top_left[0] > 200 and top_left[2] < 60  # red
        assert bottom_right[2] > 200 and bottom_right[0] < 60  # blue


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_alpha_survives(sample_bytes: Read, fmt: str) -> None:
    out = images.load(
        render(sample_bytes("alpha.png"), TransformSpec(width=128, format=fmt), LIMITS).body
    )
    assert out.hasalpha()
    assert out(0, 0)[3] < 10  # the corner is transparent
    assert out(64, 64)[3] > 245  # the centre is opaque


def test_alpha_is_flattened_onto_white_for_jpeg(sample_bytes: Read) -> None:
    out = images.load(
        render(sample_bytes("alpha.png"), TransformSpec(width=128, format="jpeg"), LIMITS).body
    )
    assert out.bands == 3
    assert min(out(1, 1)) > 245


def test_contain_pads_transparent_or_white(sample_bytes: Read) -> None:
    spec = TransformSpec(width=100, height=50, fit="contain", format="png")
    out = images.load(render(sample_bytes("astronaut.jpg"), spec, LIMITS).body)
    assert (out.width, out.height, out.bands) == (100, 50, 4)
    assert out(2, 25)[3] == 0 and out(50, 25)[3] == 255
    jpeg = images.load(
        render(
            sample_bytes("astronaut.jpg"),
            TransformSpec(width=100, height=50, fit="contain", format="jpeg"),
            LIMITS,
        ).body
    )
    assert min(jpeg(2, 25)) > 245


def test_metadata_is_stripped() -> None:
    body = images.oriented_jpeg(6)
    assert pyvips.Image.new_from_buffer(body, "").get_typeof("exif-data")
    out = images.load(render(body, TransformSpec(width=50, format="jpeg"), LIMITS).body)
    assert not out.get_typeof("exif-data")
    assert not out.get_typeof("orientation") or out.get("orientation") == 1


def test_progressive_jpeg(sample_bytes: Read) -> None:
    data = sample_bytes("rocket.jpg")
    baseline = images.load(render(data, TransformSpec(width=200, format="jpeg"), LIMITS).body)
    spec = TransformSpec(width=200, format="jpeg", progressive=True)
    progressive = images.load(render(data, spec, LIMITS).body)
    assert baseline.get("interlaced") == 0 if baseline.get_typeof("interlaced") else True
    assert progressive.get("interlaced") == 1


def test_quality_changes_size(sample_bytes: Read) -> None:
    sizes = [
        len(
            render(
                sample_bytes("hubble.jpg"),
                TransformSpec(width=300, format="webp", quality=q),
                LIMITS,
            ).body
        )
        for q in (20, 80, 95)
    ]
    assert sizes[0] < sizes[1] < sizes[2]


def test_blur_and_sharpen_change_detail(sample_bytes: Read) -> None:
    data = sample_bytes("hubble.jpg")

    def detail(spec: TransformSpec) -> float:
        image = images.load(render(data, spec, LIMITS).body).colourspace("b-w")
        return float(image.sobel().avg())

    plain = detail(TransformSpec(width=300, format="png"))
    assert detail(TransformSpec(width=300, format="png", blur=3)) < plain * 0.6
    assert detail(TransformSpec(width=300, format="png", sharpen=2)) > plain * 1.05


@pytest.mark.parametrize("gravity", ["centre", "attention", "entropy"])
def test_gravity_crops_to_the_box(sample_bytes: Read, gravity: str) -> None:
    spec = TransformSpec(width=100, height=300, fit="cover", gravity=gravity)  # type: ignore[arg-type]
    out = render(sample_bytes("large.jpg"), spec, LIMITS)
    assert (images.load(out.body).width, images.load(out.body).height) == (100, 300)


def test_dpr_and_enlarge(sample_bytes: Read) -> None:
    data = sample_bytes("static10k.jpg")  # 200x200
    assert images.load(render(data, TransformSpec(width=50, dpr=2), LIMITS).body).width == 100
    assert images.load(render(data, TransformSpec(width=400), LIMITS).body).width == 200
    assert (
        images.load(render(data, TransformSpec(width=400, enlarge=True), LIMITS).body).width == 400
    )


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animation_is_kept(fmt: str) -> None:
    body = images.animation(fmt, frames=5)  # 120x80
    assert probe(body, LIMITS).frames == 5
    for spec, size in [
        (TransformSpec(width=60), (60, 40)),
        (TransformSpec(width=50, height=50, fit="cover"), (50, 50)),
        (TransformSpec(width=60, height=60, fit="contain"), (60, 60)),
    ]:
        out = render(body, spec, LIMITS)
        assert images.pages(out.body) == 5
        first = images.load(out.body)
        assert (first.width, first.height) == size == (out.width, out.height)
    still = render(body, TransformSpec(width=60, format="jpeg"), LIMITS)
    assert images.pages(still.body) == 1


def test_too_many_frames_is_413() -> None:
    body = images.animation("gif", frames=6, width=8, height=8)
    with pytest.raises(SourceTooLarge, match="6 frames"):
        render(body, TransformSpec(width=4), Limits(max_frames=5))


def test_frames_count_towards_the_pixel_limit() -> None:
    body = images.animation("gif", frames=5, width=100, height=100)
    with pytest.raises(SourceTooLarge, match="100x100x5"):
        probe(body, Limits(max_src_pixels=49_999))
    assert probe(body, Limits(max_src_pixels=50_000)).frames == 5


def truncated_jpeg(read: Read) -> bytes:
    data = read("astronaut.jpg")
    return data[: len(data) // 2]


HOSTILE: list[tuple[str, Callable[[Read], bytes], type[ImgcdnError]]] = [
    ("png 50000x50000", lambda _: images.png_bomb(), SourceTooLarge),
    ("truncated jpeg", truncated_jpeg, CorruptImage),
    ("truncated png", lambda r: r("alpha.png")[:200_000], CorruptImage),
    ("zero bytes", lambda _: b"", UnsupportedImage),
    ("text file", lambda _: b"hello, I am not an image\n" * 40, UnsupportedImage),
    ("svg", lambda _: images.SVG, UnsupportedImage),
    ("pdf", lambda _: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", UnsupportedImage),
    ("gif with 10000 frames", lambda _: images.gif_frames(10_000), SourceTooLarge),
    ("30 MB over max_src_bytes", lambda r: r("large.jpg") + b"\0" * 30_000_000, SourceTooLarge),
    ("png signature then garbage", lambda _: b"\x89PNG\r\n\x1a\n" + b"\x07" * 500, CorruptImage),
    ("jpeg signature then garbage", lambda _: b"\xff\xd8\xff" + b"\x07" * 500, CorruptImage),
]


@pytest.mark.parametrize(("name", "make", "error"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_refused_fast(
    sample_bytes: Read, name: str, make: Callable[[Read], bytes], error: type[ImgcdnError]
) -> None:
    data = make(sample_bytes)
    for call in (
        lambda: probe(data, LIMITS),
        lambda: render(data, TransformSpec(width=100), LIMITS),
    ):
        started = time.perf_counter()
        try:
            call()
        except ImgcdnError as err:
            assert type(err) is error, f"{name}: {err!r}"
            assert err.status in (413, 415, 422)
        else:
            # a truncated file may have a readable header: only the render must refuse it
            assert error is CorruptImage, f"{name}: accepted"
        assert time.perf_counter() - started < 1.0


def test_crafted_files_are_what_they_claim() -> None:
    """The hostile generators are real: their headers parse with the limits lifted."""
    bomb = pyvips.Image.new_from_buffer(images.png_bomb(), "", access="sequential")
    assert (bomb.width, bomb.height) == (50_000, 50_000)
    many = pyvips.Image.new_from_buffer(images.gif_frames(10_000), "", access="sequential")
    assert many.get("n-pages") == 10_000
