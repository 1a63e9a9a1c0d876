"""The anti-aliased shape rasteriser: covered area, clipping and soft edges."""

from __future__ import annotations

import math

import pytest
import pyvips

from edge.png import encode_png
from edge.shapes import Capsule, Ellipse, Shape, blend_table, merge, rasterise

BLACK, WHITE = b"\x00\x00\x00", b"\xff\xff\xff"


def render(shapes: list[Shape], size: int, subrows: int = 4) -> pyvips.Image:
    rows = rasterise(shapes, size, size, blend_table(BLACK, WHITE), subrows)
    return pyvips.Image.new_from_buffer(encode_png(size, size, rows, alpha=False), "")[0]


def covered(image: pyvips.Image) -> float:
    """Covered area in pixels: the sum of coverage."""
    return float(image.avg()) / 255 * image.width * image.height


@pytest.mark.parametrize("subrows", [1, 2, 4])
def test_disk_area_is_close_to_pi_r_squared(subrows: int) -> None:
    image = render([Ellipse(32.3, 31.7, 20, 20)], 64, subrows)
    assert covered(image) == pytest.approx(math.pi * 400, rel=0.01)


def test_capsule_area_is_rectangle_plus_disk() -> None:
    image = render([Capsule(20, 30, 80, 70, 6)], 100)
    expected = math.hypot(60, 40) * 12 + math.pi * 36
    assert covered(image) == pytest.approx(expected, rel=0.01)


def test_overlapping_shapes_are_not_counted_twice() -> None:
    one = covered(render([Ellipse(50, 50, 30, 30)], 100))
    twice = covered(render([Ellipse(50, 50, 30, 30), Ellipse(50, 50, 30, 30)], 100))
    assert twice == pytest.approx(one, abs=1)


def test_shapes_are_clipped_to_the_image() -> None:
    image = render([Ellipse(0, 0, 40, 40)], 50)
    assert covered(image) == pytest.approx(math.pi * 1600 / 4, rel=0.01)


def test_edges_are_soft_and_the_inside_is_solid() -> None:
    image = render([Ellipse(50, 50, 30, 30)], 100)
    assert image.getpoint(50, 50) == [255.0] and image.getpoint(2, 2) == [0.0]
    values = {int(image.getpoint(x, 50)[0]) for x in range(15, 25)}
    assert len(values - {0, 255}) >= 1  # an intermediate level on the rim


def test_merge_joins_overlapping_spans() -> None:
    assert merge([(0, 2), (1, 3), (5, 6), (6, 7)]) == [(0, 3), (5, 7)]
