"""Image assertions for avatar tests: decode what the edge sent and compare it with a sample."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pyvips

from transforms.spec import Format, TransformSpec

# the quality bound for sizes derived from something other than the original: the mean
# absolute error (0-255) they add on average over the direct render's, and at worst
MEAN_EXTRA_BOUND = 1.5
WORST_EXTRA_BOUND = 5.0


def decode(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


def size_of(body: bytes) -> tuple[int, int]:
    image = decode(body)
    return image.width, image.height


def loader_of(body: bytes) -> str:
    return str(decode(body).get("vips-loader"))


def difference(body: bytes, sample: bytes) -> float:
    """Mean absolute pixel difference (0..255) between `body` and `sample` cover-cropped to the
    same size: a few units for the same photo re-encoded, tens for a different one. The least
    of two centre-crop conventions: resize then crop (a direct render, whose crop offset is
    rounded to whole output pixels) and crop the exact centre then resize (a size derived from
    a square master); at 30 px they are half a pixel apart, ~5 units of difference."""
    image = decode(body).colourspace("srgb").extract_band(0, n=3).cast("float")
    source = pyvips.Image.new_from_buffer(sample, "")
    side = min(source.width, source.height)
    square = source.crop((source.width - side) // 2, (source.height - side) // 2, side, side)
    references = (
        pyvips.Image.thumbnail_buffer(sample, image.width, height=image.height, crop="centre"),
        square.thumbnail_image(image.width, height=image.height, crop="centre"),
    )
    return min(
        float((image - ref.colourspace("srgb").extract_band(0, n=3).cast("float")).abs().avg())
        for ref in references
    )


def is_photo(body: bytes, sample: bytes) -> bool:
    return difference(body, sample) < 12


def square(side: int, fmt: Format | Literal["auto"] = "jpeg", **changes: Any) -> TransformSpec:
    """An avatar's spec: a `side` px square, cover-cropped, enlarged if need be."""
    spec = TransformSpec(width=side, height=side, fit="cover", enlarge=True, format=fmt)
    return dataclasses.replace(spec, **changes)


def mean_abs_diff(a: bytes, b: bytes) -> float:
    """Mean absolute pixel difference of two images of the same size and bands."""
    left, right = pyvips.Image.new_from_buffer(a, ""), pyvips.Image.new_from_buffer(b, "")
    assert (left.width, left.height, left.bands) == (right.width, right.height, right.bands)
    return float((left.cast("float") - right.cast("float")).abs().avg())
