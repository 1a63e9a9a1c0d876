"""Per-photo masters (transforms/master.py): which sizes may come from one, what deriving
costs in quality, and what `render_keeping_master` makes."""

from __future__ import annotations

import pytest
import pyvips

from benchmarks.peermix import jpeg_frame
from tests.avatars.images import MEAN_EXTRA_BOUND, WORST_EXTRA_BOUND, mean_abs_diff, square
from transforms.errors import CorruptImage
from transforms.master import (
    MASTER_SIDE,
    Master,
    derive,
    fits,
    may_use_master,
    render_keeping_master,
)
from transforms.pipeline import render
from transforms.spec import Limits, TransformSpec

LIMITS = Limits()


def test_sizes_from_the_master_stay_within_the_bound(sample_bytes) -> None:
    """Error against a lossless render of the original: from the master vs rendered directly.
    Part of it is the crop: the master's is the exact centre, a direct render's is rounded
    to whole output pixels."""
    extra: list[float] = []
    for name in ("astronaut.jpg", "coffee.jpg", "pendants.jpg"):
        original = sample_bytes(name)
        for side in (32, 64, 80, 128, 256):
            rendered, master = render_keeping_master(original, square(side), LIMITS)
            assert master is not None and master.side == MASTER_SIDE
            assert (rendered.width, rendered.height, rendered.format) == (side, side, "jpeg")
            reference = render(original, square(side, "png"), LIMITS).body
            direct = render(original, square(side), LIMITS).body
            extra.append(mean_abs_diff(rendered.body, reference) - mean_abs_diff(direct, reference))
    assert sum(extra) / len(extra) <= MEAN_EXTRA_BOUND, extra
    assert max(extra) <= WORST_EXTRA_BOUND, extra


def test_what_may_come_from_a_master() -> None:
    jpeg = Master(b"", 256, "jpeg")
    assert may_use_master(square(256)) and fits(jpeg, square(32))
    assert fits(jpeg, square(80, "auto"))  # "auto" is JPEG for this photo
    assert not fits(Master(b"", 256, "png"), square(80, "auto"))  # a PNG with alpha stays PNG
    assert not fits(Master(b"", 100, "jpeg"), square(128))  # larger than the master
    refused = [
        square(MASTER_SIDE + 1),
        square(64, "webp"),
        square(64, gravity="attention"),
        square(64, blur=2.0),
        square(64, sharpen=1.0),
        square(64, dpr=2.0),
        TransformSpec(width=64, height=32, fit="cover", format="jpeg"),
        TransformSpec(width=64, height=64, fit="inside", format="jpeg"),
    ]
    assert not any(may_use_master(spec) for spec in refused)


def test_no_master_when_it_could_not_serve_the_request(sample_bytes) -> None:
    alpha = sample_bytes("alpha.png")  # format "auto" keeps a PNG with alpha a PNG
    rendered, master = render_keeping_master(alpha, square(64, "auto"), LIMITS)
    assert master is None and rendered.format == "png"
    small = sample_bytes("static10k.jpg")  # 200 x 200: no master can hold 256 px
    rendered, master = render_keeping_master(small, square(256), LIMITS)
    assert master is None and (rendered.width, rendered.format) == (256, "jpeg")
    rendered, master = render_keeping_master(small, square(64), LIMITS)
    assert master is not None and master.side == 200 and rendered.width == 64


def test_the_master_is_upright_white_under_alpha_and_grey_stays_grey(sample_bytes) -> None:
    _, master = render_keeping_master(sample_bytes("alpha.png"), square(64), LIMITS)
    assert master is not None and master.auto_format == "png"
    image = pyvips.Image.new_from_buffer(master.body, "")
    assert (image.width, image.height, image.bands) == (256, 256, 3)  # flattened onto white
    grey = pyvips.Image.new_from_buffer(sample_bytes("astronaut.jpg"), "").colourspace("b-w")
    rendered, master = render_keeping_master(grey.write_to_buffer(".jpg"), square(80), LIMITS)
    assert master is not None and pyvips.Image.new_from_buffer(master.body, "").bands == 1
    assert pyvips.Image.new_from_buffer(rendered.body, "").bands == 1


def test_derive_honours_quality_and_progressive(sample_bytes) -> None:
    _, master = render_keeping_master(sample_bytes("hubble.jpg"), square(128), LIMITS)
    assert master is not None
    low, high = (
        derive(master.body, master.side, square(128, quality=30)),
        derive(master.body, master.side, square(128, quality=95)),
    )
    assert len(low.body) < len(high.body)
    assert jpeg_frame(derive(master.body, master.side, square(100, progressive=True)).body) == (
        "progressive",
        100,
        100,
    )
    assert jpeg_frame(derive(master.body, master.side, square(100)).body) == ("baseline", 100, 100)


@pytest.mark.parametrize("side", [1, 31, 255, 256])
def test_any_size_up_to_the_master(sample_bytes, side: int) -> None:
    _, master = render_keeping_master(sample_bytes("coffee.jpg"), square(64), LIMITS)
    assert master is not None
    made = derive(master.body, master.side, square(side))
    image = pyvips.Image.new_from_buffer(made.body, "")
    assert (image.width, image.height) == (made.width, made.height) == (side, side)


def test_the_master_follows_exif_orientation_and_converts_cmyk(sample_bytes) -> None:
    """The master's own decode path (JPEG at a DCT scale, then `thumbnail_image`) still turns
    the image upright and converts CMYK, as `render` does."""
    upright = pyvips.Image.new_from_buffer(sample_bytes("coffee.jpg"), "")
    stored = upright.rot270().copy()  # pixels stored sideways, EXIF orientation 6 undoes it
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    reference = render(sample_bytes("coffee.jpg"), square(128, "png"), LIMITS).body
    rendered, master = render_keeping_master(
        stored.write_to_buffer(".jpg", Q=90), square(128), LIMITS
    )
    assert master is not None and mean_abs_diff(rendered.body, reference) < 8
    sideways = render(stored.write_to_buffer(".jpg", Q=90, keep="none"), square(128), LIMITS)
    assert mean_abs_diff(sideways.body, reference) > 30  # what ignoring the tag would give
    cmyk = upright.colourspace("cmyk").write_to_buffer(".jpg", Q=90)
    rendered, master = render_keeping_master(cmyk, square(128), LIMITS)
    direct = render(cmyk, square(128), LIMITS).body
    assert master is not None and pyvips.Image.new_from_buffer(master.body, "").bands == 3
    assert mean_abs_diff(rendered.body, direct) < 3


def test_a_truncated_original_is_refused_on_the_master_path(sample_bytes) -> None:
    data = sample_bytes("astronaut.jpg")
    with pytest.raises(CorruptImage):
        render_keeping_master(data[: len(data) // 2], square(64), LIMITS)
