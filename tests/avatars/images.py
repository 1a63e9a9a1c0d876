"""Image assertions for avatar tests: decode what the edge sent and compare it with a sample."""

from __future__ import annotations

import pyvips


def decode(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


def size_of(body: bytes) -> tuple[int, int]:
    image = decode(body)
    return image.width, image.height


def loader_of(body: bytes) -> str:
    return str(decode(body).get("vips-loader"))


def difference(body: bytes, sample: bytes) -> float:
    """Mean absolute pixel difference (0..255) between `body` and `sample` cover-cropped to the
    same size: a few units for the same photo re-encoded, tens for a different one."""
    image = decode(body).colourspace("srgb")
    reference = pyvips.Image.thumbnail_buffer(
        sample, image.width, height=image.height, crop="centre"
    ).colourspace("srgb")
    image, reference = image.extract_band(0, n=3), reference.extract_band(0, n=3)
    return float((image.cast("float") - reference.cast("float")).abs().avg())


def is_photo(body: bytes, sample: bytes) -> bool:
    return difference(body, sample) < 12
