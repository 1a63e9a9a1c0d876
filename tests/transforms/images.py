"""Generated test images: hostile files crafted byte by byte, and small pyvips-made ones."""

from __future__ import annotations

import struct
import zlib

import pyvips


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking PNG header declaring `width` x `height` RGB pixels, in a few KB."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 8, 9)  # a few rows of zeros, no more
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def gif_frames(frames: int, width: int = 1, height: int = 1) -> bytes:
    """An animated GIF of `frames` 1x1 frames: ~25 bytes per frame, so 10 000 frames is ~250 KB."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # 100 ms per frame
    frame = control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + loop + frame * frames + b"\x3b"


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<rect width="100" height="100" fill="red"/></svg>'
)


def marker_image(width: int = 200, height: int = 100) -> pyvips.Image:
    """Upright test picture: blue, with a red block in the top-left quarter."""
    blue = pyvips.Image.black(width, height).new_from_image([0, 0, 255])
    red = pyvips.Image.black(width // 2, height // 2).new_from_image([255, 0, 0])
    return blue.insert(red, 0, 0).cast("uchar").copy(interpretation="srgb")


def oriented_jpeg(orientation: int) -> bytes:
    """A JPEG whose pixels are stored rotated, with the EXIF `orientation` that rights them."""
    upright = marker_image()
    stored = {1: upright, 6: upright.rot270(), 8: upright.rot90(), 3: upright.rot180()}[orientation]
    stored = stored.copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(stored.write_to_buffer(".jpg", Q=95))


def animation(fmt: str, frames: int = 5, width: int = 120, height: int = 80) -> bytes:
    """A `frames`-frame animation (each frame a different grey level) as GIF or WebP."""
    pages = [
        pyvips.Image.black(width, height).new_from_image([40 * i % 256, 128, 200]).cast("uchar")
        for i in range(frames)
    ]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * frames)
    return bytes(strip.write_to_buffer(f".{fmt}"))


def load(body: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


def pages(body: bytes) -> int:
    if magic_format(body) not in ("gif", "webp"):
        return 1
    image = pyvips.Image.new_from_buffer(body, "", n=-1)
    return int(image.get("n-pages")) if image.get_typeof("n-pages") else 1


def magic_format(body: bytes) -> str:
    """The format of encoded bytes by their magic number."""
    if body.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if body.startswith(b"\x89PNG"):
        return "png"
    if body.startswith(b"GIF8"):
        return "gif"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "webp"
    if body[4:12] == b"ftypavif":
        return "avif"
    return "unknown"
