"""A minimal PNG encoder for images made of horizontal runs of flat colour (zlib + struct only).

The avatar defaults (`edge/defaults.py`) are flat shapes, so a row is a short list of runs and
most rows repeat the one above. Each distinct row is written with the PNG `Sub` filter (a run
becomes one difference pixel and zeros) and each repeat with the `Up` filter (all zeros), so the
encoder never loops over pixels in Python and deflate sees mostly zeros.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

Run = tuple[bytes, int]  # (one pixel: 3 bytes RGB or 4 bytes RGBA, how many pixels)
Row = Sequence[Run]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMPRESS_LEVEL = 1  # level 6 costs 3x the time for ~30% fewer bytes on these images


def encode_png(width: int, height: int, rows: Sequence[tuple[Row, int]], *, alpha: bool) -> bytes:
    """Encode `rows` — (row runs, how many times the row repeats) from the top — as a PNG.

    Every row's runs must add up to `width` pixels and the repeats to `height` rows.
    """
    if width < 1 or height < 1:
        raise ValueError("a PNG needs at least one pixel")
    bpp = 4 if alpha else 3
    stride = width * bpp
    repeat_row = b"\x02" + bytes(stride)  # filter Up: identical to the row above
    parts: list[bytes] = []
    deltas: dict[tuple[bytes, bytes], bytes] = {}
    total_rows = 0
    for runs, count in rows:
        if count < 1:
            continue
        parts.append(sub_filtered(runs, bpp, stride, deltas))
        if count > 1:
            parts.append(repeat_row * (count - 1))
        total_rows += count
    if total_rows != height:
        raise ValueError(f"rows add up to {total_rows}, expected {height}")
    colour_type = 6 if alpha else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    data = zlib.compress(b"".join(parts), COMPRESS_LEVEL)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def sub_filtered(
    runs: Row, bpp: int, stride: int, deltas: dict[tuple[bytes, bytes], bytes]
) -> bytes:
    """One scanline with filter Sub: each byte minus the same channel of the pixel to its left.

    `deltas` memoises pixel differences across rows (the same few colours meet again and again).
    """
    out = [b"\x01"]
    previous = bytes(bpp)
    written = 0
    for pixel, length in runs:
        if length < 1:
            continue
        if len(pixel) != bpp:
            raise ValueError(f"pixel {pixel!r} is not {bpp} bytes")
        delta = deltas.get((pixel, previous))
        if delta is None:
            delta = bytes((a - b) & 0xFF for a, b in zip(pixel, previous, strict=True))
            deltas[pixel, previous] = delta
        out.append(delta)
        out.append(bytes((length - 1) * bpp))
        previous = pixel
        written += length * bpp
    if written != stride:
        raise ValueError(f"row has {written // bpp} pixels, expected {stride // bpp}")
    return b"".join(out)


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type + data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
