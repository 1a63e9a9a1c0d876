"""The run-based PNG encoder: exact pixels back through libvips, and refusal of bad rows."""

from __future__ import annotations

import pytest
import pyvips

from edge.png import encode_png

RED, GREEN, BLUE = b"\xff\x00\x00", b"\x00\x80\x00", b"\x10\x20\xfe"


def pixels(png: bytes) -> tuple[int, int, int, bytes]:
    image = pyvips.Image.new_from_buffer(png, "")
    return image.width, image.height, image.bands, image.write_to_memory()


def test_runs_and_repeats_decode_to_the_exact_pixels() -> None:
    rows = [(((RED, 2), (GREEN, 1), (BLUE, 1)), 2), (((BLUE, 4),), 1), (((GREEN, 3), (RED, 1)), 3)]
    width, height, bands, data = pixels(encode_png(4, 6, rows, alpha=False))
    assert (width, height, bands) == (4, 6, 3)
    expected = (RED * 2 + GREEN + BLUE) * 2 + BLUE * 4 + (GREEN * 3 + RED) * 3
    assert data == expected


def test_alpha_is_kept() -> None:
    half = b"\x00\x00\xff\x80"
    _, _, bands, data = pixels(encode_png(2, 1, [(((half, 1), (bytes(4), 1)), 1)], alpha=True))
    assert bands == 4 and data == half + bytes(4)


def test_a_large_image_stays_small() -> None:
    png = encode_png(2048, 2048, [(((RED, 1024), (BLUE, 1024)), 2048)], alpha=False)
    assert len(png) < 100_000
    assert pixels(png)[:2] == (2048, 2048)


@pytest.mark.parametrize(
    ("width", "height", "rows", "alpha", "message"),
    [
        (0, 1, [], False, "at least one pixel"),
        (2, 1, [(((RED, 1),), 1)], False, "row has 1 pixels, expected 2"),
        (1, 2, [(((RED, 1),), 1)], False, "rows add up to 1, expected 2"),
        (1, 1, [(((RED, 1),), 1)], True, "is not 4 bytes"),
    ],
)
def test_inconsistent_rows_are_refused(width, height, rows, alpha, message) -> None:
    with pytest.raises(ValueError, match=message):
        encode_png(width, height, rows, alpha=alpha)
