"""Output formats: `Accept` negotiation, content types, the source-format fallback, save options.

Pure: no pyvips here. `pipeline.py` turns `save_options()` into a `write_to_buffer` call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
}

# Formats that can carry animation through our pipeline.
ANIMATED_FORMATS = frozenset({"gif", "webp"})

# AVIF encoding is the slow one (imgproxy#600: "AVIF is a damn slow format"). libvips' default
# effort 4 took ~2.3x as long as effort 2 on the sample corpus at w=240 for a few % of bytes;
# see /work/notes/transforms.md for the measurement.
AVIF_EFFORT = 2
WEBP_EFFORT = 4  # libvips default; lower saves little time at thumbnail sizes
PNG_COMPRESSION = 6


HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)


def sniff(data: bytes) -> str | None:
    """The allowed input format `data` starts like, or None (not an image, or not allowed).

    A cheap first gate before any libvips loader runs; the pipeline then also checks which
    loader libvips picked (`vips-loader`), so a lying prefix gains nothing.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[i : i + 4] for i in range(8, box_end - 3, 4) if i != 12}
        if brands & HEIF_BRANDS:
            return "heif"
    return None


def negotiate(requested: str, accept: str | None, auto_formats: Sequence[str]) -> tuple[str, bool]:
    """Pick the output format -> (format or "source", vary_on_accept).

    An explicit format wins and does not vary. `auto` takes the first of `auto_formats` that
    `Accept` lists by name with q > 0 (wildcards do not count: old browsers send `*/*` and
    cannot show WebP), else "source" (keep the source's format, see `source_output_format`).
    The answer to `auto` always depends on `Accept`, so it always varies.
    """
    if requested != "auto":
        return ("jpeg" if requested == "jpg" else requested), False
    listed = accepted_types(accept or "")
    for fmt in auto_formats:
        if CONTENT_TYPES.get(fmt) in listed:
            return fmt, True
    return "source", True


@functools.lru_cache(maxsize=256)  # a few distinct Accept values; parsing one is ~4 us
def accepted_types(accept: str) -> frozenset[str]:
    """The media types `accept` lists with a non-zero q (lower-cased, parameters dropped)."""
    listed: set[str] = set()
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 1.0  # a malformed weight is treated as absent, like browsers do
        if q > 0:
            listed.add(media.lower())
    return frozenset(listed)


def source_output_format(source_format: str, has_alpha: bool) -> str:
    """The output format for "keep the source's format".

    JPEG, PNG, GIF and WebP stay as they are. HEIF/AVIF and TIFF become JPEG (PNG with alpha):
    "source" is only chosen when the client did not list AVIF/WebP, and no browser shows TIFF
    or HEIC, so the universally readable format is the safe answer.
    """
    if source_format in ("jpeg", "png", "gif", "webp"):
        return source_format
    return "png" if has_alpha else "jpeg"


def save_options(
    fmt: str, quality: int | None, *, progressive: bool
) -> tuple[str, dict[str, object]]:
    """(suffix for `write_to_buffer`, keyword options) for one output format; metadata not kept."""
    if fmt == "jpeg":
        return ".jpg", {"Q": quality, "interlace": progressive, "optimize_coding": True}
    if fmt == "webp":
        return ".webp", {"Q": quality, "effort": WEBP_EFFORT}
    if fmt == "avif":
        return ".avif", {"Q": quality, "effort": AVIF_EFFORT, "compression": "av1"}
    if fmt == "png":
        return ".png", {"compression": PNG_COMPRESSION}
    if fmt == "gif":
        return ".gif", {}
    raise ValueError(f"unknown output format {fmt!r}")
