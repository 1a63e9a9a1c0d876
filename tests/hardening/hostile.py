"""Hostile files, crafted byte by byte: bombs, polyglots, blocked formats, broken images."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyvips

from tests.transforms.images import SVG, gif_frames, png_bomb

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def small_jpeg() -> bytes:
    image = pyvips.Image.black(64, 64).new_from_image([200, 40, 40]).cast("uchar")
    return bytes(image.copy(interpretation="srgb").write_to_buffer(".jpg"))


def jpeg_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A real 64x64 JPEG whose SOF0 header claims `width` x `height`: ~1 KB on disk."""
    data = bytearray(small_jpeg())
    sof = data.find(b"\xff\xc0")
    assert sof > 0, "baseline JPEG expected"
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>" * 50)
    return buffer.getvalue()


def polyglot() -> bytes:
    """A JPEG SOI + APP0 marker in front of a ZIP archive (ZIP readers find it from the end)."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + zip_archive()


def corrupt_tables(jpeg: bytes) -> bytes:
    """A real JPEG whose first Huffman table claims more codes than exist (a hard decode
    error). Corrupt entropy-coded data, by contrast, is a libjpeg warning: it decodes grey."""
    data = bytearray(jpeg)
    dht = data.find(b"\xff\xc4")
    data[dht + 5 : dht + 21] = b"\xff" * 16
    return bytes(data)


def write_hostile_files(root: Path, samples: Path) -> dict[str, int]:
    """Write every hostile file under `root`; returns name -> the status /img must answer."""
    astronaut = (samples / "astronaut.jpg").read_bytes()
    alpha = (samples / "alpha.png").read_bytes()
    files: dict[str, tuple[Callable[[], bytes], int]] = {
        "bomb.png": (png_bomb, 413),
        "bomb.jpg": (jpeg_bomb, 413),
        "bomb-65500.jpg": (lambda: jpeg_bomb(65_500, 65_500), 413),
        "frames.gif": (lambda: gif_frames(100_000), 413),
        "polyglot.jpg": (polyglot, 422),
        "archive.jpg": (zip_archive, 415),
        "vector.svg": (lambda: SVG, 415),
        "vector.png": (lambda: SVG, 415),  # the extension lies; the bytes decide
        "document.pdf": (lambda: PDF, 415),
        "empty.jpg": (lambda: b"", 415),
        "truncated.jpg": (lambda: astronaut[: len(astronaut) // 2], 422),
        "header-only.jpg": (lambda: astronaut[:300], 422),
        "truncated.png": (lambda: alpha[: len(alpha) // 2], 422),
        "corrupt.jpg": (lambda: corrupt_tables(astronaut), 422),
    }
    for name, (make, _status) in files.items():
        (root / name).write_bytes(make())
    with open(root / "huge.jpg", "wb") as f:  # 50 MB: a real JPEG, then zeros (sparse)
        f.write(astronaut)
        f.truncate(50 * 1024 * 1024)
    return {name: status for name, (_make, status) in files.items()} | {"huge.jpg": 413}
